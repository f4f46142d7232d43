"""``GET /v1/models``: the registered models (switched on) the calling key may use, in OpenAI's list format.

On the same pipeline stages as the completion surfaces, as far as a listing has them: the key is checked for
the ``ai`` surface, the request is admitted by the quota kernel, and one audit event is left; refusals are
OpenAI error objects."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ai_proxy.errors import from_warden, openai_error
from ai_proxy.ratelimit_headers import ratelimit_headers
from ai_proxy.routing import ModelRouter
from broker.edge.credentials import presented_key
from broker.edge.request_context import context_of
from broker.kernel.audit.ports import AuditSink
from broker.kernel.errors import WardenError
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.models import QuotaRequest
from broker.kernel.quota.subjects import subjects_for


class ModelList:
    def __init__(self, identity: Identity, quotas: QuotaEngine, router: ModelRouter, audit: AuditSink,
                 created_at: int) -> None:
        self._identity = identity
        self._quotas = quotas
        self._router = router
        self._audit = audit
        self._created_at = created_at

    async def endpoint(self, request: Request) -> Response:
        started = time.monotonic()
        principal: Principal | None = None
        try:
            principal = await self._identity.principal_for_key(presented_key(request, allow_x_api_key=True), "ai")
            admission = await self._quotas.admit(QuotaRequest("ai", subjects_for(principal)))
        except WardenError as exc:
            await self._record(request, principal, started, "refused", exc.status, 0)
            return openai_error(from_warden(exc))
        allowed = principal.key.allowed_models if principal.key else None
        data = [
            {"id": m.name, "object": "model", "created": self._created_at, "owned_by": m.routes[0].provider}
            for m in self._router.models()
            if allowed is None or m.name in allowed
        ]
        await self._record(request, principal, started, "ok", None, len(data))
        return JSONResponse({"object": "list", "data": data}, headers=ratelimit_headers(admission))

    async def _record(self, request: Request, principal: Principal | None, started: float, outcome: str,
                      status: int | None, listed: int) -> None:
        context = context_of(request.scope)
        await self._audit.record(context.audit_event(
            principal, surface="ai", target="models", action="models.list", outcome=outcome, error_code=status,
            duration_ms=(time.monotonic() - started) * 1000, detail={"listed": listed}))
