"""``/api/audit``: single audit events and their captured bodies, and ``/api/settings/audit``: what bodies are
captured and how they are redacted (changes apply on every instance at once)."""

from __future__ import annotations

from typing import Any

from broker.kernel.audit.adapters.store import AuditQuery
from broker.kernel.audit.body_store import BodyStore, BodyStoreError
from broker.kernel.audit.capture import CaptureSettings
from broker.kernel.audit.capture_settings import AuditCaptureConfig
from broker.kernel.errors import DependencyUnavailable, NotFound
from broker.kernel.identity.service import require
from console.endpoints import ApiRoute, Call


class AuditRoutes:
    def __init__(self, audit: AuditQuery, bodies: BodyStore, capture: CaptureSettings) -> None:
        self._audit = audit
        self._bodies = bodies
        self._capture = capture

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/audit/events/{event_id}", self.get,
                     "One audit event; detail.bodies gives the captured bodies' sizes and redactions (audit:read)",
                     "audit"),
            ApiRoute("GET", "/api/audit/events/{event_id}/bodies", self.bodies,
                     "The event's captured bodies, redacted, offloaded ones fetched (audit:read_bodies)", "audit"),
            ApiRoute("GET", "/api/settings/audit", self.settings, "Body capture and redaction settings"
                     " (settings:manage)", "settings"),
            ApiRoute("PUT", "/api/settings/audit", self.update, "Change body capture and redaction; applies on"
                     " every instance without a restart (settings:manage)", "settings", body=AuditCaptureConfig),
        ]

    async def get(self, call: Call) -> dict[str, Any]:
        require(call.actor, "audit:read")
        event = await self._audit.get(call.path("event_id"))
        if event is None:
            raise NotFound("no such audit event")
        return event

    async def bodies(self, call: Call) -> dict[str, Any]:
        require(call.actor, "audit:read_bodies")
        event_id = call.path("event_id")
        if await self._audit.get(event_id) is None:
            raise NotFound("no such audit event")
        try:
            return {"event_id": event_id, "bodies": await self._audit.bodies(event_id, self._bodies)}
        except BodyStoreError as exc:
            raise DependencyUnavailable(f"an offloaded body could not be read: {exc}") from exc

    async def settings(self, call: Call) -> dict[str, Any]:
        require(call.actor, "settings:manage")
        return self._capture.current.model_dump(mode="json")

    async def update(self, call: Call) -> dict[str, Any]:
        require(call.actor, "settings:manage")
        settings: AuditCaptureConfig = call.body
        await self._capture.update(settings, call.actor.user.id if call.actor.user else None)
        return settings.model_dump(mode="json")
