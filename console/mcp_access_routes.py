"""``/api/mcp/access-rules`` and ``/api/mcp/explain``: who may use which tools, and why a tool is missing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from broker.kernel.errors import FieldError, InvalidInput
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity, require
from broker.mcp.access import AccessPolicy, AccessRuleStore
from broker.mcp.catalog import SEPARATOR
from broker.mcp.credentials import UserCredentials
from broker.mcp.pool import UpstreamPool
from console.endpoints import ApiRoute, Call
from console.schemas import CreateAccessRule


class McpAccessRoutes:
    """Allow-list management and the explainable catalog."""

    def __init__(self, identity: Identity, rules: AccessRuleStore, policy: AccessPolicy, pool: UpstreamPool,
                 credentials: UserCredentials, changed: Callable[[], Awaitable[None]]) -> None:
        self._identity = identity
        self._credentials = credentials
        self._rules = rules
        self._policy = policy
        self._pool = pool
        self._changed = changed

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/mcp/access-rules", self.index, "Tool allow-lists (mcp_servers:read)", "mcp"),
            ApiRoute("POST", "/api/mcp/access-rules", self.create,
                     "Allow a role, team, user or API key a tool pattern (mcp_servers:manage)", "mcp",
                     body=CreateAccessRule, status=201),
            ApiRoute("DELETE", "/api/mcp/access-rules/{rule_id}", self.delete, "Remove an allow rule"
                     " (mcp_servers:manage)", "mcp", status=204),
            ApiRoute("GET", "/api/mcp/explain", self.explain,
                     "Why ?tool=server__tool is or is not in the caller's catalog (or ?api_key=<id>'s)", "mcp"),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:read")
        return {"items": [{"id": r.id, "subject_kind": r.subject_kind, "subject_id": r.subject_id,
                           "pattern": r.pattern} for r in await self._rules.all()]}

    async def create(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        body: CreateAccessRule = call.body
        rule = await self._rules.create(body.subject_kind, body.subject_id, body.pattern, call.user_id)
        await self._changed()
        return {"id": rule.id, "subject_kind": rule.subject_kind, "subject_id": rule.subject_id,
                "pattern": rule.pattern}

    async def delete(self, call: Call) -> None:
        require(call.actor, "mcp_servers:manage")
        await self._rules.delete(call.path("rule_id"))
        await self._changed()

    async def explain(self, call: Call) -> dict[str, Any]:
        tool = call.request.query_params.get("tool", "")
        server, separator, upstream_tool = tool.partition(SEPARATOR)
        if not separator or not upstream_tool:
            raise InvalidInput("invalid tool", [FieldError("query.tool", "must be server__tool")])
        principal = await self._subject(call)
        reasons = self._catalog_reasons(server, upstream_tool)
        decision = self._policy.decide(principal, tool)
        if not decision.allowed:
            reasons.append(f"access: {decision.reason}")
        connection = self._pool.get(server)
        needs_credential = connection is not None and \
            connection.definition.options_for(upstream_tool).requires_user_credential
        missing = needs_credential and await self._credentials.credential_for(principal, server) is None
        # Listed either way (so the agent can tell its user what to link), but not callable until linked.
        blocked = [f"credential: runs with the caller's own {server!r} account, which is not linked"] if missing else []
        return {"tool": tool, "listed": not reasons, "callable": not reasons and not missing,
                "access": decision.reason, "reasons": reasons + blocked}

    async def _subject(self, call: Call) -> Principal:
        key_id = call.request.query_params.get("api_key")
        if key_id is None:
            return call.actor
        require(call.actor, "mcp_servers:manage")
        return await self._identity.principal_of_key(key_id)

    def _catalog_reasons(self, server: str, tool: str) -> list[str]:
        connection = self._pool.get(server)
        if connection is None:
            return [f"upstream: no MCP server named {server!r}"]
        if connection.health in ("down", "connecting", "disabled") and not connection.tools:
            return [f"upstream: {server!r} is {connection.health}"
                    + (f" ({connection.last_error})" if connection.last_error else "")]
        if not any(t.name == tool for t in connection.tools):
            return [f"upstream: {server!r} offers no tool named {tool!r}"]
        return []
