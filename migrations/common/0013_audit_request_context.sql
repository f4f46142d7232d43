-- Who asked, from where, under which request id: recorded with every audit event (both surfaces).
ALTER TABLE audit_events ADD COLUMN request_id TEXT;
ALTER TABLE audit_events ADD COLUMN client_ip TEXT;
ALTER TABLE audit_events ADD COLUMN user_agent TEXT;
CREATE INDEX audit_events_trace ON audit_events (trace_id, at);
