"""Handshake-era ``/mcp`` sessions that any Warden instance can serve, without sticky routing.

The SDK's session manager keeps sessions in one process. This subclass adds what several instances need:

- at ``initialize`` the session's handshake and the API key that opened it go to the shared directory; a
  request for a session this instance does not hold is served by taking the session over (a server task
  with the recorded handshake, so the client need not initialize again); a session is used only with the
  key that opened it (another key gets 404, as for an unknown session);
- every message to the client is written to the shared event log; a stream resumed with ``Last-Event-ID``
  is replayed from it and then followed until the request's response, wherever the request runs; the GET
  stream follows the log too, so notifications from any instance reach it;
- a client's answer to a server-to-client request (sampling, elicitation, roots) is relayed to the
  instances holding the session, since the request may wait on another one;
- ``DELETE`` ends the session on every instance.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskStatus
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.runner import ServerRunner, serve_connection
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    MCP_SESSION_ID_HEADER,
    EventCallback,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager, _error_response
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import SessionMessage
from mcp_types import (
    LOG_LEVEL_META_KEY,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from broker.kernel.bus.ports import Broadcast, Message
from broker.mcp.client_sessions import can_be_asked
from broker.mcp.plain_exchange import PlainExchanges
from broker.mcp.session_store import EventLog, SessionDirectory, SessionRecord, SessionStoreUnavailable

log = logging.getLogger(__name__)
ENDED_CHANNEL = "mcp.session.ended"
REPLY_CHANNEL = "mcp.session.reply"
FOLLOW = "follow:"  # a Last-Event-ID this module sets itself: follow the GET stream from this position
FOLLOW_LIMIT = 600.0  # a resumed request stream is followed at most this long for its response
_TOUCH_EVERY = 60.0

KeyOf = Callable[[Scope], str | None]
OnlyAResponse = Callable[[Scope, dict[str, Any]], bool]
# Set while the SDK transport handles a POST answered with one JSON body (see SharedSessionTransport).
_REPLY_AS_JSON: ContextVar[bool] = ContextVar("warden_mcp_reply_as_json", default=False)


class _JsonPerRequest:
    """The SDK's JSON-response switch (set per transport or manager), also on for the request being handled
    while ``_REPLY_AS_JSON`` is set in its context."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_always"

    def __get__(self, instance: object, owner: type | None = None) -> bool:
        return bool(getattr(instance, self._slot, False)) or _REPLY_AS_JSON.get()

    def __set__(self, instance: object, value: bool) -> None:
        setattr(instance, self._slot, value)


class _LoggedEvents(EventStore):
    """The SDK's event-store port over the shared log, for one session."""

    def __init__(self, events: EventLog, session_id: str) -> None:
        self._events = events
        self._session_id = session_id
        self._fallback = 0

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        text = None if message is None else message.model_dump_json(by_alias=True, exclude_none=True)
        try:
            return await self._events.append(self._session_id, stream_id, text)
        except SessionStoreUnavailable as exc:
            # The message still goes out live; only resuming past it is lost.
            log.warning("MCP event log unavailable, session %s not resumable here: %s", self._session_id[:8], exc)
            self._fallback += 1
            return f"unlogged-{self._fallback}"

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        """The stream's events after ``last_event_id`` (the transport below also follows it live)."""
        try:
            stream_id = await self._events.stream_of(self._session_id, last_event_id)
            events = await self._events.read_after(self._session_id, last_event_id, wait=0) if stream_id else []
        except SessionStoreUnavailable:
            return None
        for event in events:
            if event.stream_id == stream_id and event.message is not None:
                await send_callback(EventMessage(jsonrpc_message_adapter.validate_json(event.message), event.event_id))
        return stream_id


