"""Who is asking and which trace a request belongs to, worked out once per gateway request.

The trace id comes from the client's W3C ``traceparent`` when it sent a valid one, so an agent's LLM turns
(``/v1``) and tool calls (``/mcp``) carry the same trace id into the audit trail; otherwise a new one is drawn.
Each request is one span of that trace: its id is drawn here, its parent is the span the client's
``traceparent`` named, and requests Warden makes upstream on its behalf carry it as their parent, so an exported
trace (the OTLP audit channel) nests client -> Warden -> upstream.
The ``x-request-id`` the client sent (or a new one) is echoed on the response and recorded with the audit event.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from broker.edge.metrics import StatusNotingSend
from broker.kernel.audit.events import AuditEvent, event_id
from broker.kernel.identity.models import Principal

SCOPE_KEY = "warden.request"
_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")  # visible ASCII, as a header value and a log field
_USER_AGENT_LIMIT = 512


def new_span_id() -> str:
    """A 64-bit span id: unique, not secret, so drawn without the system call ``secrets`` makes (never zero)."""
    return f"{random.getrandbits(64) | 1:016x}"


@dataclass(frozen=True, slots=True)
class RequestContext:
    trace_id: str
    request_id: str
    client_ip: str | None
    user_agent: str | None
    span_id: str = field(default_factory=new_span_id)
    parent_span_id: str | None = None  # the client's span, from its ``traceparent``

    def audit_event(self, principal: Principal | None, *, surface: str, target: str, action: str, outcome: str,
                    error_code: int | None, duration_ms: float, detail: dict[str, Any],
                    at: float | None = None) -> AuditEvent:
        """The audit event of this request: who asked (``principal``; None before a key was accepted), from where
        and in which trace (this context), and what happened."""
        return AuditEvent(
            id=event_id(), at=time.time() if at is None else at, trace_id=self.trace_id, surface=surface,
            user_id=principal.user.id if principal and principal.user else None,
            team_id=principal.team_id if principal else None,
            api_key_id=principal.key.id if principal and principal.key else None,
            target=target, action=action, outcome=outcome, error_code=error_code, duration_ms=duration_ms,
            detail=detail, request_id=self.request_id, client_ip=self.client_ip, user_agent=self.user_agent,
            span_id=self.span_id, parent_span_id=self.parent_span_id)

    def traceparent(self) -> str:
        """A ``traceparent`` for a request Warden makes on this one's behalf: same trace, this request's span as
        its parent."""
        return f"00-{self.trace_id}-{self.span_id}-01"

    def traced(self, traceparent: Any) -> RequestContext:
        """This context in the trace ``traceparent`` names, when that is valid (else unchanged)."""
        ids = traceparent_ids(traceparent)
        return replace(self, trace_id=ids[0], parent_span_id=ids[1]) if ids else self


def context_of(scope: Scope) -> RequestContext:
    """The request's context (worked out here if no middleware did, e.g. behind another ASGI app in tests)."""
    context = scope.get(SCOPE_KEY)
    if context is None:
        context = scope[SCOPE_KEY] = _read(scope)
    return context


def traceparent_ids(traceparent: Any) -> tuple[str, str] | None:
    """The trace id and parent span id of a valid W3C ``traceparent`` value (str or bytes), else None."""
    if isinstance(traceparent, str):
        traceparent = traceparent.encode("latin-1", "replace")
    if not isinstance(traceparent, bytes):
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == b"0" * 32 or match.group(2) == b"0" * 16:
        return None
    return match.group(1).decode(), match.group(2).decode()


def _read(scope: Scope) -> RequestContext:
    traceparent = request_id = user_agent = None
    for name, value in scope.get("headers", ()):
        if name == b"traceparent":
            traceparent = value
        elif name == b"x-request-id":
            request_id = value
        elif name == b"user-agent":
            user_agent = value
    client = scope.get("client")
    ids = traceparent_ids(traceparent)
    return RequestContext(
        ids[0] if ids else event_id(),
        request_id.decode() if request_id is not None and _REQUEST_ID.match(request_id) else event_id(),
        client[0] if client else None,
        user_agent[:_USER_AGENT_LIMIT].decode("latin-1") if user_agent else None,
        parent_span_id=ids[1] if ids else None,
    )


class RequestContexts:
    """ASGI middleware: puts each HTTP request's context in its scope and echoes ``x-request-id``."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        context = scope[SCOPE_KEY] = _read(scope)
        await self._app(scope, receive, StatusNotingSend(send, [(b"x-request-id", context.request_id.encode())]))
