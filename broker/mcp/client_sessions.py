"""A downstream client's own sessions to the upstreams it uses.

A client on a stateful (handshake-era) ``/mcp`` session gets, per upstream it touches, an upstream session of
its own, opened on first use and closed with the client's session. That is what makes the proxy transparent:
what the upstream sends back on its session — sampling, elicitation and roots requests, log messages,
resource-updated notifications — can only belong to this client, so it is relayed to exactly this client
(on the stream of the call in flight when there is one), and what the client sets — its log level,
its subscriptions, its roots — applies to its own upstream sessions only. Requests the client did not declare
a capability for are not declared upstream either, so the upstream gets the SDK's clear refusal.

Stateless requests (2026-07-28 clients) have no session to own; they use the pool's shared session.
For stdio upstreams each such session is a process: their number per server is bounded, and a client beyond
the bound shares the pooled session (without back-channel) rather than being refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp import ClientSession
from mcp.client.session import ClientRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from pydantic import BaseModel

from broker.mcp.session_store import SessionStoreUnavailable
from broker.mcp.upstream import ClientCallbacks, UpstreamConnection, open_client

log = logging.getLogger(__name__)
OPEN_WAIT = 10.0
R = TypeVar("R", bound=BaseModel)


def can_be_asked(capabilities: types.ClientCapabilities | None) -> bool:
    """Whether a client declared a capability an upstream may ask it to use (sampling, elicitation, roots)."""
    return capabilities is not None and any((capabilities.sampling, capabilities.elicitation, capabilities.roots))


class SessionBudget:
    """How many client-owned upstream sessions each upstream may have at once."""

    def __init__(self, per_server: int) -> None:
        self._per_server = per_server
        self._open: dict[str, int] = {}

    def take(self, server: str) -> bool:
        if self._open.get(server, 0) >= self._per_server:
            return False
        self._open[server] = self._open.get(server, 0) + 1
        return True

    def give_back(self, server: str) -> None:
        self._open[server] = max(0, self._open.get(server, 0) - 1)

    def in_use(self, server: str) -> int:
        return self._open.get(server, 0)


class _OwnSession:
    """One upstream session hosted by a task of the broker's group, open until ``close``."""

    def __init__(self, connection: UpstreamConnection) -> None:
        self.connection = connection
        self.session: ClientSession | None = None
        self.opened = anyio.Event()
        self.prepared = False  # the client's settings applied
        self.error: str | None = None
        self._stop = anyio.Event()

    async def host(self, callbacks: ClientCallbacks, budget: SessionBudget, on_gone: Any) -> None:
        try:
            async with open_client(self.connection, callbacks) as (session, _):
                self.session = session
                self.opened.set()
                await self._stop.wait()
        except Exception as exc:  # the upstream went away; the next request opens a new session
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            log.info("a client's session to MCP upstream %s ended: %s", self.connection.name, self.error)
        finally:
            self.session = None
            self.opened.set()
            budget.give_back(self.connection.name)
            on_gone(self)

    def close(self) -> None:
        self._stop.set()


class SessionSettings(Protocol):
    """Where a client session's settings live, so every instance serving it applies the same ones."""

    async def load(self) -> dict[str, Any]: ...

    async def save(self, settings: dict[str, Any]) -> None: ...


