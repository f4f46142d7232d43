"""One upstream MCP server behind one supervised client session.

``run`` keeps the session open: it connects (spawning the process for stdio), initializes, watches the
connection with pings, and reconnects with exponential backoff when it drops. Calls wait a bounded time
for a live session, go through the circuit breaker, and are bounded by the server's timeout.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.session import ElicitationFnT, ListRootsFnT, LoggingFnT, MessageHandlerFnT, SamplingFnT
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import SubscriptionLost, listen
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import CONNECTION_CLOSED, UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from broker.kernel.breaker import CircuitBreaker
from broker.kernel.clock import Clock
from broker.mcp.direct_call import DirectLane
from broker.mcp.errors import UpstreamTimeout, UpstreamUnavailable
from broker.mcp.http_transport import AiohttpTransport
from broker.mcp.servers import UpstreamDefinition
from broker.outbound import Outbound

log = logging.getLogger(__name__)
T = TypeVar("T")
Health = Literal["connecting", "healthy", "degraded", "down", "disabled", "per_user"]

CONNECT_TIMEOUT = 20.0
PING_INTERVAL = 15.0
_TRANSPORT_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream,
                     httpx2.HTTPError)


@dataclass(frozen=True, slots=True)
class Presented:
    """What a credential adds to each request: headers, or query parameters for upstreams that take them so."""

    headers: dict[str, str] = field(default_factory=dict, repr=False)
    query: dict[str, str] = field(default_factory=dict, repr=False)


class CredentialSource(Protocol):
    """The credential an upstream session presents, read before every request (it may be refreshed)."""

    async def current(self) -> Presented: ...

    async def rejected(self, presented: Presented) -> Presented | None:
        """The upstream answered 401 to ``presented``: a fresher credential to retry with once, or None."""
        ...


@dataclass(frozen=True, slots=True)
class Reach:
    """How Warden reaches an upstream over HTTP: the outbound guard, and the credential it presents."""

    outbound: Outbound = field(default_factory=Outbound)
    credential: CredentialSource | None = None


class UpstreamConnection:
    """A supervised session to one upstream; its tools are cached and refreshed on ``list_changed``."""

    def __init__(self, definition: UpstreamDefinition, clock: Clock,
                 on_tools_changed: Callable[[], Awaitable[None]] | None = None,
                 on_resource_updated: Callable[[str, str], Awaitable[None]] | None = None,
                 reach: Reach | None = None) -> None:
        self.definition = definition
        self.reach = reach or Reach()
        self.health: Health = "connecting"
        self.last_error: str | None = None
        self.tools: list[types.Tool] = []
        self.prompts: list[types.Prompt] = []
        self.resources: list[types.Resource] = []
        self.templates: list[types.ResourceTemplate] = []
        self.breaker = CircuitBreaker(clock)
        self._session: ClientSession | None = None
        self._ready = anyio.Event()
        self._reconnect = anyio.Event()
        self._on_tools_changed = on_tools_changed
        self._on_resource_updated = on_resource_updated
        # Resources clients listen to through this shared session, with how many listeners each has;
        # subscribed upstream while any has one, and again after every reconnection.
        self._watched: dict[str, int] = {}
        self._watch_changed = anyio.Event()  # a 2026-07-28 upstream's listen stream must name new URIs
        self._capabilities: types.ServerCapabilities | None = None
        self.modern = False  # whether the upstream speaks only the 2026-07-28 revision (no session back-channel)

    @property
    def name(self) -> str:
        return self.definition.name

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; until cancelled."""
        backoff = 0.5
        while True:
            try:
                await self._serve_once()
                backoff = 0.5
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("MCP upstream %s unavailable: %s", self.name, self.last_error)
            self.health = "down"
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _serve_once(self) -> None:
        async with open_client(self, ClientCallbacks(message_handler=self._on_message)) as (
            session, capabilities
        ):
            with anyio.fail_after(CONNECT_TIMEOUT):
                self._capabilities = capabilities
                self.modern = session.protocol_version in MODERN_PROTOCOL_VERSIONS
                await self._fetch_catalog(session)
            for uri in list(self._watched):
                await self._subscribe(session, uri, subscribe=True)
            self._session, self.health, self.last_error = session, "healthy", None
            self._ready.set()
            log.info("MCP upstream %s connected (%d tools)", self.name, len(self.tools))
            if self._on_tools_changed is not None:
                await self._on_tools_changed()
            try:
                await self._watch(session)
            finally:
                # The last known catalog stays listed while reconnecting; calls say the server is unavailable.
                self._session, self._ready, self._reconnect = None, anyio.Event(), anyio.Event()

    async def _watch(self, session: ClientSession) -> None:
        """Return when the connection must be rebuilt: a failed ping, or a call that saw it break."""
        async with anyio.create_task_group() as group:
            async def ping_forever() -> None:
                while True:
                    await anyio.sleep(PING_INTERVAL)
                    with anyio.fail_after(self.definition.timeout_seconds):
                        await session.send_ping()

            group.start_soon(ping_forever)
            if self.modern:
                group.start_soon(self._listen_for_changes, session)
            await self._reconnect.wait()
            group.cancel_scope.cancel()

    async def _listen_for_changes(self, session: ClientSession) -> None:
        """A 2026-07-28 upstream announces changes on a ``subscriptions/listen`` stream, not a session: keep
        one open for list changes and the watched resources, opened again when it ends or the watched set
        changes; refresh the catalog on a list change, pass resource updates on."""
        while True:
            watched = sorted(self._watched)
            try:
                async with listen(session, tools_list_changed=True, prompts_list_changed=True,
                                  resources_list_changed=True, resource_subscriptions=watched) as subscription, \
                        anyio.create_task_group() as group:
                    async def relisten_on_change() -> None:
                        await self._watch_changed.wait()
                        group.cancel_scope.cancel()

                    group.start_soon(relisten_on_change)
                    async for event in subscription:
                        if isinstance(event, ResourceUpdated):
                            if self._on_resource_updated is not None:
                                await self._on_resource_updated(self.name, event.uri)
                        else:
                            await self._on_message(types.ToolListChangedNotification())
                    group.cancel_scope.cancel()
            except (MCPError, SubscriptionLost, *_TRANSPORT_ERRORS) as exc:
                log.info("MCP upstream %s: listen stream ended (%s); listening again", self.name, exc)
                await anyio.sleep(1.0)
            if self._watch_changed.is_set():
                self._watch_changed = anyio.Event()

    async def _fetch_catalog(self, session: ClientSession) -> None:
        """Tools, prompts, resources and templates, each fetched page by page where the server offers them."""
        caps = self._capabilities
        if caps is None or caps.tools is not None:
            self.tools = await _all_pages(session.list_tools, "tools")
        if caps is not None and caps.prompts is not None:
            self.prompts = await _all_pages(session.list_prompts, "prompts")
        if caps is not None and caps.resources is not None:
            self.resources = await _all_pages(session.list_resources, "resources")
            self.templates = await _all_pages(session.list_resource_templates, "resource_templates")

    async def watch_resource(self, uri: str) -> None:
        """Count one more listener of ``uri``; the first one subscribes upstream (when the upstream can)."""
        self._watched[uri] = self._watched.get(uri, 0) + 1
        if self._watched[uri] == 1:
            self._watch_changed.set()
            if self._session is not None:
                await self._subscribe(self._session, uri, subscribe=True)

    async def unwatch_resource(self, uri: str) -> None:
        left = self._watched.get(uri, 0) - 1
        if left > 0:
            self._watched[uri] = left
            return
        self._watched.pop(uri, None)
        self._watch_changed.set()
        if self._session is not None:
            await self._subscribe(self._session, uri, subscribe=False)

    async def _subscribe(self, session: ClientSession, uri: str, subscribe: bool) -> None:
        caps = self._capabilities
        if self.modern or caps is None or caps.resources is None or not caps.resources.subscribe:
            return
        request: types.SubscribeRequest | types.UnsubscribeRequest = (
            types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)) if subscribe
            else types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri)))
        try:
            with anyio.fail_after(self.definition.timeout_seconds):
                await session.send_request(request, types.EmptyResult)
        except (TimeoutError, MCPError, *_TRANSPORT_ERRORS) as exc:
            log.warning("MCP upstream %s: could not %s %s: %s", self.name, request.method, uri, exc)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification) and self._on_resource_updated is not None:
            await self._on_resource_updated(self.name, str(message.params.uri))
            return
        changed = (types.ToolListChangedNotification, types.PromptListChangedNotification,
                   types.ResourceListChangedNotification)
        if isinstance(message, changed) and self._session is not None:
            try:
                with anyio.fail_after(self.definition.timeout_seconds):
                    await self._fetch_catalog(self._session)
            except (TimeoutError, MCPError, *_TRANSPORT_ERRORS) as exc:
                log.warning("MCP upstream %s: could not refresh its catalog: %s", self.name, exc)
                return
            if self._on_tools_changed is not None:
                await self._on_tools_changed()

    @property
    def capabilities(self) -> types.ServerCapabilities | None:
        return self._capabilities

    async def forward(self, operation: Callable[[ClientSession], Awaitable[T]],
                      session: ClientSession | None = None) -> T:
        """Run one request through the breaker, bounded by the server's timeout: on ``session`` (a client's
        own session to this upstream) when given, else on the shared supervised session."""
        shared = session is None
        if session is None:
            session = await self._live_session()
        if not self.breaker.allow():
            raise UpstreamUnavailable(f"MCP server {self.name!r} is failing; its circuit breaker is open",
                                      server=self.name, breaker="open")
        try:
            with anyio.fail_after(self.definition.timeout_seconds):
                result = await operation(session)
        except TimeoutError as exc:
            self._failed()
            raise UpstreamTimeout(f"MCP server {self.name!r} did not answer within"
                                  f" {self.definition.timeout_seconds:g}s", server=self.name) from exc
        except _TRANSPORT_ERRORS as exc:
            self._failed(reconnect=shared)
            raise UpstreamUnavailable(f"MCP server {self.name!r} dropped the connection", server=self.name) from exc
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:  # the SDK's word for a transport that went away mid-call
                self._failed(reconnect=shared)
                raise UpstreamUnavailable(f"MCP server {self.name!r} closed the connection",
                                          server=self.name) from exc
            self.breaker.succeeded()  # the upstream answered; a protocol-level refusal is not an outage
            raise
        self.breaker.succeeded()
        self.health = "healthy"
        return result

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def _live_session(self) -> ClientSession:
        if not self.definition.enabled:
            raise UpstreamUnavailable(f"MCP server {self.name!r} is disabled", server=self.name)
        if not self._ready.is_set():
            with anyio.move_on_after(min(self.definition.timeout_seconds, 10.0)):
                await self._ready.wait()
        if self._session is None:
            raise UpstreamUnavailable(f"MCP server {self.name!r} is unavailable: {self.last_error or 'connecting'}",
                                      server=self.name)
        return self._session

    def _failed(self, reconnect: bool = False) -> None:
        self.breaker.failed()
        self.health = "degraded" if self.breaker.state == "closed" else "down"
        if reconnect:
            self._reconnect.set()


