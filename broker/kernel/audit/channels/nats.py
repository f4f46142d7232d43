"""Audit events published to NATS JetStream, one message per event on ``<subject>.<surface>``.

Each message carries the event id as ``Nats-Msg-Id``, so JetStream drops the copy a retry or a replay after a
crash would add (within the stream's duplicate window, two minutes by default). A publish counts as delivered
only once JetStream acknowledged it as stored. With ``stream`` set, the stream is created when missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)


class NatsChannel:
    wants_bodies = False

    def __init__(self, name: str, url: str, subject: str = "warden.audit", stream: str | None = "WARDEN_AUDIT",
                 timeout: float = 5.0) -> None:
        self.name = name
        self._url = url
        self._subject = subject
        self._stream = stream
        self._timeout = timeout
        self._client: Client | None = None
        self._jetstream: JetStreamContext | None = None

    async def deliver(self, events: Sequence[dict[str, Any]]) -> None:
        jetstream = await self._connected()
        for event in events:
            await jetstream.publish(f"{self._subject}.{event['surface']}", orjson.dumps(event),
                                    timeout=self._timeout, headers={"Nats-Msg-Id": event["id"]})

    async def _connected(self) -> JetStreamContext:
        if self._jetstream is not None:
            return self._jetstream
        client = Client()
        try:
            # Reconnects on its own once connected (publishes wait, then time out and are retried).
            await client.connect(self._url, connect_timeout=max(1, round(self._timeout)), max_reconnect_attempts=-1,
                                 reconnect_time_wait=1, error_cb=self._on_error,
                                 disconnected_cb=self._on_disconnect)
            jetstream = client.jetstream(timeout=self._timeout)
            if self._stream:
                try:
                    await jetstream.stream_info(self._stream)
                except NotFoundError:
                    await jetstream.add_stream(name=self._stream, subjects=[f"{self._subject}.>"])
        except BaseException:
            with anyio.CancelScope(shield=True):
                await client.close()
            raise
        self._client, self._jetstream = client, jetstream
        return jetstream

    async def _on_error(self, error: Exception) -> None:
        log.warning("audit channel %s: NATS: %s", self.name, error or type(error).__name__)

    async def _on_disconnect(self) -> None:
        log.warning("audit channel %s: disconnected from NATS; reconnecting", self.name)

    async def aclose(self) -> None:
        if self._client is not None:
            with anyio.CancelScope(shield=True):
                await self._client.close()
        self._client = self._jetstream = None
