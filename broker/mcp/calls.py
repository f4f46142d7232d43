"""Each tool call's timeline (start, every progress event, the end) and its audit event."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from broker.edge.request_context import RequestContext, context_of
from broker.kernel.audit.events import AuditEvent, event_id
from broker.kernel.identity.models import Principal


def request_context_of(request: Any, meta: Mapping[str, Any] | None) -> RequestContext:
    """The HTTP request's context, its trace taken from the call's ``_meta.traceparent`` when that is valid
    (clients that cannot set headers per call put it there)."""
    context = context_of(request.scope) if isinstance(request, Request) else \
        RequestContext(event_id(), event_id(), None, None)
    return context.traced(meta.get("traceparent")) if meta else context


@dataclass
class CallTimeline:
    """What happened during one call, in milliseconds since it started."""

    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    events: list[dict[str, Any]] = field(default_factory=lambda: [{"t_ms": 0.0, "event": "start"}])

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.events.append({"t_ms": self.elapsed_ms(), "event": "progress", "progress": progress,
                            "total": total, "message": message})

    def mark(self, event: str) -> None:
        self.events.append({"t_ms": self.elapsed_ms(), "event": event})

    def finish(self, outcome: str, error_code: int | None = None) -> None:
        self.events.append({"t_ms": self.elapsed_ms(), "event": outcome, "error_code": error_code})

    def audit_event(self, principal: Principal, context: RequestContext, server: str | None, tool: str,
                    arguments: dict[str, Any] | None, outcome: str, error_code: int | None,
                    account: tuple[str, str] | None = None) -> AuditEvent:
        """``account``: the linked account (label, upstream identity) a per-user server's call ran as."""
        return context.audit_event(
            principal, surface="mcp", at=self.started_at, target=f"mcp_server:{server or '-'}",
            action=f"tools/call:{tool}", outcome=outcome, error_code=error_code, duration_ms=self.elapsed_ms(),
            detail={"tool": tool, "arguments_bytes": len(repr(arguments or {}).encode()),
                    "progress_events": sum(1 for e in self.events if e["event"] == "progress"),
                    "timeline": self.events,
                    **({"account": account[0], "upstream_subject": account[1]} if account else {})},
        )
