-- The audit trail's store-backed minimum: one row per audited request (today: every MCP tools/call).
-- detail holds the surface-specific fields (for MCP: arguments size, progress count, the call's timeline).

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    trace_id TEXT NOT NULL,
    surface TEXT NOT NULL,
    user_id TEXT,
    team_id TEXT,
    api_key_id TEXT,
    target TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_code INTEGER,
    duration_ms DOUBLE PRECISION NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_target ON audit_events (surface, target, at);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
