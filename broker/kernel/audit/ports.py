"""The audit port: where audit events go. The audit issue adds spooled sinks (ClickHouse, forwarders)."""

from __future__ import annotations

from typing import Protocol

from broker.kernel.audit.events import AuditEvent


class AuditSink(Protocol):
    """Accepts events; never drops one silently (a full sink makes ``record`` wait)."""

    async def record(self, event: AuditEvent) -> None:
        """Hand over one event."""
        ...
