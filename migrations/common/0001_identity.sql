-- Identity kernel: users, teams, roles and their assignments, API keys, console sessions.
-- Portable SQL (SQLite and PostgreSQL). Times are Unix seconds (DOUBLE PRECISION); ids are text.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    deleted_at DOUBLE PRECISION
);
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    deleted_at DOUBLE PRECISION
);
CREATE UNIQUE INDEX teams_name_live ON teams (name) WHERE deleted_at IS NULL;

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL,
    builtin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (name);

CREATE TABLE role_assignments (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    team_id TEXT REFERENCES teams (id) ON DELETE CASCADE,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT
);
CREATE UNIQUE INDEX role_assignments_unique ON role_assignments (user_id, role_id, COALESCE(team_id, ''));
CREATE INDEX role_assignments_user ON role_assignments (user_id);

-- Who changed which role or assignment, with the state before and after (JSON text).
CREATE TABLE role_history (
    id TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    role_id TEXT,
    subject_user_id TEXT,
    before_state TEXT,
    after_state TEXT
);
CREATE INDEX role_history_at ON role_history (at);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    lookup_prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    owner_user_id TEXT REFERENCES users (id),
    owner_team_id TEXT REFERENCES teams (id),
    surfaces TEXT NOT NULL,
    allowed_models TEXT,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    disabled_reason TEXT,
    grace_until DOUBLE PRECISION,
    rotated_to TEXT,
    last_used_at DOUBLE PRECISION,
    expiry_warned_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT,
    deleted_at DOUBLE PRECISION,
    CHECK (owner_user_id IS NOT NULL OR owner_team_id IS NOT NULL)
);
CREATE INDEX api_keys_lookup ON api_keys (lookup_prefix);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE INDEX api_keys_owner_user ON api_keys (owner_user_id);

CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    client_ip TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

CREATE TABLE login_failures (
    email TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    first_failed_at DOUBLE PRECISION NOT NULL,
    locked_until DOUBLE PRECISION
);

-- Encrypted secrets (provider keys, OAuth tokens, ...) sealed by the secret box; key_version tracks rotation.
CREATE TABLE sealed_secrets (
    id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    sealed TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX sealed_secrets_version ON sealed_secrets (key_version);

-- Kernel events (key expiry warnings, keys disabled for inactivity) for later alerting to consume.
CREATE TABLE kernel_events (
    id TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    subject_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX kernel_events_at ON kernel_events (at);

-- Single facts about the installation; 'setup_completed' is inserted once, so setup cannot run twice.
CREATE TABLE kernel_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
