-- Upstream MCP servers: how to reach them (stdio command, Streamable HTTP or legacy SSE URL) and the
-- prefix their tools carry downstream (prefix__tool). source is 'api' or 'config' like quota rules.
-- env_sealed is the process environment (often tokens) sealed by the secret box, never returned by the API.

CREATE TABLE mcp_servers (
    name TEXT PRIMARY KEY,
    transport TEXT NOT NULL,
    command TEXT,
    args TEXT NOT NULL DEFAULT '[]',
    env_sealed TEXT NOT NULL,
    url TEXT,
    timeout_seconds DOUBLE PRECISION NOT NULL,
    enabled BOOLEAN NOT NULL,
    source TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
