"""The live AI catalogue: providers and models read from the store into the router, re-read on every instance
when any instance changes them (so a kill switch takes effect everywhere at once)."""

from __future__ import annotations

from ai_proxy.catalog_store import AiCatalogStore
from ai_proxy.routing import ModelRouter
from broker.config import ModelConfig, ProviderConfig
from broker.kernel.bus.ports import Broadcast, Message

CATALOG_CHANNEL = "ai.catalog"


class AiCatalog:
    def __init__(self, store: AiCatalogStore, router: ModelRouter, broadcast: Broadcast) -> None:
        self.store = store
        self.router = router
        self._broadcast = broadcast
        broadcast.subscribe(CATALOG_CHANNEL, self.reload)

    async def start(self, providers: tuple[ProviderConfig, ...], models: tuple[ModelConfig, ...]) -> None:
        """Take in the configuration file's providers and models, then route by the whole catalogue."""
        await self.store.reconcile_config(providers, models)
        await self.reload()

    async def reload(self, message: Message | None = None) -> None:
        self.router.replace([p for p, _ in await self.store.providers()], [m for m, _ in await self.store.models()])

    async def changed(self) -> None:
        """Route by the changed catalogue here at once, and on every other instance as soon as it hears."""
        await self.reload()
        await self._broadcast.publish(CATALOG_CHANNEL, {})
