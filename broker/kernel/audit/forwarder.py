"""Forwarding audit events to a channel (a SIEM, a webhook, a message broker): each channel reads the spool from
its own position and delivers in order, retrying with backoff until the channel takes the events.

A channel that is down only falls behind: the request path and the other channels never wait for it. Once it is
more than its ``max_lag_bytes`` behind, its oldest events are given up for that channel (counted in
``warden_audit_forward_lost_events_total`` and logged); the store keeps them regardless.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any, Protocol

import anyio
from prometheus_client import CollectorRegistry, Counter

from broker.kernel.audit.spool import AuditSpool

log = logging.getLogger(__name__)
BATCH = 100


class Undeliverable(Exception):
    """The channel took the batch but refused ``lost`` of its events for good (a retry would be refused again):
    those are counted as lost for this channel and forwarding goes on; the store has them."""

    def __init__(self, lost: int, message: str) -> None:
        super().__init__(message)
        self.lost = lost


class AuditChannel(Protocol):
    name: str
    wants_bodies: bool  # only a store-like channel (ClickHouse) gets captured bodies; the others sizes and counts

    async def deliver(self, events: Sequence[dict[str, Any]]) -> None:
        """Deliver the events in order, or raise; a retry delivers the same events again (receivers may see an
        event twice after a failure and tell by its id). ``Undeliverable``: not to be retried."""
        ...

    async def aclose(self) -> None: ...


class ForwardMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.delivered = Counter("warden_audit_forwarded_events", "Audit events delivered, by forwarding channel",
                                 ["channel"], registry=registry)
        self.failures = Counter("warden_audit_forward_failures", "Failed deliveries of an audit batch, by"
                                " forwarding channel", ["channel"], registry=registry)
        self.lost = Counter("warden_audit_forward_lost_events", "Audit events a forwarding channel gave up: it fell"
                            " more than its max_lag_bytes behind, or the receiver refused them for good",
                            ["channel"], registry=registry)


class AuditForwarder:
    """Runs one channel until cancelled; its position in the spool survives restarts."""

    def __init__(self, spool: AuditSpool, channel: AuditChannel, max_lag_bytes: int, metrics: ForwardMetrics,
                 timeout: float = 10.0, max_backoff: float = 30.0) -> None:
        self._spool = spool
        self._channel = channel
        self._max_lag = max_lag_bytes
        self._metrics = metrics
        self._timeout = timeout
        self._max_backoff = max_backoff

    async def run(self) -> None:
        name = self._channel.name
        try:
            while True:
                position = self._spool.forwarded(name)
                await self._spool.wait_beyond(position)
                if lost := self._spool.skip_lagging(name, self._max_lag):
                    self._metrics.lost.labels(name).inc(lost)
                    log.error("audit forwarding to %s: %d event(s) given up, the channel being more than %d bytes"
                              " behind (they are in the audit store)", name, lost, self._max_lag)
                    continue
                events, after = self._spool.read(position, BATCH)
                if not self._channel.wants_bodies:
                    events = [_without_bodies(event) for event in events]
                if await self._deliver(events):
                    self._spool.mark_forwarded(name, after)
        finally:
            with anyio.CancelScope(shield=True):
                await self._channel.aclose()

    async def _deliver(self, events: list[dict[str, Any]]) -> bool:
        """Retry until delivered (True) or until the channel fell too far behind to go on with these (False)."""
        name = self._channel.name
        attempt = 0
        while True:
            try:
                with anyio.fail_after(self._timeout):
                    await self._channel.deliver(events)
                self._metrics.delivered.labels(name).inc(len(events))
                if attempt:
                    log.warning("audit forwarding to %s works again after %d failed attempt(s)", name, attempt)
                return True
            except Undeliverable as exc:
                self._metrics.delivered.labels(name).inc(len(events) - exc.lost)
                self._metrics.lost.labels(name).inc(exc.lost)
                log.error("audit forwarding to %s: %s; %d event(s) given up for this channel (they are in the audit"
                          " store)", name, exc, exc.lost)
                return True
            except Exception as exc:
                attempt += 1
                self._metrics.failures.labels(name).inc()
                if attempt == 1 or attempt % 10 == 0:  # a channel down for hours logs now and then, not per try
                    log.warning("audit forwarding to %s failed (attempt %d), retrying: %s", name, attempt,
                                exc or type(exc).__name__)
            # Full jitter: channels that failed together do not all come back at the same instant.
            await anyio.sleep(random.uniform(0, min(self._max_backoff, 0.25 * 2**attempt)))  # noqa: S311
            if self._spool.forwarded_lag()[name] > self._max_lag:
                return False


def _without_bodies(event: dict[str, Any]) -> dict[str, Any]:
    """Forwarded events go without their captured bodies (their sizes and redaction counts stay in the detail):
    bodies stay behind the ``audit:read_bodies`` permission."""
    return {k: v for k, v in event.items() if k != "bodies"} if event.get("bodies") else event
