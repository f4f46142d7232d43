-- Virtual MCP servers: an admin-chosen set of upstream tools, optionally renamed, served at /mcp/<name>.
CREATE TABLE mcp_virtual_servers (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    tools TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
