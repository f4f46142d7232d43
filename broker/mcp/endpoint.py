"""The downstream ``/mcp`` endpoint: MCP Streamable HTTP served by the official SDK, authenticated by a
Warden API key with the ``mcp`` surface, with every tool call admitted by the quota kernel."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import anyio
import mcp_types as types
import orjson
from anyio.abc import TaskGroup
from mcp import ClientSession
from mcp.client._input_required import run_input_required_driver
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.caching import CACHEABLE_METHODS, CacheHint
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.methods import CacheableMethod
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from broker.authserver.server import ACCESS_PREFIX, McpAuthorizationServer
from broker.edge.credentials import presented_key
from broker.edge.errors import error_body, warden_error
from broker.kernel.audit.capture import BodyCapture
from broker.kernel.audit.events import AuditEvent, with_bodies
from broker.kernel.audit.ports import AuditSink
from broker.kernel.bus.ports import Broadcast, Message
from broker.kernel.crypto import SecretBox
from broker.kernel.errors import AuditUnavailable, WardenError
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.errors import LimiterUnavailable, QuotaExceeded
from broker.kernel.quota.models import QuotaRequest
from broker.kernel.quota.subjects import subjects_for
from broker.mcp.access import AccessPolicy
from broker.mcp.calls import CallTimeline, request_context_of
from broker.mcp.catalog import CatalogView, namespaced, page
from broker.mcp.client_sessions import ClientUpstreams, SessionBudget, can_be_asked
from broker.mcp.consent import LinkConsent, can_elicit_url
from broker.mcp.credentials import NoUserCredentials, UserCredentials
from broker.mcp.errors import BrokerError, CredentialRequired, UnknownTool, UpstreamUnavailable
from broker.mcp.input_bridge import InputBridge, Retryable
from broker.mcp.live_calls import LiveCall, LiveCalls
from broker.mcp.pool import UpstreamPool
from broker.mcp.result_cache import MemoryResultCache, ResultCache, cache_key
from broker.mcp.session_store import SessionDirectory
from broker.mcp.upstream import UpstreamConnection, direct_lane
from broker.mcp.user_upstreams import UserUpstreams, account_of
from broker.mcp.virtual import VirtualServers

log = logging.getLogger(__name__)
# The caller and endpoint (``/mcp/<server>``, or None) of the request being served, set by AuthenticatedMcpApp:
# what the SDK's synchronous input-schema lookup needs to see the catalog as that caller does.
_CALLER: ContextVar[tuple[Principal, str | None] | None] = ContextVar("warden_mcp_caller", default=None)
PRINCIPAL = "warden_principal"
SERVER_SCOPE = "warden_server_scope"
FIRST_CONNECT_WAIT = 10.0
T = TypeVar("T")
R = TypeVar("R")
LIST_TTL_MS = 30_000


class _ListChangingServer(Server[Any]):
    """The SDK server, advertising ``listChanged`` for tools, prompts and resources (which it forwards)."""

    def create_initialization_options(self, notification_options: NotificationOptions | None = None,
                                      experimental_capabilities: dict[str, dict[str, Any]] | None = None,
                                      extensions: dict[str, dict[str, Any]] | None = None) -> Any:
        options = notification_options or NotificationOptions(prompts_changed=True, resources_changed=True,
                                                              tools_changed=True)
        return super().create_initialization_options(options, experimental_capabilities, extensions)


@dataclass(frozen=True, slots=True)
class BrokerExtras:
    """The broker's optional collaborators and settings, with single-instance defaults."""

    cache: ResultCache = field(default_factory=MemoryResultCache)
    credentials: UserCredentials = field(default_factory=NoUserCredentials)
    connections_url: str = "http://127.0.0.1:3001/connections"
    virtuals: VirtualServers = field(default_factory=VirtualServers)
    box: SecretBox | None = None  # seals input_required state; without it, such upstream requests are refused
    directory: SessionDirectory | None = None  # shares client sessions' settings between instances
    broadcast: Broadcast | None = None
    sessions_per_server: int = 50
    user_upstreams: UserUpstreams | None = None  # sessions of per-user servers, each with a user's account
    consent: LinkConsent | None = None  # asks callers in band to link a missing account
    capture: BodyCapture | None = None  # captures tool arguments and results into audit events
    live: LiveCalls | None = None  # tool calls as they run, for consoles watching


