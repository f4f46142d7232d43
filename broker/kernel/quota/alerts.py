"""Budget alerts: each crossed threshold becomes a kernel event, an audit event and a webhook payload."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from broker.kernel.audit.events import AuditEvent
from broker.kernel.audit.ports import AuditSink
from broker.kernel.events import KernelEvents
from broker.kernel.quota.engine import ThresholdCrossed

THRESHOLD_EVENT = "quota.threshold"


class BudgetAlerts:
    """The engine's alert sink: a kernel event, an audit event (``surface`` "quota"), then the webhooks."""

    def __init__(self, events: KernelEvents, audit: AuditSink, notify: Callable[[dict[str, Any]], None]) -> None:
        self._events = events
        self._audit = audit
        self._notify = notify

    async def __call__(self, alert: ThresholdCrossed) -> None:
        detail = {
            "rule_id": alert.rule.id, "rule": alert.rule.label, "subject": str(alert.subject),
            "period": alert.period_key, "threshold_percent": alert.threshold, "used": alert.used,
            "limit": alert.rule.limit, "metric": alert.rule.metric,
        }
        event = await self._events.emit(THRESHOLD_EVENT, str(alert.subject), detail)
        subject = alert.subject
        await self._audit.record(AuditEvent(
            id=event.id, at=event.at, trace_id=uuid.uuid4().hex, surface="quota",
            user_id=subject.id if subject.kind == "user" else None,
            team_id=subject.id if subject.kind == "team" else None,
            api_key_id=subject.id if subject.kind == "api_key" else None,
            target=str(subject), action=THRESHOLD_EVENT, outcome="alert", error_code=None, duration_ms=0.0,
            detail=detail,
        ))
        self._notify({"type": THRESHOLD_EVENT, "id": event.id, "at": event.at, **detail})
