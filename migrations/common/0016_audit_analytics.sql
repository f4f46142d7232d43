-- What the usage and cost aggregates add up, kept in columns of their own (from an AI event's detail) so they
-- are summed without parsing JSON; and the indexes the log explorer's filters use.
ALTER TABLE audit_events ADD COLUMN model TEXT;
ALTER TABLE audit_events ADD COLUMN provider TEXT;
ALTER TABLE audit_events ADD COLUMN input_tokens BIGINT;
ALTER TABLE audit_events ADD COLUMN output_tokens BIGINT;
ALTER TABLE audit_events ADD COLUMN weighted_tokens DOUBLE PRECISION;
ALTER TABLE audit_events ADD COLUMN usd DOUBLE PRECISION;
CREATE INDEX audit_events_team ON audit_events (team_id, at);
CREATE INDEX audit_events_key ON audit_events (api_key_id, at);
CREATE INDEX audit_events_model ON audit_events (model, at);