class McpBroker:
    """Handlers of the aggregate and per-server endpoints, over the upstream pool."""

    def __init__(self, pool: UpstreamPool, access: AccessPolicy, quotas: QuotaEngine, audit: AuditSink,
                 version: str, extras: BrokerExtras | None = None) -> None:
        extras = extras or BrokerExtras()
        self._pool = pool
        self._access = access
        self._quotas = quotas
        self._audit = audit
        self._cache = extras.cache
        self._virtuals = extras.virtuals
        self._directory = extras.directory
        self._broadcast = extras.broadcast
        if extras.broadcast is not None:
            extras.broadcast.subscribe(SETTINGS_CHANNEL, self._settings_changed)
        self._credentials = extras.credentials
        self._connections_url = extras.connections_url
        self._user_upstreams = extras.user_upstreams
        self._consent = extras.consent
        self._capture = extras.capture
        self._live = extras.live
        self._budget = SessionBudget(extras.sessions_per_server)
        self._bridge = InputBridge(extras.box, self._budget) if extras.box is not None else None
        # Every stateful client session, with its own upstream sessions; dropped when the session ends.
        self._clients: dict[Connection, ClientUpstreams] = {}
        self._group: TaskGroup | None = None
        # 2026-07-28 clients learn of list changes on subscriptions/listen streams rather than a GET stream.
        self._events = InMemorySubscriptionBus()
        self._listen = ListenHandler(self._events)
        self.server: Server[Any] = _ListChangingServer(
            "warden", version=version, on_list_tools=self.list_tools, on_call_tool=self.call_tool,
            on_subscriptions_listen=self.listen,
            # Catalogs are per caller (access rules), so a client may cache them only for itself, briefly.
            cache_hints={cast("CacheableMethod", method): CacheHint(ttl_ms=LIST_TTL_MS, scope="private")
                         for method in CACHEABLE_METHODS},
            on_list_prompts=self.list_prompts, on_get_prompt=self.get_prompt,
            on_list_resources=self.list_resources, on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource, on_completion=self.complete,
            on_subscribe_resource=self.subscribe, on_unsubscribe_resource=self.unsubscribe,
            get_tool_input_schema=self.input_schema,
        )
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            # The SDK wraps every request in an OpenTelemetry span, which costs a few per cent of a plain call
            # even when no tracer provider is configured and the spans go nowhere; kept when one is (for example
            # under opentelemetry-instrument).
            self.server.middleware[:] = [m for m in self.server.middleware
                                         if not isinstance(m, OpenTelemetryMiddleware)]
        # Logging and roots are deprecated in 2026-07-28 (the SDK warns when they are passed to the constructor)
        # but handshake-era clients use them, and a transparent proxy passes them through.
        self.server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self.set_level)
        self.server.add_notification_handler("notifications/roots/list_changed", types.NotificationParams,
                                             self.roots_changed)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Host the clients' own upstream sessions; all of them close (stdio children reaped) on exit."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._listen.close()
                self._group = None
                for client in self._clients.values():
                    client.close()
                self._clients.clear()
                group.cancel_scope.cancel()

    async def _settings_changed(self, message: Message) -> None:
        for connection, client in list(self._clients.items()):
            if connection.session_id == message.get("session"):
                client.settings_changed()

    def sessions_in_use(self, server: str) -> int:
        return self._budget.in_use(server)

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
                         ) -> types.GetPromptResult | types.InputRequiredResult:
        view, visible = await self._view(ctx)
        async with _as_mcp_errors():
            connection, prompt = view.resolve_prompt(params.name, visible)
            return await self._with_input(ctx, connection, params, lambda s, responses, state: s.get_prompt(
                prompt, params.arguments, input_responses=responses, request_state=state, allow_input_required=True))

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
                            ) -> types.ReadResourceResult | types.InputRequiredResult:
        view, visible = await self._view(ctx)
        async with _as_mcp_errors():
            connection, uri = view.resolve_uri(str(params.uri), visible)
            result = await self._with_input(ctx, connection, params, lambda s, responses, state: s.read_resource(
                uri, input_responses=responses, request_state=state, allow_input_required=True))
            if isinstance(result, types.InputRequiredResult):
                return result
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
            return await self._forward(ctx, connection, lambda s: s.complete(upstream_ref, argument, context))

    async def subscribe(self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
                        ) -> types.EmptyResult:
        """Subscribe on the client's own upstream session, whose updates are relayed to this client only."""
        return await self._subscription(ctx, str(params.uri), subscribe=True)

    async def unsubscribe(self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
                          ) -> types.EmptyResult:
        return await self._subscription(ctx, str(params.uri), subscribe=False)

    async def _subscription(self, ctx: ServerRequestContext[Any], shown: str, subscribe: bool) -> types.EmptyResult:
        view, visible = await self._view(ctx)
        client = self._client(ctx)
        async with _as_mcp_errors():
            connection, uri = view.resolve_uri(shown, visible)
            if client is None:
                raise MCPError(types.INVALID_REQUEST, "resource subscriptions need a session (initialize first)")
            request: types.SubscribeRequest | types.UnsubscribeRequest = (
                types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)) if subscribe
                else types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri)))
            result = await self._forward(ctx, connection, lambda s: s.send_request(request, types.EmptyResult))
            if subscribe:
                await client.subscribed(connection.name, uri, shown)
            else:
                await client.unsubscribed(connection.name, uri)
            return result

    async def set_level(self, ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
                        ) -> types.EmptyResult:
        """``logging/setLevel`` for this client's sessions to the upstreams this endpoint serves."""
        view, _ = await self._view(ctx)
        client = self._client(ctx)
        if client is not None:
            async with _as_mcp_errors():
                await client.set_level(params.level, view.connections())
        return types.EmptyResult()

    async def roots_changed(self, ctx: ServerRequestContext[Any], params: types.NotificationParams | None) -> None:
        client = self._client(ctx)
        if client is not None:
            await client.roots_changed()

    def _client(self, ctx: ServerRequestContext[Any]) -> ClientUpstreams | None:
        """The client's session state, created with its first request; None for stateless requests."""
        connection = _connection_of(ctx)
        if connection.session_id is None or self._group is None:
            return None
        client = self._clients.get(connection)
        if client is None:
            settings = (_DirectorySettings(self._directory, self._broadcast, connection.session_id)
                        if self._directory else None)
            client = ClientUpstreams(self._group, self._budget, connection.client_capabilities, settings)
            self._clients[connection] = client

            def ended() -> None:
                client.close()
                self._clients.pop(connection, None)

            connection.exit_stack.callback(ended)
        client.seen(ctx.session)
        return client

    async def _forward(self, ctx: ServerRequestContext[Any], connection: UpstreamConnection,
                       operation: Callable[[ClientSession], Awaitable[T]]) -> T:
        """Forward on the client's own upstream session when it has one, with the request marked in flight."""
        client = self._client(ctx)
        if client is None:
            return await connection.forward(operation)
        session = await client.session_for(connection)
        with client.calling(ctx.session, ctx.request_id):
            try:
                return await connection.forward(operation, session)
            except UpstreamUnavailable:
                client.discard(connection)  # a dead stdio child is restarted by the next request
                raise

    async def listen(self, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
                     ) -> types.SubscriptionsListenResult:
        """A 2026-07-28 client's event stream; the resources it names are watched upstream while it lasts.
        A URI the caller may not read, or of no known server, is acknowledged and never fires."""
        view, visible = await self._view(ctx)
        watched: list[tuple[UpstreamConnection, str]] = []
        try:
            for uri in params.notifications.resource_subscriptions or ():
                try:
                    connection, upstream_uri = view.resolve_uri(uri, visible)
                except BrokerError:
                    continue
                await connection.watch_resource(upstream_uri)
                watched.append((connection, upstream_uri))
            return await self._listen(ctx, params)
        finally:
            with anyio.CancelScope(shield=True):
                for connection, upstream_uri in watched:
                    await connection.unwatch_resource(upstream_uri)

    async def resource_updated(self, server: str, uri: str) -> None:
        """An upstream resource changed: tell listeners, by the URI as each endpoint shows it."""
        for shown in (f"{server}+{uri}", uri):
            await self._events.publish(ResourceUpdated(uri=shown))

    async def catalog_changed(self) -> None:
        """Tell every connected client that the lists changed (all at once, each bounded, so a stalled or
        departed client costs nothing to the others)."""
        async def tell(session: ServerSession) -> None:
            try:
                with anyio.fail_after(1):
                    await session.send_tool_list_changed()
                    await session.send_prompt_list_changed()
                    await session.send_resource_list_changed()
            except Exception as exc:  # a gone or stalled client must not stop the others
                log.debug("list_changed not delivered to a session: %s", exc)

        async with anyio.create_task_group() as group:
            for client in list(self._clients.values()):
                if client.latest is not None:
                    group.start_soon(tell, client.latest)
        for event in (ToolsListChanged(), PromptsListChanged(), ResourcesListChanged()):
            await self._events.publish(event)

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        """A tool's input schema as the caller of the request being served sees it on its endpoint; None for a
        tool it may not call. The SDK checks a 2026-07-28 call's ``Mcp-Param-*`` headers against it (without
        this lookup it would list the caller's whole catalog on every call to find one schema)."""
        caller = _CALLER.get()
        if caller is None:
            return None
        principal, server = caller
        view = self._catalog(server)
        try:
            connection, tool = view.resolve_tool(name, lambda shown: self._access.decide(principal, shown).allowed)
        except BrokerError:
            return None
        return next((t.input_schema for t in connection.tools if t.name == tool), None)

    def only_a_response(self, scope: Scope, request: dict[str, Any]) -> bool:
        """Whether handling ``request`` sends the client nothing but the response, given that the client
        asked for no progress and can be asked nothing: the lists come from Warden's catalog, and a tool of
        an upstream that declares no logging sends nothing else (the transport then answers with one JSON
        body instead of an SSE stream)."""
        method = request.get("method")
        if method in _ANSWERED_HERE:
            return True
        params = request.get("params")
        if method != "tools/call" or not isinstance(params, dict):
            return False
        view = self._catalog(scope.get("state", {}).get(SERVER_SCOPE))
        try:
            connection, _ = view.resolve_tool(str(params.get("name")), lambda _: True)
        except BrokerError:
            # Its answer is an error, unless an upstream still making its first connection brings the tool: the
            # call waits for it (see _view), and that upstream may log during it.
            return not any(c.health == "connecting" for c in self._pool.connections())
        return _quiet(connection)

    async def _view(self, ctx: ServerRequestContext[Any]) -> tuple[CatalogView, Callable[[str], bool]]:
        self._client(ctx)
        principal = _principal(ctx)
        await self._pool.settle(FIRST_CONNECT_WAIT)
        return (self._catalog(_server_scope(ctx), await self._own_sessions(principal)),
                lambda name: self._access.decide(principal, name).allowed)

    async def _own_sessions(self, principal: Principal) -> dict[str, UpstreamConnection | None]:
        """The caller's own sessions to per-user servers they linked; None for a server that shows nothing
        until linked. Per-user servers listable without an account keep the pool's (anonymous) session."""
        own: dict[str, UpstreamConnection | None] = {}
        if self._user_upstreams is None:
            return own
        for shared in self._pool.connections():
            auth = shared.definition.auth
            if auth.per_user and shared.definition.enabled:
                mine = await self._user_upstreams.connection_for(principal, shared.definition)
                if mine is not None or auth.requires_user_auth:
                    own[shared.name] = mine
        return own

    def _catalog(self, server: str | None, own: dict[str, UpstreamConnection | None] | None = None) -> CatalogView:
        """The catalog of an endpoint: the aggregate (None), one upstream, or a virtual server."""
        return CatalogView(self._pool, server, self._virtuals.get(server) if server else None, own)

    def _link_required(self, server: str, tool: str, principal: Principal | None = None) -> CredentialRequired:
        """-32050 with the connections page; ``link_url`` (kept out of the error's data) starts linking the
        account in one step, for asking in band."""
        url = f"{self._connections_url}?server={server}"
        required = CredentialRequired(f"{tool} runs with your own {server} account, which is not linked or needs"
                                      f" authorization again; link it at {url}", server=server, tool=tool,
                                      connect_url=url)
        shared = self._pool.get(server)
        if shared is not None and shared.definition.auth.mode == "oauth":
            pinned = principal.key.pinned_accounts.get(server) if principal and principal.key else None
            required.link_url = f"{self._connections_url}/{server}/connect" + (f"?label={pinned}" if pinned else "")
        else:
            required.link_url = url
        return required

    async def _with_input(self, ctx: ServerRequestContext[Any], connection: UpstreamConnection, params: Retryable,
                          run: Callable[[ClientSession, types.InputResponses | None, str | None],
                                        Awaitable[R | types.InputRequiredResult]],
                          on_input_required: Callable[[], None] | None = None) -> R | types.InputRequiredResult:
        """Run a request the upstream may answer with questions for the client (tools/call, prompts/get,
        resources/read), each era of client and upstream asked and answered as it expects:

        - a 2026-07-28 client able to answer, in front of a handshake-era upstream: the upstream's requests
          become ``input_required`` (the input bridge);
        - an upstream's ``input_required`` is returned as it is to a 2026-07-28 client, which answers and
          retries; a handshake-era client is asked over its session, then the request is retried upstream.
        """
        async def attempt(responses: types.InputResponses | None, state: str | None
                          ) -> R | types.InputRequiredResult:
            return await self._forward(ctx, connection, lambda s: run(s, responses, state))

        first: R | types.InputRequiredResult | None = None
        capabilities = _connection_of(ctx).client_capabilities
        modern_client = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        if modern_client and self._bridge is not None and capabilities is not None \
                and InputBridge.wanted(capabilities, connection):
            first = await self._bridge.call(connection, params, key_of_request(_scope(ctx)), capabilities,
                                            lambda s: run(s, None, None))
        if first is None:
            first = await attempt(params.input_responses, params.request_state)
        if not isinstance(first, types.InputRequiredResult):
            return first
        if on_input_required is not None:
            on_input_required()
        if modern_client:
            return first
        return await run_input_required_driver(first, dispatch=partial(_ask_client, ctx), retry=attempt)

    async def _require_credential(self, principal: Principal, server: str, tool: str) -> None:
        """The hook for per-user credentials: a tool that needs one is refused, with where to link it."""
        if await self._credentials.credential_for(principal, server) is None:
            raise self._link_required(server, tool)

    async def call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                        ) -> types.CallToolResult | types.InputRequiredResult:
        """Every call, whatever its outcome, leaves one audit event with its timeline."""
        principal = _principal(ctx)
        timeline = CallTimeline()
        server: str | None = None
        account: tuple[str, str] | None = None
        shown = params.name  # the upstream's namespaced name once resolved, whatever the endpoint showed
        outcome, code = "error", None
        result: types.CallToolResult | None = None  # kept for body capture

        live: LiveCall | None = None  # the call's steps as they happen, while a console watches

        async def report(progress: float, total: float | None, message: str | None) -> None:
            timeline.progress(progress, total, message)
            await ctx.session.report_progress(progress, total, message)
            if live is not None:
                await live.step("progress", progress=progress, total=total, message=message)

        try:
            asked = False
            if self._consent is not None and (answered := await self._consent.answered(principal, params)):
                params, asked = answered, True  # the retry of a 2026-07-28 client Warden asked to link
            while True:
                view, visible = await self._view(ctx)
                try:
                    connection, tool = self._callable(view, params.name, visible, principal)
                    break
                except CredentialRequired as required:
                    server = str(required.data["server"])
                    question = None if asked else await self._ask_to_link(ctx, principal, required)
                    if question is None:
                        raise
                    if isinstance(question, types.InputRequiredResult):
                        outcome = "input_required"
                        return question
                    asked = True
            server, shown = connection.name, namespaced(connection.name, tool)
            if self._live is not None and (live := self._live.start(
                    principal, server, shown, request_context_of(ctx.request, params.meta).trace_id)) is not None:
                await live.step("start")
            options = connection.definition.options_for(tool)
            if options.requires_user_credential:
                await self._require_credential(principal, connection.name, namespaced(connection.name, tool))
            self._audit.admit()
            await self._quotas.admit(QuotaRequest("mcp", subjects_for(
                principal, mcp_server=connection.name, tool=namespaced(connection.name, tool))))
            account = account_of(connection)
            key = cache_key(connection.name, tool, params.arguments, principal, account[1] if account else None
                            ) if options.cache_ttl_seconds else ""
            if key and (cached := await self._cache.get(key)) is not None:
                timeline.mark("cache_hit")
                if live is not None:
                    await live.step("cache_hit")
                outcome = "ok"
                result = types.CallToolResult.model_validate_json(cached)
                return result
            plain = _only_a_result_returns(ctx, connection, params)

            async def run(session: ClientSession, responses: types.InputResponses | None, state: str | None
                          ) -> types.CallToolResult | types.InputRequiredResult:
                lane = direct_lane(session) if plain and responses is None and state is None else None
                if lane is not None and (result := await lane.call_tool(session, tool, params.arguments)) is not None:
                    return result
                return await session.call_tool(tool, params.arguments, progress_callback=report,
                                               input_responses=responses, request_state=state,
                                               allow_input_required=True)

            answer = await self._with_input(ctx, connection, params, run,
                                            on_input_required=lambda: timeline.mark("input_required"))
            if isinstance(answer, types.InputRequiredResult):
                outcome = "input_required"  # the client answers and retries, on any instance
                return answer
            result = answer
            outcome = "tool_error" if result.is_error else "ok"
            if key and not result.is_error:
                await self._cache.put(key, result.model_dump_json(by_alias=True, exclude_none=True),
                                      options.cache_ttl_seconds)
            return result
        except BrokerError as exc:
            if isinstance(exc, UpstreamUnavailable) and server is not None \
                    and await self._needs_link(principal, server):
                exc = self._link_required(server, shown)
            outcome, code = ("refused" if isinstance(exc, UnknownTool | CredentialRequired) else "error"), exc.code
            raise exc.to_mcp() from exc
        except (QuotaExceeded, LimiterUnavailable, AuditUnavailable) as exc:
            error = exc.jsonrpc_error()
            outcome, code = ("unaudited" if isinstance(exc, AuditUnavailable) else "refused"), int(str(error["code"]))
            raise MCPError(code, str(error["message"]), error["data"]) from exc
        except MCPError as exc:
            if server is not None and await self._needs_link(principal, server):
                relink = self._link_required(server, shown)
                outcome, code = "refused", relink.code
                raise relink.to_mcp() from exc
            code = exc.code
            raise
        finally:
            timeline.finish(outcome, code)
            if live is not None:
                with anyio.CancelScope(shield=True):
                    await live.step(outcome, error_code=code)
            if outcome != "unaudited":  # refused because its event could not be kept: counted by the sink
                event = timeline.audit_event(principal, request_context_of(ctx.request, params.meta), server,
                                             shown, params.arguments, outcome, code, account)
                with anyio.CancelScope(shield=True):  # a cancelled call is audited too
                    await self._audit.record(await self._with_bodies(event, params.arguments, result))

    async def _with_bodies(self, event: AuditEvent, arguments: dict[str, Any] | None,
                           result: types.CallToolResult | None) -> AuditEvent:
        capture = self._capture
        if capture is None or not (capture.wants("arguments") or capture.wants("result")):
            return event
        return with_bodies(event, await capture.bodies(
            arguments=orjson.dumps(arguments or {}) if capture.wants("arguments") else None,
            result=result.model_dump_json(by_alias=True, exclude_none=True)
            if result is not None and capture.wants("result") else None))

    def _callable(self, view: CatalogView, name: str, visible: Callable[[str], bool], principal: Principal
                  ) -> tuple[UpstreamConnection, str]:
        """The connection and upstream tool a call goes to; -32050 when it needs an account not linked."""
        if (unlinked := view.unlinked_server(name)) is not None:
            raise self._link_required(unlinked, name, principal)
        connection, tool = view.resolve_tool(name, visible)
        if connection.definition.auth.per_user and connection is self._pool.get(connection.name):
            # Listed through the anonymous shared session; called only as the user.
            raise self._link_required(connection.name, namespaced(connection.name, tool), principal)
        return connection, tool

    async def _ask_to_link(self, ctx: ServerRequestContext[Any], principal: Principal,
                           required: CredentialRequired) -> types.InputRequiredResult | bool | None:
        """Ask the caller to link the account when it can be asked (URL-mode elicitation): True once linked,
        an ``input_required`` result for a 2026-07-28 client; None when it cannot be asked or said no."""
        if self._consent is None or not can_elicit_url(_connection_of(ctx).client_capabilities):
            return None
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return self._consent.input_required(principal, required)
        if _connection_of(ctx).session_id is None:
            return None
        return True if await self._consent.over_session(ctx, ctx.session, principal, required) else None

    async def _needs_link(self, principal: Principal, server: str) -> bool:
        """After a failed call to a per-user server: whether it failed because the caller's account needs
        authorization again (a refresh refused, a token revoked)."""
        connection = self._pool.get(server)
        if self._user_upstreams is None or connection is None or not connection.definition.auth.per_user:
            return False
        return await self._user_upstreams.unusable(principal, server)


