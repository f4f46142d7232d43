-- Which MCP tools a role, team, user or API key may see and call. Patterns: 'server__tool', 'server__*', '*'.
-- Grants from a user's roles, teams and the user itself are combined; rules on an API key narrow them.

CREATE TABLE mcp_access_rules (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    pattern TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT
);
CREATE UNIQUE INDEX mcp_access_rules_unique ON mcp_access_rules (subject_kind, subject_id, pattern);
