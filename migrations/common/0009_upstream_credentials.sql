-- How Warden authenticates to each upstream (JSON of UpstreamAuth) and that mode's sealed secrets.
ALTER TABLE mcp_servers ADD COLUMN auth TEXT NOT NULL DEFAULT '{}';
ALTER TABLE mcp_servers ADD COLUMN auth_sealed TEXT NOT NULL DEFAULT '';

-- A user's linked account on one upstream, one row per (server, user, label); the credential is sealed.
CREATE TABLE upstream_links (
    id TEXT PRIMARY KEY,
    server TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    is_default BOOLEAN NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    upstream_subject TEXT NOT NULL DEFAULT '',
    sealed TEXT NOT NULL,
    expires_at DOUBLE PRECISION,
    version INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (server, user_id, label)
);
CREATE INDEX upstream_links_user ON upstream_links (user_id);

-- OAuth clients Warden registered (DCR) or was given, per upstream; the client secret is sealed.
CREATE TABLE oauth_clients (
    server TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    metadata TEXT NOT NULL,
    client_id TEXT NOT NULL,
    sealed_secret TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL
);

-- Authorizations in flight: the state (stored hashed) is single use and expires; the PKCE verifier is sealed.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

-- Cross-instance refresh locks when no Redis is configured (one row per credential while refreshing).
CREATE TABLE credential_locks (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

ALTER TABLE api_keys ADD COLUMN pinned_accounts TEXT NOT NULL DEFAULT '{}';
