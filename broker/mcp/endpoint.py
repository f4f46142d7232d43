"""The downstream ``/mcp`` endpoint: MCP Streamable HTTP served by the official SDK, authenticated by a
Warden API key with the ``mcp`` surface, with every tool call admitted by the quota kernel."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from broker.edge.credentials import presented_key
from broker.edge.errors import error_body, warden_error
from broker.kernel.audit.ports import AuditSink
from broker.kernel.errors import WardenError
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.errors import LimiterUnavailable, QuotaExceeded
from broker.kernel.quota.models import QuotaRequest
from broker.kernel.quota.subjects import subjects_for
from broker.mcp.access import AccessPolicy
from broker.mcp.calls import CallTimeline, trace_id_of
from broker.mcp.catalog import CatalogView, namespaced, page
from broker.mcp.errors import BrokerError, UnknownTool
from broker.mcp.pool import UpstreamPool

log = logging.getLogger(__name__)
PRINCIPAL = "warden_principal"
SERVER_SCOPE = "warden_server_scope"
FIRST_CONNECT_WAIT = 10.0
SESSION_MEMORY = 1800.0  # the SDK ends idle sessions after 30 minutes; forget them then too
_SESSIONS_BEFORE_PRUNE = 1000


class _ListChangingServer(Server[Any]):
    """The SDK server, advertising ``listChanged`` for tools, prompts and resources (which it forwards)."""

    def create_initialization_options(self, notification_options: NotificationOptions | None = None,
                                      experimental_capabilities: dict[str, dict[str, Any]] | None = None,
                                      extensions: dict[str, dict[str, Any]] | None = None) -> Any:
        options = notification_options or NotificationOptions(prompts_changed=True, resources_changed=True,
                                                              tools_changed=True)
        return super().create_initialization_options(options, experimental_capabilities, extensions)


class McpBroker:
    """Handlers of the aggregate and per-server endpoints, over the upstream pool."""

    def __init__(self, pool: UpstreamPool, access: AccessPolicy, quotas: QuotaEngine, audit: AuditSink,
                 version: str) -> None:
        self._pool = pool
        self._access = access
        self._quotas = quotas
        self._audit = audit
        # Sessions that listed something, with when they were last seen; a weak set is not enough, as the
        # SDK keeps no other strong reference to a session between requests.
        self._sessions: dict[ServerSession, float] = {}
        self.server: Server[Any] = _ListChangingServer(
            "warden", version=version, on_list_tools=self.list_tools, on_call_tool=self.call_tool,
            on_list_prompts=self.list_prompts, on_get_prompt=self.get_prompt,
            on_list_resources=self.list_resources, on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource, on_completion=self.complete,
        )

    async def list_tools(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        view, visible = await self._view(ctx)
        tools, cursor = page(view.tools(visible), _cursor(params))
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    async def list_prompts(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                           ) -> types.ListPromptsResult:
        view, visible = await self._view(ctx)
        prompts, cursor = page(view.prompts(visible), _cursor(params))
        return types.ListPromptsResult(prompts=prompts, next_cursor=cursor)

    async def get_prompt(self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
                         ) -> types.GetPromptResult:
        view, visible = await self._view(ctx)
        async with _as_mcp_errors():
            connection, prompt = view.resolve_prompt(params.name, visible)
            return await connection.forward(lambda s: s.get_prompt(prompt, params.arguments))

    async def list_resources(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                             ) -> types.ListResourcesResult:
        view, visible = await self._view(ctx)
        resources, cursor = page(view.resources(visible), _cursor(params))
        return types.ListResourcesResult(resources=resources, next_cursor=cursor)

    async def list_resource_templates(self, ctx: ServerRequestContext[Any],
                                      params: types.PaginatedRequestParams | None
                                      ) -> types.ListResourceTemplatesResult:
        view, visible = await self._view(ctx)
        templates, cursor = page(view.templates(visible), _cursor(params))
        return types.ListResourceTemplatesResult(resource_templates=templates, next_cursor=cursor)

    async def read_resource(self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
                            ) -> types.ReadResourceResult:
        view, visible = await self._view(ctx)
        async with _as_mcp_errors():
            connection, uri = view.resolve_uri(str(params.uri), visible)
            result = await connection.forward(lambda s: s.read_resource(uri))
            contents = [c.model_copy(update={"uri": view.shown_uri(connection, str(c.uri))})
                        for c in result.contents]
            return result.model_copy(update={"contents": contents})

    async def complete(self, ctx: ServerRequestContext[Any], params: types.CompleteRequestParams
                       ) -> types.CompleteResult:
        view, visible = await self._view(ctx)
        async with _as_mcp_errors():
            ref = params.ref
            upstream_ref: types.PromptReference | types.ResourceTemplateReference
            if isinstance(ref, types.PromptReference):
                connection, name = view.resolve_prompt(ref.name, visible)
                upstream_ref = ref.model_copy(update={"name": name})
            else:
                connection, uri = view.resolve_uri(ref.uri, visible)
                upstream_ref = ref.model_copy(update={"uri": uri})
            context = params.context.arguments if params.context else None
            argument = {"name": params.argument.name, "value": params.argument.value}
            return await connection.forward(lambda s: s.complete(upstream_ref, argument, context))

    def _remember(self, session: ServerSession) -> None:
        now = time.monotonic()
        if session not in self._sessions and len(self._sessions) >= _SESSIONS_BEFORE_PRUNE:
            self._sessions = {s: seen for s, seen in self._sessions.items() if now - seen < SESSION_MEMORY}
        self._sessions[session] = now

    async def catalog_changed(self) -> None:
        """Tell every connected client whose session has a stream open that the lists changed (all at once,
        each bounded, so a stalled or departed client costs nothing to the others)."""
        async def tell(session: ServerSession) -> None:
            try:
                with anyio.fail_after(1):
                    await session.send_tool_list_changed()
                    await session.send_prompt_list_changed()
                    await session.send_resource_list_changed()
            except Exception as exc:  # a gone or stalled client must not stop the others
                log.debug("list_changed not delivered to a session: %s", exc)
                self._sessions.pop(session, None)

        async with anyio.create_task_group() as group:
            for session in list(self._sessions):
                group.start_soon(tell, session)

    async def _view(self, ctx: ServerRequestContext[Any]) -> tuple[CatalogView, Callable[[str], bool]]:
        self._remember(ctx.session)
        principal = _principal(ctx)
        await self._pool.settle(FIRST_CONNECT_WAIT)
        view = CatalogView(self._pool, _server_scope(ctx))
        return view, lambda name: self._access.decide(principal, name).allowed

    async def call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                        ) -> types.CallToolResult:
        """Every call, whatever its outcome, leaves one audit event with its timeline."""
        principal = _principal(ctx)
        timeline = CallTimeline()
        server: str | None = None
        outcome, code = "error", None

        async def report(progress: float, total: float | None, message: str | None) -> None:
            timeline.progress(progress, total, message)
            await ctx.session.report_progress(progress, total, message)

        try:
            view, visible = await self._view(ctx)
            connection, tool = view.resolve_tool(params.name, visible)
            server = connection.name
            await self._quotas.admit(QuotaRequest("mcp", subjects_for(
                principal, mcp_server=connection.name, tool=namespaced(connection.name, tool))))
            result = await connection.call_tool(tool, params.arguments, progress=report)
            outcome = "tool_error" if result.is_error else "ok"
            return result
        except BrokerError as exc:
            outcome, code = ("refused" if isinstance(exc, UnknownTool) else "error"), exc.code
            raise exc.to_mcp() from exc
        except (QuotaExceeded, LimiterUnavailable) as exc:
            error = exc.jsonrpc_error()
            outcome, code = "refused", int(str(error["code"]))
            raise MCPError(code, str(error["message"]), error["data"]) from exc
        except MCPError as exc:
            code = exc.code
            raise
        finally:
            timeline.finish(outcome, code)
            shown = namespaced(server, params.name) if server and _server_scope(ctx) else params.name
            event = timeline.audit_event(principal, trace_id_of(ctx.request), server, shown, params.arguments,
                                         outcome, code)
            with anyio.CancelScope(shield=True):  # a cancelled call is audited too
                await self._audit.record(event)


def _cursor(params: types.PaginatedRequestParams | None) -> str | None:
    return params.cursor if params is not None else None


def _server_scope(ctx: ServerRequestContext[Any]) -> str | None:
    """The server a per-server endpoint (``/mcp/<server>``) serves; None on the aggregate endpoint."""
    request = ctx.request
    return request.scope.get("state", {}).get(SERVER_SCOPE) if isinstance(request, Request) else None


@asynccontextmanager
async def _as_mcp_errors() -> AsyncIterator[None]:
    try:
        yield
    except BrokerError as exc:
        raise exc.to_mcp() from exc


def _principal(ctx: ServerRequestContext[Any]) -> Principal:
    request = ctx.request
    principal = request.scope.get("state", {}).get(PRINCIPAL) if isinstance(request, Request) else None
    if not isinstance(principal, Principal):
        raise MCPError(-32001, "request is not authenticated")
    return principal


class AuthenticatedMcpApp:
    """ASGI app for ``/mcp``: authenticate the key for the ``mcp`` surface, then hand over to the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager, identity: Identity, pool: UpstreamPool,
                 allowed_origins: tuple[str, ...] = ()) -> None:
        self._inner = StreamableHTTPASGIApp(manager)
        self._identity = identity
        self._pool = pool
        self._allowed_origins = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        origin = request.headers.get("origin")
        if origin is not None and origin not in self._allowed_origins:
            # MCP Streamable HTTP (2025-06-18+, Security Warning): validate Origin against DNS rebinding.
            # Agents and SDKs send none; a browser page may only talk to /mcp from an allowed origin.
            body = error_body("origin_not_allowed", f"requests from origin {origin!r} are not allowed")
            await JSONResponse(body, 403)(scope, receive, send)
            return
        try:
            principal = await self._identity.principal_for_key(presented_key(request), "mcp")
        except WardenError as exc:
            response = await warden_error(request, exc)
            await response(scope, receive, send)
            return
        server = scope.get("path_params", {}).get("server")
        if server is not None and self._pool.get(server) is None:
            await JSONResponse(error_body("not_found", f"no MCP server named {server!r}"), 404)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[PRINCIPAL], state[SERVER_SCOPE] = principal, server
        await self._inner(scope, receive, send)