SETTINGS_CHANNEL = "mcp.session.settings"
_ANSWERED_HERE = frozenset({"ping", "tools/list", "prompts/list", "resources/list", "resources/templates/list"})


@dataclass(frozen=True, slots=True)
class _DirectorySettings:
    """One client session's settings in the shared session directory; a change is announced to the other
    instances, whose own upstream sessions for this client then take it up."""

    directory: SessionDirectory
    broadcast: Broadcast | None
    session_id: str

    async def load(self) -> dict[str, Any]:
        return await self.directory.settings(self.session_id)

    async def save(self, settings: dict[str, Any]) -> None:
        await self.directory.save_settings(self.session_id, settings)
        if self.broadcast is not None:
            await self.broadcast.publish(SETTINGS_CHANNEL, {"session": self.session_id})


_ANSWERS: dict[str, type[BaseModel]] = {
    "sampling/createMessage": types.CreateMessageResult, "roots/list": types.ListRootsResult,
    "elicitation/create": types.ElicitResult,
}


async def _ask_client(ctx: ServerRequestContext[Any], key: str, request: types.InputRequest
                      ) -> types.InputResponse | types.ErrorData:
    """Put one of an upstream's input requests to a handshake-era client, on the stream of its call."""
    answer_type = _ANSWERS[request.method]
    if isinstance(request, types.CreateMessageRequest) and request.params.tools:
        answer_type = types.CreateMessageResultWithTools
    try:
        answer = await ctx.session.send_request(
            request, answer_type, metadata=ServerMessageMetadata(related_request_id=ctx.request_id))
    except MCPError as exc:
        return exc.error
    except Exception as exc:  # no back-channel: the upstream's call ends with a clear error, not a hang
        return types.ErrorData(code=types.INVALID_REQUEST, message=f"the client cannot answer {request.method}: {exc}")
    return cast("types.InputResponse", answer)