class ClientUpstreams:
    """The upstream sessions of one downstream client session, and the relay back to that client."""

    def __init__(self, group: TaskGroup, budget: SessionBudget,
                 capabilities: types.ClientCapabilities | None, settings: SessionSettings | None = None) -> None:
        self._group = group
        self._settings = settings
        self._loaded = settings is None
        self._budget = budget
        self._capabilities = capabilities or types.ClientCapabilities()
        self._own: dict[str, _OwnSession] = {}
        # Calls in flight (the downstream request's session view and id): upstream requests made during a call
        # ride that call's stream, as the upstream related them to the call on its side.
        self._in_flight: list[tuple[ServerSession, types.RequestId]] = []
        self._latest: ServerSession | None = None
        self._level: types.LoggingLevel | None = None
        self._subscriptions: dict[tuple[str, str], str] = {}  # (server, upstream uri) -> uri the client sees
        self._withdrawn: set[tuple[str, str]] = set()  # unsubscribed through another instance, still here
        self._closed = False

    def seen(self, session: ServerSession) -> None:
        self._latest = session

    @property
    def latest(self) -> ServerSession | None:
        """The client's most recent request's session view, whose standalone channel reaches the client."""
        return self._latest

    @contextmanager
    def calling(self, session: ServerSession, request_id: types.RequestId | None) -> Iterator[None]:
        """Mark a downstream request in flight, so what the upstream sends meanwhile is relayed on its stream."""
        self._latest = session
        if request_id is None or not session.can_send_request:
            # A request answered with one JSON body has no stream for anything else: what the upstream sends
            # meanwhile goes to the client's standalone (GET) stream.
            yield
            return
        entry = (session, request_id)
        self._in_flight.append(entry)
        try:
            yield
        finally:
            self._in_flight.remove(entry)

    async def _load(self) -> None:
        """The settings the client made through another instance (once per session on this one)."""
        if self._loaded or self._settings is None:
            return
        self._loaded = True
        try:
            saved = await self._settings.load()
        except SessionStoreUnavailable as exc:
            log.warning("a client session's settings could not be read: %s", exc)
            return
        # What was saved is the whole truth (every instance saves the whole state): subscriptions gone from it
        # were withdrawn through another instance and are withdrawn from this one's upstream sessions too.
        self._level = saved.get("level") or self._level
        subscriptions = {(server, uri): shown for server, uri, shown in saved.get("subscriptions", [])}
        self._withdrawn |= set(self._subscriptions) - set(subscriptions)
        self._subscriptions = subscriptions

    def settings_changed(self) -> None:
        """Another instance changed the settings: read them again and re-apply them on next use."""
        self._loaded = self._settings is None
        for own in self._own.values():
            own.prepared = False

    async def _save(self) -> None:
        if self._settings is None:
            return
        subscriptions = [[server, uri, shown] for (server, uri), shown in sorted(self._subscriptions.items())]
        try:
            await self._settings.save({"level": self._level, "subscriptions": subscriptions})
        except SessionStoreUnavailable as exc:
            log.warning("a client session's settings apply on this instance only: %s", exc)

    async def session_for(self, connection: UpstreamConnection) -> ClientSession | None:
        """This client's own session to the upstream, opened on first use; None to use the shared one.
        A new session gets the client's log level and its subscriptions to that upstream's resources."""
        await self._load()
        own = self._own.get(connection.name)
        if own is not None and own.connection is not connection:  # the server was redefined meanwhile
            own.close()
            own = None
        if own is None:
            if self._closed or not connection.definition.enabled or not self._budget.take(connection.name):
                return None
            own = _OwnSession(connection)
            self._own[connection.name] = own
            self._group.start_soon(own.host, self._callbacks(connection), self._budget, self._forget)
        if not own.opened.is_set():
            with anyio.move_on_after(OPEN_WAIT):
                await own.opened.wait()
        if own.session is None:
            self._forget(own)
            own.close()
            return None  # the shared session says what is wrong (down, timing out) with its own error path
        if not own.prepared:
            own.prepared = True
            if self._level is not None and own.connection.capabilities and own.connection.capabilities.logging:
                await self._apply_level(own.session)
            for server, uri in list(self._subscriptions):
                if server == connection.name:
                    await _quietly(own.session.send_request(
                        types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)), types.EmptyResult))
            for server, uri in [w for w in self._withdrawn if w[0] == connection.name]:
                self._withdrawn.discard((server, uri))
                await _quietly(own.session.send_request(
                    types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri)), types.EmptyResult))
        return own.session

    def discard(self, connection: UpstreamConnection) -> None:
        """Close the client's session to an upstream that broke; the next request opens a new one."""
        own = self._own.pop(connection.name, None)
        if own is not None:
            own.close()

    def _forget(self, own: _OwnSession) -> None:
        if self._own.get(own.connection.name) is own:
            del self._own[own.connection.name]

    async def set_level(self, level: types.LoggingLevel, connections: list[UpstreamConnection]) -> None:
        """The client's log level, applied to the upstreams in scope that log (and to those opened later)."""
        await self._load()
        self._level = level
        await self._save()
        for connection in connections:
            if connection.capabilities is None or connection.capabilities.logging is None:
                continue
            session = await self.session_for(connection)
            if session is not None:
                await connection.forward(self._apply_level, session)

    async def _apply_level(self, session: ClientSession) -> types.EmptyResult:
        assert self._level is not None
        request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=self._level))
        return await session.send_request(request, types.EmptyResult)

    async def subscribed(self, server: str, uri: str, shown: str) -> None:
        await self._load()
        self._subscriptions[(server, uri)] = shown
        await self._save()

    async def unsubscribed(self, server: str, uri: str) -> None:
        await self._load()
        self._subscriptions.pop((server, uri), None)
        await self._save()

    async def roots_changed(self) -> None:
        for own in list(self._own.values()):
            if own.session is not None:
                with anyio.move_on_after(own.connection.definition.timeout_seconds):
                    await own.session.send_roots_list_changed()

    def close(self) -> None:
        self._closed = True
        for own in list(self._own.values()):
            own.close()
        self._own.clear()

    # --- the relay back to the client ---------------------------------------------------------------

    def _target(self) -> tuple[ServerSession | None, types.RequestId | None]:
        if self._in_flight:
            return self._in_flight[-1]
        return self._latest, None

    def _callbacks(self, connection: UpstreamConnection) -> ClientCallbacks:
        caps = self._capabilities

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification):
                shown = self._subscriptions.get((connection.name, str(message.params.uri)))
                session = self._latest
                if shown is not None and session is not None:
                    update = types.ResourceUpdatedNotification(params=message.params.model_copy(update={"uri": shown}))
                    await _quietly(session.send_notification(update))

        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            session, related = self._target()
            if session is not None:
                await _quietly(session.send_notification(types.LoggingMessageNotification(params=params), related))

        async def sampling(context: ClientRequestContext, params: types.CreateMessageRequestParams
                           ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
            result_type: type[types.CreateMessageResult | types.CreateMessageResultWithTools] = (
                types.CreateMessageResultWithTools if params.tools else types.CreateMessageResult)
            return await self._relay(types.CreateMessageRequest(params=params), result_type)

        async def elicitation(context: ClientRequestContext, params: types.ElicitRequestParams
                              ) -> types.ElicitResult | types.ErrorData:
            return await self._relay(types.ElicitRequest(params=params), types.ElicitResult)

        async def list_roots(context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
            return await self._relay(types.ListRootsRequest(), types.ListRootsResult)

        return ClientCallbacks(
            message_handler=on_message, logging=on_log,
            sampling=sampling if caps.sampling is not None else None, sampling_capabilities=caps.sampling,
            elicitation=elicitation if caps.elicitation is not None else None,
            list_roots=list_roots if caps.roots is not None else None,
        )

    async def _relay(self, request: Any, result_type: type[R]) -> R | types.ErrorData:
        """Ask the client on the upstream's behalf; its error (or its absence) goes back to the upstream."""
        session, related = self._target()
        if session is None:
            return types.ErrorData(code=types.INTERNAL_ERROR, message="the client is no longer connected")
        metadata = ServerMessageMetadata(related_request_id=related) if related is not None else None
        try:
            return await session.send_request(request, result_type, metadata=metadata)
        except MCPError as exc:
            return exc.error
        except Exception as exc:  # no back-channel, a closed stream: the upstream gets an error, not a hang
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"could not reach the client: {exc}")


async def _quietly(sending: Any) -> None:
    """Deliver a notification to the client if it is still there; a departed client is not an error."""
    try:
        with anyio.fail_after(5):
            await sending
    except Exception as exc:
        log.debug("notification not delivered to the client: %s", exc)