class SharedSessionTransport(StreamableHTTPServerTransport):
    """The SDK transport, with resumption and the GET stream served from the shared event log.

    A request is answered with one JSON body instead of an SSE stream when nothing but its response can be
    sent on that stream: it asks for no progress, the client declared nothing it could be asked (sampling,
    elicitation, roots), and ``only_a_response`` (the broker) says handling it sends nothing else. The SDK
    decides JSON or SSE per transport; here, per request (a context variable read by
    ``is_json_response_enabled``), which spares the stream and its tasks; once the session's server runner
    is known, such a request is served in place, without the session's dispatcher or the event log (see
    ``_handle_post_request``) — most of a plain call's cost.
    """

    is_json_response_enabled = _JsonPerRequest()

    def __init__(self, session_id: str, events: EventLog, on_client_reply: Callable[[str, bytes], Awaitable[None]],
                 only_a_response: OnlyAResponse, **options: Any) -> None:
        self._only_a_response = only_a_response
        super().__init__(mcp_session_id=session_id, event_store=_LoggedEvents(events, session_id), **options)
        self._events = events
        self._on_client_reply = on_client_reply
        self._in_flight: set[str] = set()
        self.client_answers = True  # until the handshake tells: whether the client may be asked anything
        # The session's server runner (set once the handshake is known): requests answered with one JSON body
        # are served through it in their own task, not through the session's dispatcher.
        self.runner: ServerRunner[Any] | None = None
        self._plain = PlainExchanges()

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if method == "GET" and not _header(scope, b"last-event-id"):
            # Every GET stream follows the log from now on, so what any instance sends there reaches it.
            position = await self._position()
            scope = dict(scope, headers=[*scope["headers"], (b"last-event-id", (FOLLOW + position).encode())])
        if method != "POST":
            await super().handle_request(scope, receive, send)
            return
        body = await _read_body(receive)
        message = _parsed(body)
        request_id = _request_id(message)
        if request_id is not None and request_id in self._in_flight:
            # The SDK keys a request's stream by its id: a second request with the same id would never be
            # answered. Ids must be unique within a session; say so instead of hanging.
            await _error_response(f"request id {request_id} is already in use in this session", 409)(
                scope, receive, send)
            return
        async def send_and_release(message: AsgiMessage) -> None:
            # Free the id before the response's last bytes leave, so a client that reuses it once answered
            # (sloppy, but common) never races the end of this handler.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._in_flight.discard(request_id or "")
            await send(message)

        json_reply = (request_id is not None and not self.client_answers and not _wants_stream(message)
                      and self._only_a_response(scope, message))
        if request_id is not None:
            self._in_flight.add(request_id)
        reply_as_json = _REPLY_AS_JSON.set(json_reply)
        try:
            await super().handle_request(scope, _replaying(body, receive), send_and_release)
        finally:
            _REPLY_AS_JSON.reset(reply_as_json)
            self._in_flight.discard(request_id or "")
        if request_id is None and b'"method"' not in body and (b'"result"' in body or b'"error"' in body):
            await self._on_client_reply(self.mcp_session_id or "", body)
        if isinstance(message, dict) and message.get("method") == "notifications/cancelled":
            params = message.get("params")
            self._plain.cancel(params.get("requestId") if isinstance(params, dict) else None)

    async def _handle_post_request(self, scope: Scope, request: Request, receive: Receive, send: Send) -> None:
        """A request answered with one JSON body is served in place once the session's runner is known (after
        the SDK's checks of the request, which answer anything malformed as before)."""
        if not _REPLY_AS_JSON.get() or self.runner is None:
            await super()._handle_post_request(scope, request, receive, send)
            return
        try:
            message = jsonrpc_message_adapter.validate_json(await request.body(), by_name=False)
        except ValidationError:
            message = None
        if not isinstance(message, JSONRPCRequest) or not self._check_content_type(request):
            await super()._handle_post_request(scope, request, receive, send)
            return
        if not await self._validate_accept_header(request, scope, send) \
                or not await self._validate_request_headers(request, send):
            return
        reply = await self._plain.serve(self.runner, request, message)
        await self._create_json_response(reply)(scope, receive, send)

    async def _position(self) -> str:
        try:
            return await self._events.latest(self.mcp_session_id or "")
        except SessionStoreUnavailable:
            return "0-0"

    async def _replay_events(self, last_event_id: str, request: Request, send: Send) -> None:
        session_id = self.mcp_session_id or ""
        if last_event_id.startswith(FOLLOW):
            stream_id: str | None = GET_STREAM_KEY
            position = last_event_id[len(FOLLOW):]
        else:
            position = last_event_id
            try:
                stream_id = await self._events.stream_of(session_id, last_event_id)
            except SessionStoreUnavailable:
                stream_id = None
        if stream_id is None:
            await _error_response("No stream to resume from that event id", 404)(request.scope, request.receive,
                                                                                 send)
            return
        writer, reader = anyio.create_memory_object_stream[dict[str, Any]](0)

        async def follow() -> None:
            async with writer:
                await self._follow(session_id, stream_id, position, writer)

        headers = {"Cache-Control": "no-cache, no-transform", "Connection": "keep-alive",
                   MCP_SESSION_ID_HEADER: session_id}
        response = EventSourceResponse(content=reader, data_sender_callable=follow, headers=headers)
        try:
            await response(request.scope, request.receive, send)
        finally:
            await writer.aclose()
            await reader.aclose()

    async def _follow(self, session_id: str, stream_id: str, position: str, writer: Any) -> None:
        """Send the stream's events after ``position`` as they are logged; a request stream ends with the
        request's response (or after FOLLOW_LIMIT), the GET stream when the client leaves."""
        deadline = None if stream_id == GET_STREAM_KEY else time.monotonic() + FOLLOW_LIMIT
        while deadline is None or time.monotonic() < deadline:
            try:
                events = await self._events.read_after(session_id, position, wait=1.0)
            except SessionStoreUnavailable as exc:
                log.warning("MCP event log unavailable while following a stream: %s", exc)
                await anyio.sleep(1.0)
                continue
            for event in events:
                position = event.event_id
                if event.stream_id != stream_id or event.message is None:
                    continue
                message = jsonrpc_message_adapter.validate_json(event.message)
                await writer.send(self._create_event_data(EventMessage(message, event.event_id)))
                if isinstance(message, JSONRPCResponse | JSONRPCError):
                    return
            if self.is_terminated:
                return