def _only_a_result_returns(ctx: ServerRequestContext[Any], connection: UpstreamConnection,
                           params: types.CallToolRequestParams) -> bool:
    """Whether nothing but the result can come back from a call: no progress asked, a client that can be
    asked nothing, a handshake-era upstream that declares no logging (the direct lane's condition)."""
    if params.meta and params.meta.get("progress_token") is not None:
        return False
    if can_be_asked(_connection_of(ctx).client_capabilities):
        return False
    return not connection.modern and _quiet(connection)


def _quiet(connection: UpstreamConnection) -> bool:
    """Whether an upstream sends nothing during a call but what the call asks for (it declares no logging)."""
    return connection.capabilities is not None and connection.capabilities.logging is None


def _connection_of(ctx: ServerRequestContext[Any]) -> Connection:
    """The downstream connection behind a request (the SDK hands handlers a per-request session view)."""
    return ctx.session._connection  # public only on the SDK's newer Context


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


def _scope(ctx: ServerRequestContext[Any]) -> Scope:
    return ctx.request.scope if isinstance(ctx.request, Request) else {}


def key_of_request(scope: Scope) -> str | None:
    """What an authenticated ``/mcp`` request presented, which its session is bound to: the API key, or for an
    OAuth access token the user it acts for (tokens are renewed during a session)."""
    principal = scope.get("state", {}).get(PRINCIPAL)
    if not isinstance(principal, Principal):
        return None
    if principal.key is not None:
        return principal.key.id
    return f"oauth-user:{principal.user.id}" if principal.user is not None else None


