"""Serving one plain request of a session in the HTTP request's own task, through the SDK's server runner.

The SDK's session transport hands every request to the session's dispatcher (a memory stream, a task per
request, a router task back to the POST): on a plain call that costs about as much CPU as everything else.
A request answered with one JSON body needs none of it — nothing but the answer can be sent for it — so the
session transport runs it here instead: the same ``ServerRunner`` (middleware, validation, handlers) over
the session's ``Connection``, with a dispatch context that has no back-channel, as the SDK's JSON mode and
its 2026-07-28 single-exchange path have. Exceptions become wire errors exactly as the SDK's dispatcher
maps them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.runner import ServerRunner
from mcp.server.streamable_http import REQUEST_CANCELLED  # the 2025-era answer to a cancelled request
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import ErrorData, JSONRPCError, JSONRPCRequest, JSONRPCResponse, RequestId
from starlette.requests import Request

log = logging.getLogger(__name__)


@dataclass
class _NoBackChannel:
    """The SDK's per-request dispatch context for a request answered with one JSON body: requests to the client
    are refused and notifications dropped (there is no stream to carry them)."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: ServerMessageMetadata
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = False

    async def send_raw_request(self, method: str, params: Mapping[str, Any] | None,
                               opts: CallOptions | None = None) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        log.debug("dropped %s for a request answered with one JSON body", method)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None


class PlainExchanges:
    """The plain requests of one session in flight, so a client's ``notifications/cancelled`` reaches them."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[anyio.CancelScope, _NoBackChannel]] = {}

    async def serve(self, runner: ServerRunner[Any], request: Request, message: JSONRPCRequest
                    ) -> JSONRPCResponse | JSONRPCError:
        dctx = _NoBackChannel(TransportContext(kind="streamable-http", can_send_request=False, headers=request.headers),
                              message.id, ServerMessageMetadata(request_context=request, can_send_request=False))
        key = str(message.id)
        with anyio.CancelScope() as scope:
            self._running[key] = (scope, dctx)
            try:
                result = await runner.on_request(dctx, message.method, message.params)
                return JSONRPCResponse(jsonrpc="2.0", id=message.id, result=result)
            except Exception as exc:
                error = handler_exception_to_error_data(exc)
                if error is None:
                    log.exception("handler for %r raised", message.method)
                    error = ErrorData(code=0, message=str(exc))  # what the SDK's dispatcher answers
                return JSONRPCError(jsonrpc="2.0", id=message.id, error=error)
            finally:
                self._running.pop(key, None)
        return JSONRPCError(jsonrpc="2.0", id=message.id,
                            error=ErrorData(code=REQUEST_CANCELLED, message="Request cancelled"))

    def cancel(self, request_id: object) -> None:
        """The client cancelled a request; if it is one of these, its handler is cancelled."""
        running = self._running.get(str(request_id))
        if running is not None:
            scope, dctx = running
            dctx.cancel_requested.set()
            scope.cancel()
