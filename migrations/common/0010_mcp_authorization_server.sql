-- Warden as the OAuth authorization server of its own /mcp: clients registered by DCR, and the codes and
-- tokens it issued, stored only as keyed hashes. A family is one authorization: its codes, access and refresh
-- tokens; reusing a spent code or refresh token revokes the whole family.
CREATE TABLE mcp_oauth_clients (
    client_id TEXT PRIMARY KEY,
    client_name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    secret_hash TEXT,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE mcp_oauth_grants (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES mcp_oauth_clients (client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    family TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    expires_at DOUBLE PRECISION NOT NULL,
    used_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX mcp_oauth_grants_family ON mcp_oauth_grants (family);
