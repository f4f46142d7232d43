"""The admin audit trail: every change made through the management API (and every console sign-in, failed ones
included) becomes an audit event of kind ``admin``: who, which operation on which resource, the outcome, the
request, and the resource before and after the change where the API can read it.

It goes through the same spool as the gateway's events (never lost, retained on its own period as
``retention_days_by_kind.admin``, forwarded to SIEMs). Secrets never reach it: fields whose names say they hold
one are masked, and credentials of known formats in what is left are redacted (names and email addresses stay:
the trail exists to say who did what to whom).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any

from starlette.requests import Request

from broker.edge.request_context import context_of
from broker.kernel.audit.ports import AuditSink
from broker.kernel.audit.redaction import CREDENTIALS, Redactor
from broker.kernel.identity.models import Principal

_SECRET_FIELD = re.compile(r"(?i)secret|password|passwd|token|api_?key|private_?key|credential|authorization|cookie")
MASK = "[REDACTED:secret]"


class AdminTrail:
    def __init__(self, audit: AuditSink, redactor: Redactor | None = None) -> None:
        self._audit = audit
        self._redactor = redactor or Redactor(kinds=CREDENTIALS)

    async def record(self, request: Request, operation: str, principal: Principal | None, status: int,
                     started: float, sent: Any, before: Any, after: Any) -> None:
        context = context_of(request.scope)
        outcome = "ok" if status < 400 else "refused" if status in (401, 403) else "error"
        detail: dict[str, Any] = {"path": request.url.path, "params": dict(request.path_params), "status": status}
        for name, value in (("request", sent), ("before", before), ("after", after)):
            if value is not None:
                detail[name] = self._clean(value)
        event = context.audit_event(
            principal, surface="admin", target=f"console:{operation.split(' ', 1)[1]}", action=operation,
            outcome=outcome, error_code=status if status >= 400 else None,
            duration_ms=(time.monotonic() - started) * 1000, detail=detail)
        if principal is None:  # a sign-in: the user it turned out to be
            event = replace(event, user_id=getattr(request.state, "signed_in", None))
        await self._audit.record(event)

    def _clean(self, value: Any) -> Any:
        """The value with secret-named fields masked and every string redacted."""
        if isinstance(value, dict):
            return {k: MASK if _SECRET_FIELD.search(str(k)) and isinstance(v, str | dict | list) and v
                    else self._clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clean(item) for item in value]
        if isinstance(value, str):
            return self._redactor.redact(value)[0]
        return value
