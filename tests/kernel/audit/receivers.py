"""Real receivers for the audit forwarding channels: a syslog listener (UDP, TCP or TLS with RFC 6587 octet
counting) and a NATS server with JetStream, started for the test and stopped after it."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import orjson
import pytest
from anyio.streams.tls import TLSListener

from tests.conftest import eventually
from tests.interaction.process import free_port, helper, stop_process, wait_until
from tests.services import NATS_SERVER, answers

# RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA SP MSG
_MESSAGE = re.compile(rb'^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[(\S+)((?: [^= \]"]+="(?:[^"\\\]]|\\.)*")*)\] '
                      rb"(\{.*\})$", re.DOTALL)
_PARAM = re.compile(r'([^= \]"]+)="((?:[^"\\\]]|\\.)*)"')


def parse_syslog(message: bytes) -> dict[str, Any]:
    """Split one RFC 5424 message (fails the test when it is not one)."""
    match = _MESSAGE.match(message)
    assert match, message[:200]
    priority, timestamp, host, app, procid, msgid, sd_id, params, body = match.groups()
    return {"facility": int(priority) // 8, "severity": int(priority) % 8, "timestamp": timestamp.decode(),
            "host": host.decode(), "app": app.decode(), "procid": procid.decode(), "msgid": msgid.decode(),
            "sd_id": sd_id.decode(),
            "params": {k: re.sub(r"\\(.)", r"\1", v) for k, v in _PARAM.findall(params.decode())},
            "event": orjson.loads(body)}


class SyslogReceiver:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.connections = 0

    async def wait_for(self, count: int, within: float = 10.0) -> None:
        async def arrived() -> bool:
            return len(self.messages) >= count

        assert await eventually(arrived, within), f"{len(self.messages)} of {count} syslog messages arrived"

    async def _read_framed(self, stream: anyio.abc.ByteStream) -> None:
        """RFC 6587 octet counting: ``LEN SP MSG``, repeated."""
        self.connections += 1
        buffer = b""
        async with stream:
            while True:
                try:
                    buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                while b" " in buffer:
                    length, _, rest = buffer.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self.messages.append(rest[:int(length)])
                    buffer = rest[int(length):]


@asynccontextmanager
async def syslog_receiver(transport: str, tls: ssl.SSLContext | None = None, port: int = 0
                          ) -> AsyncIterator[tuple[str, SyslogReceiver]]:
    """Listen on 127.0.0.1 (on ``port``, any when 0); yield the channel URL for it and what it received."""
    receiver = SyslogReceiver()
    if transport == "udp":
        udp = await anyio.create_udp_socket(local_host="127.0.0.1")

        async def serve() -> None:
            async for packet, _ in udp:
                receiver.messages.append(packet)

        resource: anyio.abc.AsyncResource = udp
        port = udp.extra(anyio.abc.SocketAttribute.local_port)
    else:
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
        port = tcp.extra(anyio.abc.SocketAttribute.local_port)
        listener: anyio.abc.Listener[Any] = TLSListener(tcp, tls, standard_compatible=False) if tls else tcp

        async def serve() -> None:
            await listener.serve(receiver._read_framed)

        resource = listener
    async with resource, anyio.create_task_group() as group:
        group.start_soon(serve)
        yield f"{transport}://127.0.0.1:{port}", receiver
        group.cancel_scope.cancel()


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A NATS server with JetStream of the test's own (the machine's copy may be used by others)."""
    binary = shutil.which("nats-server") or NATS_SERVER
    port = free_port()
    process = helper(subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(port),
                                       "-sd", str(tmp_path / "nats")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        assert wait_until(lambda: answers(("127.0.0.1", port)), 10), "nats-server did not start"
        yield f"nats://127.0.0.1:{port}"
    finally:
        stop_process(process)
