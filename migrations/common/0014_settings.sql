-- Settings changed at run time (in the console), one JSON document per name; the config file holds the
-- defaults until a setting is first changed.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    updated_by TEXT
);
