"""The permission catalogue and the five built-in role tiers."""

from __future__ import annotations

from broker.kernel.errors import FieldError, InvalidInput

PERMISSIONS: dict[str, str] = {
    "users:read": "List and view users",
    "users:manage": "Create, edit, disable and delete users",
    "teams:read": "List and view teams and their members",
    "teams:manage": "Create, edit and delete teams; manage membership (team-scoped: that team only)",
    "roles:read": "List roles, assignments and role history",
    "roles:manage": "Create, edit and delete custom roles; assign roles",
    "keys:create": "Create API keys owned by oneself",
    "keys:read": "View every API key's metadata (team-scoped: that team's keys)",
    "keys:manage": "Create, rotate and revoke any key (team-scoped: that team's keys)",
    "audit:read": "Read audit records",
    "audit:read_bodies": "Read captured request and response bodies in audit records",
    "mcp_servers:read": "View upstream MCP servers",
    "mcp_servers:manage": "Register, edit and remove upstream MCP servers",
    "providers:read": "View AI providers and models",
    "providers:manage": "Manage AI providers, models and routing",
    "quotas:manage": "Manage rate limits and budgets",
    "settings:manage": "Change system settings",
}

_VIEWER = frozenset({
    "users:read", "teams:read", "roles:read", "keys:read", "audit:read", "mcp_servers:read", "providers:read",
})

BUILTIN_ROLES: dict[str, tuple[str, frozenset[str]]] = {
    "super_admin": ("Everything, including granting super_admin", frozenset({"*"})),
    "admin": ("Everything except granting super_admin", frozenset(PERMISSIONS)),
    "team_manager": (
        "Runs teams: membership, the team's keys and audit (usually assigned scoped to a team)",
        frozenset({"users:read", "teams:read", "teams:manage", "keys:create", "keys:read", "keys:manage",
                   "audit:read", "mcp_servers:read", "providers:read"}),
    ),
    "developer": (
        "Uses the gateway: creates own keys, sees servers and models",
        frozenset({"keys:create", "mcp_servers:read", "providers:read"}),
    ),
    "viewer": ("Read-only access to the console", _VIEWER),
}


def validate_permissions(permissions: list[str], field: str = "permissions") -> frozenset[str]:
    """Reject names outside the catalogue, naming each (custom roles may not hold ``*``)."""
    unknown = [p for p in permissions if p not in PERMISSIONS]
    if unknown:
        raise InvalidInput(
            "unknown permissions",
            [FieldError(f"{field}[{permissions.index(p)}]", f"unknown permission {p!r}") for p in unknown],
        )
    return frozenset(permissions)