def _principal(ctx: ServerRequestContext[Any]) -> Principal:
    request = ctx.request
    principal = request.scope.get("state", {}).get(PRINCIPAL) if isinstance(request, Request) else None
    if not isinstance(principal, Principal):
        raise MCPError(-32001, "request is not authenticated")
    return principal


REFUSED_BODY_BYTES = 64 << 10  # of a refused request's body, read to name what it asked for


class AuthenticatedMcpApp:
    """ASGI app for ``/mcp``: authenticate the key for the ``mcp`` surface, then hand over to the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager, identity: Identity, pool: UpstreamPool,
                 virtuals: VirtualServers, authorization: McpAuthorizationServer, audit: AuditSink,
                 allowed_origins: tuple[str, ...] = ()) -> None:
        self._audit = audit
        self._virtuals = virtuals
        self._authorization = authorization
        resource = urlsplit(authorization.settings.resource)
        # RFC 9728 section 5.1: a 401 names the metadata that leads clients to the authorization server.
        self._challenge = (f'Bearer resource_metadata="{resource.scheme}://{resource.netloc}'
                           f'/.well-known/oauth-protected-resource{resource.path}"')
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
            await self._refused(request, 403, "origin_not_allowed")
            await JSONResponse(body, 403)(scope, receive, send)
            return
        try:
            token = presented_key(request)
            principal = (await self._authorization.principal_for(token) if token.startswith(ACCESS_PREFIX)
                         else await self._identity.principal_for_key(token, "mcp"))
        except WardenError as exc:
            response = await warden_error(request, exc)
            if response.status_code == 401:
                response.headers["www-authenticate"] = self._challenge
            await self._refused(request, response.status_code, exc.code)
            await response(scope, receive, send)
            return
        server = scope.get("path_params", {}).get("server")
        if server is not None and self._pool.get(server) is None and self._virtuals.get(server) is None:
            await JSONResponse(error_body("not_found", f"no MCP server named {server!r}"), 404)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[PRINCIPAL], state[SERVER_SCOPE] = principal, server
        caller = _CALLER.set((principal, server))
        try:
            await self._inner(scope, receive, send)
        finally:
            _CALLER.reset(caller)

    async def _refused(self, request: Request, status: int, code: str) -> None:
        """Refused before any session or call existed (no key, a bad one, a foreign origin): audited too, with the
        JSON-RPC method it asked for when its body says."""
        method = "-"
        if request.method == "POST" and int(request.headers.get("content-length") or 0) <= REFUSED_BODY_BYTES:
            try:
                message = orjson.loads(await request.body())
                params = message.get("params") or {}
                method = str(message.get("method", "-"))
                if method == "tools/call" and isinstance(params.get("name"), str):
                    method = f"tools/call:{params['name']}"
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                pass
        context = request_context_of(request, None)
        server = request.scope.get("path_params", {}).get("server")
        with anyio.CancelScope(shield=True):
            await self._audit.record(context.audit_event(
                None, surface="mcp", target=f"mcp_server:{server or '-'}", action=method, outcome="refused",
                error_code=status, duration_ms=0.0, detail={"status": status, "code": code}))
