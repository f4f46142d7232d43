"""What one event-loop step writes to a connection goes out in one write; nothing is held past its step."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import anyio
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from broker.edge.one_write import OneWriteHttpProtocol, _StepWriter


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn's protocols are asyncio protocols


async def test_writes_of_one_step_go_out_together_and_later_steps_separately() -> None:
    transport = RecordingTransport()
    writer = _StepWriter(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    writer.write(b"ok")
    assert transport.writes == []  # held until the step ends
    assert writer.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    writer.write(b"later")
    await asyncio.sleep(0)
    assert transport.writes[-1] == b"later"
    assert writer.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else is the transport's


async def test_closing_sends_what_is_held_first_and_aborting_drops_it() -> None:
    transport = RecordingTransport()
    writer = _StepWriter(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(b"last words")
    writer.close()
    assert transport.writes == [b"last words"] and transport.closed
    await asyncio.sleep(0)
    assert transport.writes == [b"last words"]  # the scheduled flush finds nothing left

    transport = RecordingTransport()
    writer = _StepWriter(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(b"never sent")
    writer.abort()
    await asyncio.sleep(0)
    assert transport.writes == [] and transport.aborted


async def test_a_stream_s_head_is_not_held_until_its_first_chunk() -> None:
    async def slow_stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await anyio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"late chunk", "more_body": False})

    server = uvicorn.Server(uvicorn.Config(slow_stream, host="127.0.0.1", port=0, http=OneWriteHttpProtocol,
                                           lifespan="off", log_config=None))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            started = time.monotonic()
            head = await anyio.to_thread.run_sync(client.recv, 65536)
            head_after = time.monotonic() - started
            rest = b""
            while b"late chunk" not in rest:
                rest += await anyio.to_thread.run_sync(client.recv, 65536)
        server.should_exit = True
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"late chunk" not in head
    assert head_after < 0.4
