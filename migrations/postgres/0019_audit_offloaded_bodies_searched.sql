-- Offloaded bodies become searchable: the writer keeps a body's first 131,072 characters in search_text when the
-- body itself went to the offload store (NULL otherwise), found through a partial expression index (no table
-- rewrite: search_text is NULL in every existing row). Bodies offloaded before this version have no search_text
-- (their text is not in the database) and stay unsearchable.
ALTER TABLE audit_bodies ADD COLUMN search_text TEXT;
CREATE INDEX audit_bodies_offloaded_search ON audit_bodies USING GIN (to_tsvector('simple', search_text))
    WHERE search_text IS NOT NULL;
