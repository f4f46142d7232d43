"""Outbound webhooks for alerts: queued off the request path, signed, retried with backoff, bounded."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-warden-signature"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where alerts are posted; with a secret, each body is signed with HMAC-SHA256."""

    url: str
    secret: str | None = None


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """``send`` never blocks a request; ``run`` delivers each payload to every target, retrying failures."""

    def __init__(self, targets: list[WebhookTarget], attempts: int = 4, timeout: float = 5.0,
                 backoff: float = 0.5, queue_size: int = 1000) -> None:
        self._targets = targets
        self._attempts = attempts
        self._timeout = timeout
        self._backoff = backoff
        sender, receiver = anyio.create_memory_object_stream[dict[str, Any]](queue_size)
        self._sender: MemoryObjectSendStream[dict[str, Any]] = sender
        self._receiver: MemoryObjectReceiveStream[dict[str, Any]] = receiver
        self._running = False

    def send(self, payload: dict[str, Any]) -> None:
        if not self._targets:
            return
        try:
            self._sender.send_nowait(payload)
        except anyio.WouldBlock:
            # The alert is also stored as a kernel event; only its webhook copy is lost, and said so.
            log.error("webhook queue full: alert %s not posted", payload.get("type"))

    def close(self) -> None:
        """Stop accepting alerts (idempotent); a running ``run`` finishes what is queued and returns."""
        self._sender.close()
        if not self._running:
            self._receiver.close()

    async def run(self) -> None:
        self._running = True
        async with httpx.AsyncClient(timeout=self._timeout) as client, self._receiver, self._sender:
            async for payload in self._receiver:
                body = json.dumps(payload, separators=(",", ":")).encode()
                async with anyio.create_task_group() as group:
                    for target in self._targets:
                        group.start_soon(self._deliver, client, target, body, str(payload.get("type", "")))

    async def _deliver(self, client: httpx.AsyncClient, target: WebhookTarget, body: bytes, event: str) -> None:
        headers = {"content-type": "application/json", "x-warden-event": event,
                   "x-warden-delivery": uuid.uuid4().hex}
        if target.secret:
            headers[SIGNATURE_HEADER] = signature(target.secret, body)
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                response = await client.post(target.url, content=body, headers=headers)
                if response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver rejects this payload; retrying will not help
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < self._attempts:
                await anyio.sleep(delay)
                delay *= 2
        log.error("webhook %s gave up on %s after %d attempt(s): %s", target.url, event, attempt, problem)
