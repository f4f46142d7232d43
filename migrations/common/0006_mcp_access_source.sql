-- Access rules can be kept as code: 'config' rules are reconciled from the file, 'api' ones are managed live.
ALTER TABLE mcp_access_rules ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
