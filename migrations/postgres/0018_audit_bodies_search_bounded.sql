-- A body's full-text vector from its first 131,072 characters only. A tsvector holds at most 1 MB, and a body
-- kept inline may be up to 1 MiB (audit.capture.body_max_bytes): one of many distinct words made its row fail
-- to insert, and with it every batch of the audit writer after it. 128 Ki characters give at most about 0.5 MB
-- of vector whatever the words. Rebuilds the column and its index (the table is rewritten once).
ALTER TABLE audit_bodies DROP COLUMN search;
ALTER TABLE audit_bodies ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', left(coalesce(content, ''), 131072))) STORED;
CREATE INDEX audit_bodies_search ON audit_bodies USING GIN (search);
