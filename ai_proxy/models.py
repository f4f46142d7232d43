"""``GET /v1/models``: the registered models (switched on) the calling key may use, in OpenAI's list format."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ai_proxy.ratelimit_headers import ratelimit_headers
from ai_proxy.routing import ModelRouter
from broker.edge.credentials import presented_key
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.models import QuotaRequest
from broker.kernel.quota.subjects import subjects_for


class ModelList:
    """Lists the router's models, filtered by the key's ``allowed_models``; counted by request quotas."""

    def __init__(self, identity: Identity, quotas: QuotaEngine, router: ModelRouter, created_at: int) -> None:
        self._identity = identity
        self._quotas = quotas
        self._router = router
        self._created_at = created_at

    async def endpoint(self, request: Request) -> Response:
        principal = await self._identity.principal_for_key(presented_key(request, allow_x_api_key=True), "ai")
        admission = await self._quotas.admit(QuotaRequest("ai", subjects_for(principal)))
        allowed = principal.key.allowed_models if principal.key else None
        data = [
            {"id": m.name, "object": "model", "created": self._created_at, "owned_by": m.routes[0].provider}
            for m in self._router.models()
            if allowed is None or m.name in allowed
        ]
        return JSONResponse({"object": "list", "data": data}, headers=ratelimit_headers(admission))
