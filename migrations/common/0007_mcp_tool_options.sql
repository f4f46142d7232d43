-- Per-tool options of an upstream as JSON: {"tool or *": {"cache_ttl_seconds": n, "requires_user_credential": b}}.
ALTER TABLE mcp_servers ADD COLUMN tool_options TEXT NOT NULL DEFAULT '{}';
