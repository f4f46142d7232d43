-- A server's display label ("GitHub (work)": several installs of one template), the Store template it was
-- installed from, and the Store templates admins add for their organisation.
ALTER TABLE mcp_servers ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE mcp_servers ADD COLUMN template TEXT;
CREATE TABLE store_templates (
    id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    created_by TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
