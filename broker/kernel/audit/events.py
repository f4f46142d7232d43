"""The audit event both surfaces emit: who did what to which target, when, with what outcome."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

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


# How the spool keeps an event: one JSON array with the values in this order, the detail a JSON object (the text
# the store keeps, spliced in as it is) and, for AI events, the numbers the store keeps in columns of their own
# taken out of it. The first STORED values are the store's row (the detail as its text): its writer inserts the row
# ``record`` kept without building the event again (parsing the event as a JSON object, then serialising its detail
# a second time, cost it five times as much). Captured bodies come last. Versions before 2026-11-28 spooled the
# detail as a JSON string; ``stored_row`` and ``unspooled`` read both.
SPOOLED = ("id", "at", "trace_id", "surface", "user_id", "team_id", "api_key_id", "target", "action", "outcome",
           "error_code", "duration_ms", "detail", "request_id", "client_ip", "user_agent",
           "model", "provider", "input_tokens", "output_tokens", "weighted_tokens", "usd",
           "span_id", "parent_span_id", "bodies")
STORED = SPOOLED.index("span_id")
_DETAIL = SPOOLED.index("detail")
_TEXT_FIELDS = tuple(name for name, kind in AuditEvent.__annotations__.items() if kind.startswith("str"))
AI_NUMBERS = SPOOLED[SPOOLED.index("model"):STORED]
_NO_NUMBERS = (None,) * len(AI_NUMBERS)


def spooled(event: AuditEvent) -> bytes:
    """The event as the spool keeps it."""
    return spooled_row(event)[1]


def spooled_row(event: AuditEvent) -> tuple[tuple[Any, ...], bytes]:
    """The event's row in the store (its first STORED values) and the event as the spool keeps it; texts a store
    cannot hold (see ``storable``) made storable first."""
    try:
        row, payload = _spooled_row(event)
    except TypeError:  # orjson: a text with a lone surrogate (not UTF-8), or an integer beyond 64 bits
        return _spooled_row(storable(event))
    # JSON escapes NUL as \u0000. Most events hold no text that needs escaping at all, so a search for any
    # backslash (memchr) comes first; a literal backslash-u0000 matches too: harmless.
    return _spooled_row(storable(event)) if b"\\" in payload and b"\\u0000" in payload else (row, payload)


def storable(event: AuditEvent) -> AuditEvent:
    """``event`` with NUL and lone surrogates in its texts (from clients: a tool or model name, an argument, a
    body) replaced by U+FFFD. PostgreSQL's text cannot hold NUL, and one such row failed its whole batch, again
    at every retry: no event was stored after it. A lone surrogate cannot be encoded as UTF-8 at all."""
    texts = {name: _storable(value) for name in _TEXT_FIELDS if isinstance(value := getattr(event, name), str)}
    bodies = {part: replace(body, text=_storable(body.text)) for part, body in event.bodies.items()} \
        if event.bodies else event.bodies
    return replace(event, **texts, detail=_storable(event.detail), bodies=bodies)


def without_nul(text: str) -> str:
    """``text`` with NUL replaced by U+FFFD: all a text read back from the spool can need, as its JSON (orjson's,
    written and read) holds no lone surrogate. Unlike ``storable``, no UTF-8 copy of the text to look for one
    (bodies run to a MiB), and ``text`` itself when it holds no NUL."""
    return text.replace("\x00", "\ufffd")


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # the surrogates: through UTF-16, which pairs what pairs and replaces the rest
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return without_nul(value)
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    if isinstance(value, int) and not -(1 << 63) <= value < 1 << 64:
        return str(value)  # JSON (orjson) takes integers of up to 64 bits
    return value


def _spooled_row(event: AuditEvent) -> tuple[tuple[Any, ...], bytes]:
    detail = event.detail
    numbers = (*map(detail.get, AI_NUMBERS),) if event.surface == "ai" else _NO_NUMBERS
    text = orjson.dumps(detail)
    head = (event.id, event.at, event.trace_id, event.surface, event.user_id, event.team_id, event.api_key_id,
            event.target, event.action, event.outcome, event.error_code, event.duration_ms)
    tail = (event.request_id, event.client_ip, event.user_agent, *numbers)
    # The detail spliced in as JSON, not as a string holding JSON: nothing to escape a second time, and a payload
    # with no backslash in it unless some text needed one (see ``spooled_row``).
    payload = orjson.dumps((*head, orjson.Fragment(text), *tail, event.span_id, event.parent_span_id, event.bodies))
    return (*head, text.decode(), *tail), payload


def unspooled(payload: bytes) -> dict[str, Any]:
    """A spooled event as a JSON-like mapping of the event's fields (what forwarding channels send)."""
    if payload[:1] == b"{":  # spooled by a version that kept events as JSON objects
        return dict(orjson.loads(payload))
    event = dict(zip(SPOOLED, orjson.loads(payload), strict=False))
    if isinstance(event["detail"], str):  # spooled by a version that kept the detail as JSON text
        event["detail"] = orjson.loads(event["detail"])
    for name in AI_NUMBERS:
        del event[name]
    return event


def stored_row(payload: bytes) -> list[Any]:
    """The store's row of a spooled event: its first STORED values."""
    if payload[:1] == b"[":
        row: list[Any] = orjson.loads(payload)[:STORED]
        if not isinstance(row[_DETAIL], str):  # else spooled by a version that kept the detail as JSON text
            row[_DETAIL] = orjson.dumps(row[_DETAIL]).decode()
    else:  # spooled by a version that kept events as JSON objects
        event = orjson.loads(payload)
        detail = event["detail"]
        values = {**event, "detail": orjson.dumps(detail).decode(),
                  **({name: detail.get(name) for name in AI_NUMBERS} if event["surface"] == "ai" else {})}
        row = [values.get(name) for name in SPOOLED[:STORED]]
    if b"\\u0000" in payload:  # spooled by a version that kept NUL (see ``storable``)
        row = [without_nul(value) if isinstance(value, str) else value for value in row]
    return row


def has_bodies(payload: bytes) -> bool:
    """Whether a spooled event carries captured bodies (told without parsing it: they are its last value)."""
    return not payload.endswith((b",null]", b',"bodies":null}'))
