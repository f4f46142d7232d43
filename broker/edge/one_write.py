"""uvicorn's HTTP protocol with what one event-loop step writes to a connection sent in one system call.

uvicorn writes a response's status line and headers as soon as the app sends ``http.response.start``, and the
body separately. On loopback (and on any link where the client waits on the socket) each write wakes the
client: two writes per response cost two wake-ups and two trips through the TCP stack, which at one request
in flight was about a tenth of the gateway's CPU per request (perf, bench/chat_compare.py). Writes made in
the same loop step are joined and written at its end, before the loop waits for I/O again, so nothing is
delayed past the step that produced it; a stream's later chunks, produced in later steps, go out as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _StepWriter:
    """A transport that holds the writes of one loop step and writes them together when the step ends; every
    other call goes to the socket's transport (closing first sends what is held)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._held = [data]
            self._loop.call_soon(self._flush)
        else:
            self._held.append(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(d) for d in self._held or ())

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`_StepWriter`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_StepWriter(transport, self.loop))  # type: ignore[arg-type]