class SharedSessionManager(StreamableHTTPSessionManager):
    """The SDK's manager, with sessions recorded in a shared directory and taken over on demand."""

    json_response = _JsonPerRequest()

    def __init__(self, app: Server[Any], directory: SessionDirectory, events: EventLog, broadcast: Broadcast,
                 key_of: KeyOf, only_a_response: OnlyAResponse = lambda scope, request: False,
                 **options: Any) -> None:
        super().__init__(app, **options)
        self._only_a_response = only_a_response
        self._directory = directory
        self._events = events
        self._broadcast = broadcast
        self._key_of = key_of
        self._instance = uuid.uuid4().hex
        self._owners: dict[str, str | None] = {}
        self._touched: dict[str, float] = {}
        app.middleware.append(self._record_handshake)
        broadcast.subscribe(ENDED_CHANNEL, self._ended_elsewhere)
        broadcast.subscribe(REPLY_CHANNEL, self._reply_from_elsewhere)

    async def _handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A 2026-07-28 request that asks for no progress and no log messages is answered with one JSON body:
        nothing else can be sent for it (its client is asked for input with ``input_required`` results, not on
        the stream). The SDK would otherwise run it beside a stream it may need, in a task of its own."""
        version = _header(scope, MCP_PROTOCOL_VERSION_HEADER.lower().encode())
        if scope.get("method") != "POST" or version is None or version in HANDSHAKE_PROTOCOL_VERSIONS:
            await super()._handle_request(scope, receive, send)
            return
        body = await _read_body(receive)
        reply_as_json = _REPLY_AS_JSON.set(_nothing_streamed(_parsed(body)))
        try:
            await super()._handle_request(scope, _replaying(body, receive), send)
        finally:
            _REPLY_AS_JSON.reset(reply_as_json)

    def _new_transport(self, session_id: str) -> SharedSessionTransport:
        return SharedSessionTransport(
            session_id, self._events, self._relay_reply, self._only_a_response,
            is_json_response_enabled=self.json_response,  # as configured: no request has switched it here
            security_settings=self.security_settings, retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )

    def _admit_session(self, requestor: Any) -> StreamableHTTPServerTransport | None:
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        transport = self._new_transport(uuid.uuid4().hex)
        assert transport.mcp_session_id is not None
        self._server_instances[transport.mcp_session_id] = transport
        return transport

    async def _record_handshake(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Server middleware: once ``initialize`` succeeds, record the handshake for the other instances."""
        result = await call_next(ctx)
        session_id = ctx.session._connection.session_id  # public only on the SDK's newer Context
        if ctx.method == "initialize" and session_id is not None and isinstance(result, dict):
            key = self._key_of(ctx.request.scope) if isinstance(ctx.request, Request) else None
            self._owners[session_id] = key
            record = SessionRecord(key, str(result.get("protocolVersion")), dict(ctx.params or {}))
            transport = self._server_instances.get(session_id)
            if isinstance(transport, SharedSessionTransport):
                transport.client_answers = can_be_asked(_declared(record.client_params))
                transport.runner = ServerRunner(self.app, ctx.session._connection, self._lifespan_state)
            try:
                await self._directory.record(session_id, record)
            except SessionStoreUnavailable as exc:
                log.warning("MCP session %s is served by this instance only: %s", session_id[:8], exc)
        return result

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = _header(scope, MCP_SESSION_ID_HEADER.encode())
        if session_id is not None:
            if session_id not in self._server_instances and not await self._take_over(session_id, scope):
                await _error_response("Session not found", 404)(scope, receive, send)
                return
            if self._owners.get(session_id) != self._key_of(scope):
                log.warning("request for MCP session %s with another key refused", session_id[:8])
                await _error_response("Session not found", 404)(scope, receive, send)
                return
            await self._keep_alive(session_id)
        await super()._handle_stateful_request(scope, receive, send)
        if session_id is not None and scope.get("method") == "DELETE" and session_id not in self._server_instances:
            await self._end_everywhere(session_id)

    async def _take_over(self, session_id: str, scope: Scope) -> bool:
        """Serve a session another instance opened; False when it is unknown, expired or unreachable."""
        try:
            record = await self._directory.find(session_id)
        except SessionStoreUnavailable as exc:
            log.warning("MCP session %s could not be looked up: %s", session_id[:8], exc)
            return False
        if record is None:
            return False
        async with self._session_creation_lock:
            if session_id in self._server_instances:
                return True
            if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
                return False
            transport = self._new_transport(session_id)
            transport.client_answers = can_be_asked(_declared(record.client_params))
            self._server_instances[session_id] = transport
            self._owners[session_id] = record.key_id
            assert self._task_group is not None
            await self._task_group.start(self._serve_taken_over, transport, record)
        log.info("MCP session %s taken over from another instance", session_id[:8])
        return True

    async def _serve_taken_over(self, transport: SharedSessionTransport, record: SessionRecord, *,
                                task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        session_id = transport.mcp_session_id
        assert session_id is not None
        async with transport.connect() as (read_stream, write_stream):
            task_status.started()
            try:
                idle_scope = transport.idle_scope or anyio.CancelScope()
                with idle_scope:
                    dispatcher: JSONRPCDispatcher[Any] = JSONRPCDispatcher(
                        read_stream, write_stream, inline_methods=frozenset({"initialize"}))
                    connection = Connection.for_loop(dispatcher, session_id=session_id,
                                                     protocol_version_hint=record.protocol_version)
                    connection.client_params = types.InitializeRequestParams.model_validate(record.client_params)
                    connection.initialized.set()
                    transport.runner = ServerRunner(self.app, connection, self._lifespan_state)
                    await serve_connection(self.app, dispatcher, connection=connection,
                                           lifespan_state=self._lifespan_state)
            except Exception:
                log.exception("MCP session %s (taken over) crashed", session_id[:8])
            finally:
                await self._discard_session(session_id, transport)

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        self._owners.pop(session_id, None)
        self._touched.pop(session_id, None)
        await super()._discard_session(session_id, transport)

    async def _keep_alive(self, session_id: str) -> None:
        now = time.monotonic()
        if now - self._touched.get(session_id, 0.0) < _TOUCH_EVERY:
            return
        self._touched[session_id] = now
        try:
            await self._directory.touch(session_id)
        except SessionStoreUnavailable as exc:
            log.debug("MCP session %s not kept alive in the directory: %s", session_id[:8], exc)

    async def _end_everywhere(self, session_id: str) -> None:
        try:
            await self._directory.end(session_id)
            await self._events.drop(session_id)
        except SessionStoreUnavailable as exc:
            log.warning("MCP session %s ended here; the directory will expire it: %s", session_id[:8], exc)
        await self._broadcast.publish(ENDED_CHANNEL, {"session": session_id, "from": self._instance})

    async def _ended_elsewhere(self, message: Message) -> None:
        transport = self._server_instances.get(str(message.get("session")))
        if transport is not None and message.get("from") != self._instance:
            await self._discard_session(str(message["session"]), transport)

    async def _relay_reply(self, session_id: str, body: bytes) -> None:
        await self._broadcast.publish(REPLY_CHANNEL, {"session": session_id, "from": self._instance,
                                                      "body": body.decode(errors="replace")})

    async def _reply_from_elsewhere(self, message: Message) -> None:
        """A client's answer to a request this instance may be waiting on (unknown ids are dropped)."""
        transport = self._server_instances.get(str(message.get("session")))
        if transport is None or message.get("from") == self._instance:
            return
        try:
            reply = jsonrpc_message_adapter.validate_json(str(message.get("body", "")))
        except ValueError:
            return
        writer = transport._read_stream_writer  # the transport's own inbound channel
        if writer is not None and isinstance(reply, JSONRPCResponse | JSONRPCError):
            with anyio.move_on_after(1):
                await writer.send(SessionMessage(reply))


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the body already read, then what the client sends next (its disconnect, which
    the SDK's SSE responses listen for)."""
    sent = False

    async def replay() -> AsgiMessage:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (the SDK manager's size limit has already been applied around us)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None  # the SDK answers it with its parse error


def _request_id(message: Any) -> str | None:
    """The JSON-RPC id of a request (not of a notification or a response), if the message is one."""
    if isinstance(message, dict) and "method" in message and message.get("id") is not None:
        return str(message["id"])  # as the SDK keys it: 2 and "2" share one stream
    return None


def _wants_stream(request: dict[str, Any]) -> bool:
    """Whether a request needs an SSE stream of its own: initialize (kept as the SDK answers it), or a request
    asking for progress notifications."""
    if request.get("method") == "initialize":
        return True
    params = request.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and meta.get("progressToken") is not None


def _nothing_streamed(request: Any) -> bool:
    """Whether a 2026-07-28 request asks for nothing but its response: no progress, no log messages."""
    if not isinstance(request, dict) or request.get("method") == "subscriptions/listen":
        return False
    params = request.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return not isinstance(meta, dict) or (meta.get("progressToken") is None and LOG_LEVEL_META_KEY not in meta)


def _declared(client_params: dict[str, Any]) -> types.ClientCapabilities:
    """The capabilities in a client's initialize parameters (the connection commits them only after the
    handshake's handler has returned)."""
    return types.ClientCapabilities.model_validate(client_params.get("capabilities") or {})


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)
