"""Audit events posted to an HTTP endpoint in batches, each body signed with HMAC-SHA256 when a secret is set
(the ``x-warden-signature`` header of the alert webhooks: ``sha256=<hex of HMAC(secret, body)>``).

The body is ``{"events": [...]}`` in spool order; any answer but 2xx is retried with the same events, so a
receiver may see an event again after a failure and tells by its ``id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from broker.webhooks import SIGNATURE_HEADER, signature


class WebhookRefused(Exception):
    """The receiver answered with something other than 2xx."""


class WebhookChannel:
    wants_bodies = False

    def __init__(self, name: str, url: str, secret: str | None = None, timeout: float = 10.0) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def deliver(self, events: Sequence[dict[str, Any]]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        body = orjson.dumps({"events": events})
        headers = {"content-type": "application/json", "x-warden-event": "audit",
                   "x-warden-delivery": f"{events[0]['id']}+{len(events)}"}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        response = await self._client.post(self._url, content=body, headers=headers)
        if response.status_code >= 300:
            raise WebhookRefused(f"{self._url} answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
