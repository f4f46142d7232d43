"""Upstream MCP server definitions at rest, from the management API or the configuration file."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from broker.kernel.clock import Clock
from broker.kernel.crypto import SecretBox
from broker.kernel.errors import Conflict, FieldError, InvalidInput, NotFound
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database, Row

Transport = Literal["stdio", "streamable_http", "sse"]
TRANSPORTS: tuple[Transport, ...] = ("stdio", "streamable_http", "sse")
AuthMode = Literal["none", "static", "oauth", "personal_token"]
AUTH_MODES: tuple[AuthMode, ...] = ("none", "static", "oauth", "personal_token")
Ownership = Literal["shared", "per_user"]
_AUTH_CONTEXT = b"mcp_server.auth:"
# The name is the namespace prefix: "__" separates it from the tool name, so a name may not contain it.
_ENV_CONTEXT = b"mcp_server.env:"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]|_(?!_))*$")


@dataclass(frozen=True, slots=True)
class ToolOptions:
    """What an admin decided about one tool (or, under ``*``, every tool of a server)."""

    cache_ttl_seconds: float = 0.0  # 0: results are not cached
    requires_user_credential: bool = False  # calls need the caller's own credential for this server

    def as_dict(self) -> dict[str, Any]:
        return {"cache_ttl_seconds": self.cache_ttl_seconds, "requires_user_credential": self.requires_user_credential}


NO_OPTIONS = ToolOptions()


@dataclass(frozen=True, slots=True)
class UpstreamAuth:
    """How Warden authenticates to an upstream: the credential's shape, whose it is, and how it is sent.

    ``static``: one shared secret (``secret``), sent as the template says. ``personal_token``: each user
    pastes their own. ``oauth``: each user (or, shared, an admin once) authorizes Warden at the upstream's
    authorization server; the client is found by discovery and registered by DCR unless ``client_id`` is
    given. Per-upstream quirks are settings: ``audience`` (Auth0/Okta-style servers) and ``send_resource``
    (RFC 8707's parameter, for authorization servers that reject it).
    """

    mode: AuthMode = "none"
    ownership: Ownership = "shared"
    header: str = "Authorization"
    template: str = "Bearer {token}"
    query_param: str | None = None  # send the credential as this query parameter instead of a header
    requires_user_auth: bool = False  # per-user server whose tools are listed only once the user linked it
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    send_resource: bool = True
    authorization_server: str | None = None  # for upstreams that publish no protected-resource metadata

    @property
    def per_user(self) -> bool:
        return self.ownership == "per_user" and self.mode in ("oauth", "personal_token")

    def present(self, token: str) -> tuple[dict[str, str], dict[str, str]]:
        """The headers and query parameters that carry ``token``."""
        value = self.template.replace("{token}", token)
        return ({}, {self.query_param: token}) if self.query_param else ({self.header: value}, {})

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "ownership": self.ownership, "header": self.header, "template": self.template,
                "query_param": self.query_param, "requires_user_auth": self.requires_user_auth,
                "client_id": self.client_id, "scopes": list(self.scopes), "audience": self.audience,
                "send_resource": self.send_resource, "authorization_server": self.authorization_server}


AUTH_SECRETS = ("secret", "client_secret")


def auth_from(raw: dict[str, Any]) -> UpstreamAuth:
    fields = {k: v for k, v in raw.items() if k in UpstreamAuth.__dataclass_fields__}
    if "scopes" in fields:
        fields["scopes"] = tuple(fields["scopes"])
    return UpstreamAuth(**fields)


def auth_settings(raw: dict[str, Any]) -> tuple[UpstreamAuth, dict[str, str]]:
    """An auth block as written (configuration file, API body): the settings, and the write-only secrets."""
    return auth_from(raw), {name: str(raw[name]) for name in AUTH_SECRETS if raw.get(name)}


def secrets_used(auth: UpstreamAuth, secrets: dict[str, str]) -> dict[str, str]:
    """Of ``secrets``, those ``auth`` reads: ``secret`` for static, ``client_secret`` for oauth with an
    admin-supplied client. A server switched to another mode keeps no secret at rest that nothing reads."""
    used = {"static": ("secret",), "oauth": ("client_secret",) if auth.client_id else ()}.get(auth.mode, ())
    return {name: value for name, value in secrets.items() if name in used}


NO_AUTH = UpstreamAuth()


@dataclass(frozen=True, slots=True)
class UpstreamDefinition:
    """How to reach one upstream MCP server; its name is the prefix of its tools (``name__tool``)."""

    name: str
    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    timeout_seconds: float = 60.0
    enabled: bool = True
    tool_options: dict[str, ToolOptions] = field(default_factory=dict)
    auth: UpstreamAuth = NO_AUTH
    # Write-only secrets of the auth mode: ``secret`` (static), ``client_secret`` (oauth, admin-supplied client).
    auth_secrets: dict[str, str] = field(default_factory=dict, repr=False)
    # How people see it ("GitHub (work)"; empty: the name) and the Store template it came from: neither
    # changes how Warden reaches it, so neither reconnects it.
    label: str = field(default="", compare=False)
    template: str | None = field(default=None, compare=False)

    def options_for(self, tool: str) -> ToolOptions:
        """The tool's own options, else the server-wide ``*`` ones, else none."""
        return self.tool_options.get(tool) or self.tool_options.get("*") or NO_OPTIONS


def tool_options_from(raw: dict[str, Any]) -> dict[str, ToolOptions]:
    return {name: ToolOptions(float(o.get("cache_ttl_seconds", 0)), bool(o.get("requires_user_credential")))
            for name, o in raw.items()}


def validate_definition(definition: UpstreamDefinition) -> None:
    problems = []
    if not _NAME.match(definition.name) or len(definition.name) > 40:
        problems.append(FieldError("name", "lowercase letters, digits, '-' and single '_', at most 40"))
    if definition.transport not in TRANSPORTS:
        problems.append(FieldError("transport", f"must be one of {list(TRANSPORTS)}"))
    if definition.transport == "stdio" and not definition.command:
        problems.append(FieldError("command", "a stdio server needs a command"))
    if definition.transport != "stdio" and not (definition.url or "").startswith(("http://", "https://")):
        problems.append(FieldError("url", "an HTTP server needs an http:// or https:// URL"))
    if not 0 < definition.timeout_seconds <= 3600:
        problems.append(FieldError("timeout_seconds", "must be between 0 and 3600"))
    auth = definition.auth
    if auth.mode not in AUTH_MODES:
        problems.append(FieldError("auth.mode", f"must be one of {list(AUTH_MODES)}"))
    if auth.ownership not in ("shared", "per_user"):
        problems.append(FieldError("auth.ownership", "must be 'shared' or 'per_user'"))
    if auth.mode != "none" and definition.transport == "stdio":
        problems.append(FieldError("auth.mode", "a stdio server takes its credentials in 'env'"))
    if auth.mode == "static" and not definition.auth_secrets.get("secret"):
        problems.append(FieldError("auth.secret", "a static credential needs the secret"))
    if auth.mode == "personal_token" and auth.ownership != "per_user":
        problems.append(FieldError("auth.ownership", "personal tokens are per_user"))
    if auth.mode == "static" and auth.ownership != "shared":
        problems.append(FieldError("auth.ownership", "a static secret is shared"))
    if "{token}" not in auth.template:
        problems.append(FieldError("auth.template", "must contain {token}"))
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", auth.header):
        problems.append(FieldError("auth.header", "must be an HTTP header name"))
    if auth.requires_user_auth and not auth.per_user:
        problems.append(FieldError("auth.requires_user_auth", "only per_user servers are linked by users"))
    for tool, options in definition.tool_options.items():
        if not 0 <= options.cache_ttl_seconds <= 86_400:
            problems.append(FieldError(f"tool_options.{tool}.cache_ttl_seconds", "must be between 0 and 86400"))
    if problems:
        raise InvalidInput("invalid MCP server", problems)


class McpServerStore:
    """CRUD over ``mcp_servers``; the environment is sealed at rest."""

    def __init__(self, db: Database, clock: Clock, box: SecretBox) -> None:
        self._db = db
        self._clock = clock
        self._box = box

    async def all(self) -> list[tuple[UpstreamDefinition, str]]:
        rows = await self._db.fetch("SELECT * FROM mcp_servers ORDER BY name")
        return [(self._definition(r), r["source"]) for r in rows]

    async def get(self, name: str) -> tuple[UpstreamDefinition, str]:
        row = await self._db.fetchrow("SELECT * FROM mcp_servers WHERE name = ?", name)
        if row is None:
            raise NotFound(f"MCP server {name!r} not found")
        return self._definition(row), row["source"]

    def _definition(self, row: Row) -> UpstreamDefinition:
        env = json.loads(self._box.open(base64.b64decode(row["env_sealed"]), _ENV_CONTEXT + row["name"].encode()))
        return UpstreamDefinition(
            name=row["name"], transport=row["transport"], command=row["command"],
            args=tuple(json.loads(row["args"])), env=env, url=row["url"],
            timeout_seconds=float(row["timeout_seconds"]), enabled=bool(row["enabled"]),
            tool_options=tool_options_from(json.loads(row["tool_options"])),
            auth=auth_from(json.loads(row["auth"])),
            auth_secrets=json.loads(self._box.open(base64.b64decode(row["auth_sealed"]),
                                                   _AUTH_CONTEXT + row["name"].encode())) if row["auth_sealed"] else {},
            label=row["label"], template=row["template"],
        )

    def _seal_env(self, definition: UpstreamDefinition) -> str:
        sealed = self._box.seal(json.dumps(definition.env).encode(), _ENV_CONTEXT + definition.name.encode())
        return base64.b64encode(sealed).decode()

    def _seal_auth(self, definition: UpstreamDefinition) -> str:
        sealed = self._box.seal(json.dumps(definition.auth_secrets).encode(), _AUTH_CONTEXT + definition.name.encode())
        return base64.b64encode(sealed).decode()

    async def create(self, definition: UpstreamDefinition, source: str = "api") -> UpstreamDefinition:
        validate_definition(definition)
        definition = replace(definition, auth_secrets=secrets_used(definition.auth, definition.auth_secrets))
        if await self._db.fetchrow("SELECT name FROM mcp_virtual_servers WHERE name = ?", definition.name):
            raise Conflict(f"a virtual MCP server is named {definition.name!r}; upstream servers share its names")
        now = self._clock.now()
        try:
            await self._db.execute(
                "INSERT INTO mcp_servers (name, transport, command, args, env_sealed, url, timeout_seconds,"
                " enabled, tool_options, auth, auth_sealed, source, created_at, updated_at, label, template)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                definition.name, definition.transport, definition.command, json.dumps(list(definition.args)),
                self._seal_env(definition), definition.url, definition.timeout_seconds, definition.enabled,
                _options_json(definition), json.dumps(definition.auth.as_dict()), self._seal_auth(definition),
                source, now, now, definition.label, definition.template,
            )
        except UniqueViolation as exc:
            raise Conflict(f"an MCP server named {definition.name!r} already exists") from exc
        return definition

    async def update(self, name: str, changes: dict[str, Any]) -> UpstreamDefinition:
        current, source = await self.get(name)
        if source == "config":
            raise Conflict("this server comes from the configuration file; change it there")
        updated = replace(current, **changes)
        validate_definition(updated)
        updated = replace(updated, auth_secrets=secrets_used(updated.auth, updated.auth_secrets))
        await self._db.execute(
            "UPDATE mcp_servers SET transport = ?, command = ?, args = ?, env_sealed = ?, url = ?,"
            " timeout_seconds = ?, enabled = ?, tool_options = ?, auth = ?, auth_sealed = ?, updated_at = ?,"
            " label = ? WHERE name = ?",
            updated.transport, updated.command, json.dumps(list(updated.args)), self._seal_env(updated),
            updated.url, updated.timeout_seconds, updated.enabled, _options_json(updated),
            json.dumps(updated.auth.as_dict()), self._seal_auth(updated), self._clock.now(), updated.label, name,
        )
        return updated

    async def delete(self, name: str) -> None:
        _, source = await self.get(name)
        if source == "config":
            raise Conflict("this server comes from the configuration file; remove it there")
        await self._db.execute("DELETE FROM mcp_servers WHERE name = ?", name)

    async def reseal_all(self) -> int:
        """Re-encrypt every stored environment under the current master key version (key rotation)."""
        rows = await self._db.fetch("SELECT name FROM mcp_servers")
        for row in rows:
            definition, _ = await self.get(row["name"])
            await self._db.execute("UPDATE mcp_servers SET env_sealed = ?, auth_sealed = ? WHERE name = ?",
                                   self._seal_env(definition), self._seal_auth(definition), definition.name)
        return len(rows)

    async def reconcile_config(self, definitions: list[UpstreamDefinition]) -> None:
        """Make the file's servers exactly the ``config`` servers in the store."""
        present = {d.name: (d, s) for d, s in await self.all()}
        wanted = {d.name: d for d in definitions}
        for name, (_, source) in present.items():
            if source == "config" and name not in wanted:
                await self._db.execute("DELETE FROM mcp_servers WHERE name = ?", name)
        for name, definition in wanted.items():
            if name in present and present[name][1] == "api":
                raise Conflict(f"mcp_servers: {name!r} already exists, created through the API")
            if name in present:
                await self._db.execute("DELETE FROM mcp_servers WHERE name = ?", name)
            await self.create(definition, source="config")


def _options_json(definition: UpstreamDefinition) -> str:
    return json.dumps({tool: options.as_dict() for tool, options in sorted(definition.tool_options.items())})
