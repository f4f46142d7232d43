"""Audit events as RFC 5424 syslog messages, over UDP (RFC 5426), TCP (RFC 6587 octet counting) or TLS (RFC 5425).

Each event is one message: the header, structured data with the fields a SIEM filters on, then the whole event
as JSON. UDP and TCP syslog have no acknowledgement: over UDP a message can be lost on the way, over TCP a batch
sent just as the receiver dies can be; Warden reconnects when it sees the receiver closed the connection. Where
every event must arrive, use the webhook or NATS channel.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import orjson

DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
# outcome -> RFC 5424 severity: informational, notice, warning, error
_SEVERITY = {"ok": 6, "tool_error": 5, "refused": 4, "error": 3}
UDP_LIMIT = 65_000  # a longer message cannot go in one datagram at all: it is cut there (UDP only)
_STRUCTURED = ("id", "trace_id", "surface", "outcome", "user_id", "team_id", "api_key_id", "target", "action",
               "client_ip")


def parse_url(url: str) -> tuple[str, str, int]:
    """``udp://host:port``, ``tcp://host:port`` or ``tls://host:port`` -> (transport, host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"syslog url {url!r}: expected udp://host[:port], tcp://host[:port] or tls://host[:port]")
    return parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]


class SyslogChannel:
    wants_bodies = False

    def __init__(self, name: str, url: str, facility: int = 13, app_name: str = "warden",
                 sd_id: str = "warden@32473", ca_file: Path | None = None) -> None:
        self.name = name
        self._transport, self._host, self._port = parse_url(url)
        self._facility = facility
        self._sd_id = sd_id
        host = "".join(c for c in socket.gethostname() if 33 <= ord(c) <= 126)[:255]
        self._head = f"{host or '-'} {_token(app_name, 48)} {os.getpid()} audit "
        self._ssl = ssl.create_default_context(cafile=ca_file) if self._transport == "tls" else None
        self._stream: anyio.abc.ByteStream | None = None
        self._udp: anyio.abc.ConnectedUDPSocket | None = None

    def message(self, event: dict[str, Any]) -> bytes:
        priority = self._facility * 8 + _SEVERITY.get(event.get("outcome", ""), 5)
        timestamp = datetime.fromtimestamp(event["at"], UTC).isoformat(timespec="microseconds")
        params = " ".join(f'{key}="{_escape(str(event[key]))}"' for key in _STRUCTURED if event.get(key) is not None)
        return (f"<{priority}>1 {timestamp.replace('+00:00', 'Z')} {self._head}[{self._sd_id} {params}] "
                .encode() + orjson.dumps(event))

    async def deliver(self, events: Sequence[dict[str, Any]]) -> None:
        messages = [self.message(event) for event in events]
        try:
            if self._transport == "udp":
                if self._udp is None:
                    self._udp = await anyio.create_connected_udp_socket(self._host, self._port)
                for message in messages:
                    await self._udp.send(message[:UDP_LIMIT])
            else:
                stream = await self._connected()
                await stream.send(b"".join(b"%d %s" % (len(message), message) for message in messages))
        except BaseException:
            await self.aclose()  # the next attempt starts on a new connection
            raise

    async def _connected(self) -> anyio.abc.ByteStream:
        if self._stream is not None and _peer_closed(self._stream):
            await self.aclose()
        if self._stream is None:
            self._stream = await self._connect()
        return self._stream

    async def _connect(self) -> anyio.abc.ByteStream:
        if self._ssl is None:
            return await anyio.connect_tcp(self._host, self._port)
        return await anyio.connect_tcp(self._host, self._port, ssl_context=self._ssl, tls_standard_compatible=False)

    async def aclose(self) -> None:
        for resource in (self._stream, self._udp):
            if resource is not None:
                with anyio.CancelScope(shield=True):
                    await resource.aclose()
        self._stream = self._udp = None


def _peer_closed(stream: anyio.abc.ByteStream) -> bool:
    """Whether the receiver closed the connection (it never sends otherwise): a send would seem to succeed once."""
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610 (anyio, not Django)
    try:
        return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _escape(value: str) -> str:
    """RFC 5424 PARAM-VALUE: '"', '\\' and ']' escaped with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(value: str, limit: int) -> str:
    """A header field: printable ASCII without spaces, at most ``limit`` characters, '-' when empty."""
    return "".join(c for c in value if 33 <= ord(c) <= 126)[:limit] or "-"