@dataclass(frozen=True, slots=True)
class ClientCallbacks:
    """What a client session to an upstream does with the upstream's own requests and notifications;
    a callback left out is a capability not declared (the SDK refuses such requests)."""

    message_handler: MessageHandlerFnT | None = None
    sampling: SamplingFnT | None = None
    sampling_capabilities: types.SamplingCapability | None = None
    elicitation: ElicitationFnT | None = None
    list_roots: ListRootsFnT | None = None
    logging: LoggingFnT | None = None


class _ModernOnly(Exception):
    """The upstream refused the initialize handshake: it speaks only the 2026-07-28 revision."""


@asynccontextmanager
async def open_client(connection: UpstreamConnection, callbacks: ClientCallbacks
                      ) -> AsyncIterator[tuple[ClientSession, types.ServerCapabilities]]:
    """A ready client session to the upstream (spawning the process for stdio), and the upstream's
    capabilities; closed on exit.

    The initialize handshake comes first: every server of the handshake era needs it and servers of both
    eras accept it, and it keeps the upstream's requests to the client (sampling, elicitation, roots) on the
    session. An upstream of the 2026-07-28 revision only refuses it (-32022); it is then reached on a fresh
    connection (a refused handshake may have settled the old one's era) with ``server/discover``.
    """
    try:
        async with _opened(connection, callbacks, modern=False) as opened:
            yield opened
            return
    except* _ModernOnly:  # raised inside the transport's task groups, so it arrives grouped
        log.info("MCP upstream %s speaks only the 2026-07-28 revision", connection.name)
    async with _opened(connection, callbacks, modern=True) as opened:
        yield opened


