-- Captured bodies of audited requests, redacted at capture: one row per part (request, response, arguments,
-- result). content is NULL when the body was offloaded (offload_key says where). Bodies kept in the table are
-- full-text indexed (a generated tsvector with a GIN index; 'simple': no stemming, bodies are any language).
CREATE TABLE audit_bodies (
    event_id TEXT NOT NULL,
    part TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    bytes INTEGER NOT NULL,
    redactions TEXT NOT NULL,
    content TEXT,
    offload_key TEXT,
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(content, ''))) STORED,
    PRIMARY KEY (event_id, part)
);
CREATE INDEX audit_bodies_at ON audit_bodies (at);
CREATE INDEX audit_bodies_search ON audit_bodies USING GIN (search);
