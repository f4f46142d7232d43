-- Quota rules: a sliding-window rate limit (window_name) or a calendar budget (period) on a subject.
-- subject_id '*' applies the rule to every subject of the kind, counted per subject.
-- source is 'api' for rules made through the management API, 'config' for rules reconciled from the file.

CREATE TABLE quota_rules (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    window_name TEXT,
    period TEXT,
    limit_value DOUBLE PRECISION NOT NULL,
    surface TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    precheck BOOLEAN NOT NULL,
    source TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    CHECK ((window_name IS NULL) <> (period IS NULL))
);
CREATE INDEX quota_rules_subject ON quota_rules (subject_kind, subject_id);
