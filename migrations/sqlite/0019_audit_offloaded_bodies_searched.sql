-- Offloaded bodies become searchable: the writer keeps a body's first 131,072 characters in search_text when the
-- body itself went to the offload store (NULL otherwise), and a second FTS5 index, over that column, finds them.
-- The first index stays as it was (over content): no rebuild. Bodies offloaded before this version have no
-- search_text (their text is not in the database) and stay unsearchable.
ALTER TABLE audit_bodies ADD COLUMN search_text TEXT;
CREATE VIRTUAL TABLE audit_bodies_offloaded_fts USING fts5(search_text, content='audit_bodies', content_rowid='rowid');
CREATE TRIGGER audit_bodies_offloaded_indexed AFTER INSERT ON audit_bodies WHEN new.search_text IS NOT NULL BEGIN
    INSERT INTO audit_bodies_offloaded_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER audit_bodies_offloaded_unindexed AFTER DELETE ON audit_bodies WHEN old.search_text IS NOT NULL BEGIN
    INSERT INTO audit_bodies_offloaded_fts (audit_bodies_offloaded_fts, rowid, search_text)
        VALUES ('delete', old.rowid, old.search_text);
END;
