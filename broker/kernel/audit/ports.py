"""The audit port: where audit events go. The audit issue adds spooled sinks (ClickHouse, forwarders)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from broker.kernel.audit.events import AuditEvent

if TYPE_CHECKING:
    from broker.kernel.audit.adapters.store_search import AuditFilter


class AuditSink(Protocol):
    """Accepts events; never drops one silently (a full sink makes ``record`` wait)."""

    def admit(self) -> None:
        """Raise AuditUnavailable when a new request must be refused because its audit event could not be
        kept (the sink is full and audit is mandatory); return otherwise."""
        ...

    async def record(self, event: AuditEvent) -> None:
        """Hand over one event."""
        ...


class AuditSearch(Protocol):
    """Reading the audit log back: the store's own tables, or ClickHouse when it is configured."""

    async def events(self, where: AuditFilter, limit: int, before: tuple[float, str] | None = None
                     ) -> list[dict[str, Any]]: ...

    async def trace(self, trace_id: str) -> dict[str, Any]: ...

    async def usage(self, group_by: str, period: str | None, where: AuditFilter) -> list[dict[str, Any]]: ...

    async def ping(self) -> None:
        """Raise unless the engine answers (readiness and the dashboard's health)."""
        ...