class UpstreamSession(ClientSession):
    """The SDK's client session, with the direct lane of its HTTP connections (Streamable HTTP only)."""

    direct: DirectLane | None = None


def direct_lane(session: ClientSession) -> DirectLane | None:
    return session.direct if isinstance(session, UpstreamSession) else None


@asynccontextmanager
async def _opened(connection: UpstreamConnection, callbacks: ClientCallbacks, modern: bool
                  ) -> AsyncIterator[tuple[ClientSession, types.ServerCapabilities]]:
    async with _transport(connection.definition, connection.reach) as (read, write, lane), UpstreamSession(
        read, write, message_handler=callbacks.message_handler, sampling_callback=callbacks.sampling,
        sampling_capabilities=callbacks.sampling_capabilities, elicitation_callback=callbacks.elicitation,
        list_roots_callback=callbacks.list_roots, logging_callback=callbacks.logging,
    ) as session:
        session.direct = lane
        with anyio.fail_after(CONNECT_TIMEOUT):
            if modern:
                capabilities = (await session.discover()).capabilities
            else:
                try:
                    capabilities = (await session.initialize()).capabilities
                except MCPError as exc:
                    if exc.code == UNSUPPORTED_PROTOCOL_VERSION:
                        raise _ModernOnly from exc
                    raise
        yield session, capabilities


