-- AI providers and models, from the configuration file (source 'config') or the management API ('api').
-- A provider's settings are JSON; its key is sealed with the secret box, bound to the provider's name.
CREATE TABLE ai_providers (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    settings TEXT NOT NULL,
    api_key_sealed TEXT,
    source TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- A model's definition (aliases, routes, routing mode, weights, prices) is JSON; the kill switch is its own
-- column so that re-reading the configuration file at start keeps a model an operator switched off.
CREATE TABLE ai_models (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    source TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
