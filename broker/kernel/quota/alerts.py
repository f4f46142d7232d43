"""Budget alerts: each crossed threshold becomes a kernel event and a webhook payload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.kernel.events import KernelEvents
from broker.kernel.quota.engine import ThresholdCrossed

THRESHOLD_EVENT = "quota.threshold"


class BudgetAlerts:
    """The engine's alert sink: recorded (for the audit stream and the console), then notified."""

    def __init__(self, events: KernelEvents, notify: Callable[[dict[str, Any]], None]) -> None:
        self._events = events
        self._notify = notify

    async def __call__(self, alert: ThresholdCrossed) -> None:
        detail = {
            "rule_id": alert.rule.id, "rule": alert.rule.label, "subject": str(alert.subject),
            "period": alert.period_key, "threshold_percent": alert.threshold, "used": alert.used,
            "limit": alert.rule.limit, "metric": alert.rule.metric,
        }
        event = await self._events.emit(THRESHOLD_EVENT, str(alert.subject), detail)
        self._notify({"type": THRESHOLD_EVENT, "id": event.id, "at": event.at, **detail})
