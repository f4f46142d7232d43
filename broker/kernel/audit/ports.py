"""The audit port: where audit events go. The audit issue adds spooled sinks (ClickHouse, forwarders)."""

from __future__ import annotations

from typing import Protocol

from broker.kernel.audit.events import AuditEvent


class AuditSink(Protocol):
    """Accepts events; never drops one silently (a full sink makes ``record`` wait)."""

    def admit(self) -> None:
        """Raise AuditUnavailable when a new request must be refused because its audit event could not be
        kept (the sink is full and audit is mandatory); return otherwise."""
        ...

    async def record(self, event: AuditEvent) -> None:
        """Hand over one event."""
        ...