@asynccontextmanager
async def _transport(d: UpstreamDefinition, reach: Reach) -> AsyncIterator[tuple[Any, Any, DirectLane | None]]:
    if d.transport == "stdio":
        assert d.command is not None
        params = StdioServerParameters(command=d.command, args=list(d.args), env=d.env or None)
        async with stdio_client(params, errlog=sys.stderr) as streams:
            yield streams[0], streams[1], None
        return
    assert d.url is not None
    reach.outbound.policy.check_literal(d.url)
    auth = _CredentialAuth(reach.credential) if reach.credential is not None else None
    if d.transport == "streamable_http":
        # The direct lane replays the headers the SDK last sent; a credential that may be refreshed is applied
        # per request by the SDK's client only, so such upstreams take the SDK path.
        lane = DirectLane(d.url) if auth is None else None
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(d.timeout_seconds, read=None), auth=auth,
                                      transport=AiohttpTransport(reach.outbound, lane)) as http, \
                streamable_http_client(d.url, http_client=http) as streams:
            yield streams[0], streams[1], lane
    else:
        def client(headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None,
                   auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
            return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth,
                                      transport=AiohttpTransport(reach.outbound))

        async with sse_client(d.url, timeout=d.timeout_seconds, httpx_client_factory=client, auth=auth) as streams:
            yield streams[0], streams[1], None


class _CredentialAuth(httpx2.Auth):
    """Presents the current credential on every request to the upstream; on a 401 asks the source for a
    fresher one (a refresh) and retries once."""

    def __init__(self, source: CredentialSource) -> None:
        self._source = source

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        presented = await self._source.current()
        response = yield _with(request, presented)
        if response.status_code == 401 and (fresher := await self._source.rejected(presented)) is not None:
            yield _with(request, fresher)


def _with(request: httpx2.Request, presented: Presented) -> httpx2.Request:
    request.headers.update(presented.headers)
    if presented.query:
        request.url = request.url.copy_merge_params(presented.query)
    return request


async def _all_pages(list_page: Callable[..., Awaitable[Any]], field: str) -> list[Any]:
    """Every item of a paginated MCP list, following ``nextCursor``."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page = await list_page(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        items += getattr(page, field)
        cursor = page.next_cursor
        if not cursor:
            return items
