-- Captured bodies of audited requests, redacted at capture: one row per part (request, response, arguments,
-- result). content is NULL when the body was offloaded (offload_key says where). Bodies kept in the table are
-- full-text indexed (FTS5, external content: the index holds no second copy of the text).
CREATE TABLE audit_bodies (
    event_id TEXT NOT NULL,
    part TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    bytes INTEGER NOT NULL,
    redactions TEXT NOT NULL,
    content TEXT,
    offload_key TEXT,
    PRIMARY KEY (event_id, part)
);
CREATE INDEX audit_bodies_at ON audit_bodies (at);
CREATE VIRTUAL TABLE audit_bodies_fts USING fts5(content, content='audit_bodies', content_rowid='rowid');
CREATE TRIGGER audit_bodies_indexed AFTER INSERT ON audit_bodies WHEN new.content IS NOT NULL BEGIN
    INSERT INTO audit_bodies_fts (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER audit_bodies_unindexed AFTER DELETE ON audit_bodies WHEN old.content IS NOT NULL BEGIN
    INSERT INTO audit_bodies_fts (audit_bodies_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
