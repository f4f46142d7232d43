"""Each tool call's timeline (start, every progress event, the end) and its audit event."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from broker.kernel.audit.events import AuditEvent, event_id
from broker.kernel.identity.models import Principal

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_of(request: Any) -> str:
    """The W3C ``traceparent`` trace id when the client sent one, else a new one."""
    if isinstance(request, Request):
        match = _TRACEPARENT.match(request.headers.get("traceparent", "").strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1)
    return event_id()


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

    def audit_event(self, principal: Principal, trace_id: str, server: str | None, tool: str,
                    arguments: dict[str, Any] | None, outcome: str, error_code: int | None,
                    account: tuple[str, str] | None = None) -> AuditEvent:
        """``account``: the linked account (label, upstream identity) a per-user server's call ran as."""
        return AuditEvent(
            id=event_id(), at=self.started_at, trace_id=trace_id, surface="mcp",
            user_id=principal.user.id if principal.user else None, team_id=principal.team_id,
            api_key_id=principal.key.id if principal.key else None,
            target=f"mcp_server:{server or '-'}", action=f"tools/call:{tool}", outcome=outcome,
            error_code=error_code, duration_ms=self.elapsed_ms(),
            detail={"tool": tool, "arguments_bytes": len(repr(arguments or {}).encode()),
                    "progress_events": sum(1 for e in self.events if e["event"] == "progress"),
                    "timeline": self.events,
                    **({"account": account[0], "upstream_subject": account[1]} if account else {})},
        )
