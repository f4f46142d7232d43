"""The MCP server registration wizard's probe: before an upstream is registered, how far Warden gets with it
(``unreachable``, ``auth_required``, ``auth_ok``, ``tool_call_ok``), the tools it lists, and the auth mode to
register it with: OAuth when its authorization server is found (Warden registers itself by Dynamic Client
Registration when that server offers it, else it needs a client id), a personal token per user when it asks
for a credential but names no authorization server, none when it answers without one."""

from __future__ import annotations

from typing import Any

from broker.connections.oauth import OAuthFailure
from broker.connections.service import Connections
from broker.kernel.identity.service import require
from broker.mcp.pool import StaticCredential
from broker.mcp.probe import ProbeReport, probe
from broker.mcp.servers import UpstreamAuth, UpstreamDefinition, validate_definition
from broker.mcp.upstream import Presented, Reach
from broker.outbound import Outbound
from console.endpoints import ApiRoute, Call
from console.schemas import ProbeUpstreamBody


class McpWizardRoutes:
    def __init__(self, outbound: Outbound, connections: Connections) -> None:
        self._outbound = outbound
        self._connections = connections

    def routes(self) -> list[ApiRoute]:
        return [ApiRoute("POST", "/api/mcp/wizard/probe", self.probe, "Probe an upstream before registering it:"
                         " reachable, needs a credential, its tools, and the auth mode to register it with"
                         " (mcp_servers:manage)", "mcp", body=ProbeUpstreamBody)]

    async def probe(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        body: ProbeUpstreamBody = call.body
        definition = UpstreamDefinition("probe", body.transport, body.command, tuple(body.args), dict(body.env),
                                        body.url, body.timeout_seconds)
        validate_definition(definition)  # what registering it would refuse (a command, an http(s) URL)
        await self._outbound.check_field(body.url, "url")
        credential = None
        if body.token:
            presented = UpstreamAuth(mode="static", header=body.header, template=body.template).present(body.token)
            credential = StaticCredential(Presented(*presented))
        report = await probe(definition, Reach(self._outbound, credential))
        return {**report.as_dict(), "auth": await self._advice(body, report)}

    async def _advice(self, body: ProbeUpstreamBody, report: ProbeReport) -> dict[str, Any] | None:
        """The auth block to register the server with, and why."""
        if report.verdict == "unreachable":
            return None
        if report.verdict != "auth_required":
            if body.token:
                return {"mode": "static", "ownership": "shared", "header": body.header, "template": body.template,
                        "reason": "answered with the credential given: register it as the server's shared secret"
                                  " (or per user, as personal tokens)"}
            return {"mode": "none", "ownership": "shared", "reason": "answered without a credential"}
        assert body.url is not None  # a stdio server is never auth_required
        try:
            meta = await self._connections.authorization_server(body.url)
        except OAuthFailure as exc:
            return {"mode": "personal_token", "ownership": "per_user",
                    "reason": f"asks for a credential but no OAuth authorization server was found ({exc}):"
                              " each user pastes a token of their own"}
        dcr = meta.registration_endpoint is not None
        return {"mode": "oauth", "ownership": "per_user", "dcr": dcr, "authorization_server": meta.issuer,
                "scopes_supported": list(meta.scopes_supported),
                "reason": "OAuth: Warden registers itself with the authorization server (Dynamic Client"
                          " Registration) when a user first links an account" if dcr else
                          "OAuth, but the authorization server offers no dynamic client registration: give the"
                          " client id and secret registered there"}
