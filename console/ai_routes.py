"""``/api/ai/providers`` and ``/api/ai/models``: the AI proxy's providers (keys write-only, stored sealed) and
models (aliases, peers, routing mode, prices, the kill switch). Every change takes effect on every instance."""

from __future__ import annotations

from typing import Any

from ai_proxy.catalog import AiCatalog
from ai_proxy.catalog_store import AiCatalogStore
from broker.config import ModelConfig, ProviderConfig
from broker.kernel.identity.service import require
from broker.outbound import Outbound
from console.endpoints import ApiRoute, Call
from console.schemas import UpdateAiModel, UpdateAiProvider


class AiCatalogRoutes:
    def __init__(self, catalog: AiCatalog, outbound: Outbound) -> None:
        self._catalog = catalog
        self._outbound = outbound

    @property
    def _store(self) -> AiCatalogStore:
        return self._catalog.store

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/ai/providers", self.providers, "AI providers (providers:read)", "ai"),
            ApiRoute("POST", "/api/ai/providers", self.create_provider, "Add an AI provider; its api_key is stored"
                     " encrypted and never returned (providers:manage)", "ai", body=ProviderConfig, status=201),
            ApiRoute("GET", "/api/ai/providers/{name}", self.provider, "One AI provider (providers:read)", "ai"),
            ApiRoute("PATCH", "/api/ai/providers/{name}", self.update_provider, "Change an AI provider; an omitted"
                     " api_key is kept (providers:manage)", "ai", body=UpdateAiProvider),
            ApiRoute("DELETE", "/api/ai/providers/{name}", self.delete_provider, "Remove an AI provider no model"
                     " routes to (providers:manage)", "ai", status=204),
            ApiRoute("GET", "/api/ai/models", self.models, "Registered models, switched on or off"
                     " (providers:read)", "ai"),
            ApiRoute("POST", "/api/ai/models", self.create_model, "Register a model: aliases, peers, routing mode,"
                     " weights and prices (providers:manage)", "ai", body=ModelConfig, status=201),
            ApiRoute("GET", "/api/ai/models/{name}", self.model, "One model (providers:read)", "ai"),
            ApiRoute("PATCH", "/api/ai/models/{name}", self.update_model, "Change a model; {\"enabled\": false} is"
                     " its kill switch, effective at once on every instance (providers:manage)", "ai",
                     body=UpdateAiModel),
            ApiRoute("DELETE", "/api/ai/models/{name}", self.delete_model, "Remove a model (providers:manage)",
                     "ai", status=204),
        ]

    async def providers(self, call: Call) -> dict[str, Any]:
        require(call.actor, "providers:read")
        return {"items": [_provider_view(p, source) for p, source in await self._store.providers()]}

    async def provider(self, call: Call) -> dict[str, Any]:
        require(call.actor, "providers:read")
        return _provider_view(*await self._store.provider(call.path("name")))

    async def create_provider(self, call: Call) -> dict[str, Any]:
        require(call.actor, "providers:manage")
        body: ProviderConfig = call.body
        await self._outbound.check_field(body.base_url, "base_url")
        created = await self._store.create_provider(body)
        await self._catalog.changed()
        return _provider_view(created, "api")

    async def update_provider(self, call: Call) -> dict[str, Any]:
        require(call.actor, "providers:manage")
        changes = call.body.model_dump(exclude_unset=True)
        await self._outbound.check_field(changes.get("base_url"), "base_url")
        updated = await self._store.update_provider(call.path("name"), changes)
        await self._catalog.changed()
        return _provider_view(updated, "api")

    async def delete_provider(self, call: Call) -> None:
        require(call.actor, "providers:manage")
        await self._store.delete_provider(call.path("name"))
        await self._catalog.changed()

    async def models(self, call: Call) -> dict[str, Any]:
        require(call.actor, "providers:read")
        return {"items": [_model_view(m, source) for m, source in await self._store.models()]}

    async def model(self, call: Call) -> dict[str, Any]:
        require(call.actor, "providers:read")
        return _model_view(*await self._store.model(call.path("name")))

    async def create_model(self, call: Call) -> dict[str, Any]:
        require(call.actor, "providers:manage")
        created = await self._store.create_model(call.body)
        await self._catalog.changed()
        return _model_view(created, "api")

    async def update_model(self, call: Call) -> dict[str, Any]:
        require(call.actor, "providers:manage")
        name = call.path("name")
        updated = await self._store.update_model(name, call.body.model_dump(mode="json", exclude_unset=True))
        await self._catalog.changed()
        return _model_view(*await self._store.model(updated.name))

    async def delete_model(self, call: Call) -> None:
        require(call.actor, "providers:manage")
        await self._store.delete_model(call.path("name"))
        await self._catalog.changed()



def _provider_view(provider: ProviderConfig, source: str) -> dict[str, Any]:
    return {**provider.model_dump(exclude={"api_key"}), "api_key_set": bool(provider.api_key), "source": source}


def _model_view(model: ModelConfig, source: str) -> dict[str, Any]:
    return {**model.model_dump(mode="json"), "source": source}
