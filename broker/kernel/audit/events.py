"""The audit event both surfaces emit: who did what to which target, when, with what outcome."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

from broker.kernel.audit.capture import CapturedBody


def event_id() -> str:
    """A 128-bit id for an audit event or a trace, ordered by time like a UUIDv7: 48 bits of milliseconds, then
    80 random bits. In time order, new rows land at the end of the id index instead of on a random page each
    (on SQLite that was about three page writes per event); unique, not a secret, so the generator seeded from
    the OS at start serves (os.urandom is a system call, on every request)."""
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited request. ``target`` is e.g. ``mcp_server:github``; ``action`` e.g. ``tools/call:github__x``."""

    id: str
    at: float
    trace_id: str
    surface: str
    user_id: str | None
    team_id: str | None
    api_key_id: str | None
    target: str
    action: str
    outcome: str  # ok | tool_error | refused | error
    error_code: int | None
    duration_ms: float
    detail: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None  # the client's x-request-id, or the one Warden gave the request
    client_ip: str | None = None
    user_agent: str | None = None
    span_id: str | None = None  # the request's span in the trace (W3C ids, hex)
    parent_span_id: str | None = None  # the caller's span, when its traceparent named one
    # Captured bodies by part (AI: request, response; MCP: arguments, result), redacted; sizes and redaction
    # counts are also in ``detail["bodies"]``, which outlives the bodies themselves. The last field: the store
    # writer tells an event without bodies by how its JSON ends.
    bodies: dict[str, CapturedBody] | None = None


def with_bodies(event: AuditEvent, bodies: dict[str, CapturedBody] | None) -> AuditEvent:
    """The event carrying ``bodies``, their sizes and redaction counts also noted in its detail."""
    if not bodies:
        return event
    return replace(event, bodies=bodies,
                   detail={**event.detail, "bodies": {part: body.summary() for part, body in bodies.items()}})
