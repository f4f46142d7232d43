"""AI providers and models at rest, from the configuration file (``source`` config, changed there) or the
management API (``source`` api). A provider's key is sealed with the secret box, bound to the provider's name;
a model's kill switch (``enabled``) may be thrown whatever its source, and survives re-reading the file."""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from pydantic import ValidationError

from broker.config import ModelConfig, ProviderConfig
from broker.kernel.clock import Clock
from broker.kernel.crypto import SecretBox
from broker.kernel.errors import Conflict, FieldError, InvalidInput, NotFound
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database, Row

_KEY_CONTEXT = b"ai_provider.api_key:"
_Definition = TypeVar("_Definition", ProviderConfig, ModelConfig)


class AiCatalogStore:
    def __init__(self, db: Database, clock: Clock, box: SecretBox) -> None:
        self._db = db
        self._clock = clock
        self._box = box

    # Providers

    async def providers(self) -> list[tuple[ProviderConfig, str]]:
        return [(self._provider(r), r["source"]) for r in await self._db.fetch("SELECT * FROM ai_providers"
                                                                              " ORDER BY name")]

    async def provider(self, name: str) -> tuple[ProviderConfig, str]:
        row = await self._db.fetchrow("SELECT * FROM ai_providers WHERE name = ?", name)
        if row is None:
            raise NotFound(f"AI provider {name!r} not found")
        return self._provider(row), row["source"]

    def _provider(self, row: Row) -> ProviderConfig:
        key = None
        if row["api_key_sealed"]:
            key = self._box.open(base64.b64decode(row["api_key_sealed"]), _KEY_CONTEXT + row["name"].encode()).decode()
        return ProviderConfig(name=row["name"], type=row["type"], api_key=key, **json.loads(row["settings"]))

    def _sealed_key(self, provider: ProviderConfig) -> str | None:
        if not provider.api_key:
            return None
        sealed = self._box.seal(provider.api_key.encode(), _KEY_CONTEXT + provider.name.encode())
        return base64.b64encode(sealed).decode()

    async def create_provider(self, provider: ProviderConfig, source: str = "api") -> ProviderConfig:
        now = self._clock.now()
        try:
            await self._db.execute(
                "INSERT INTO ai_providers (name, type, settings, api_key_sealed, source, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", provider.name, provider.type, _settings(provider),
                self._sealed_key(provider), source, now, now)
        except UniqueViolation as exc:
            raise Conflict(f"an AI provider named {provider.name!r} already exists") from exc
        return provider

    async def update_provider(self, name: str, changes: dict[str, Any]) -> ProviderConfig:
        current, source = await self.provider(name)
        if source == "config":
            raise Conflict("this provider comes from the configuration file; change it there")
        updated = _valid(ProviderConfig, {**current.model_dump(), **changes})
        await self._db.execute(
            "UPDATE ai_providers SET type = ?, settings = ?, api_key_sealed = ?, updated_at = ? WHERE name = ?",
            updated.type, _settings(updated), self._sealed_key(updated), self._clock.now(), name)
        return updated

    async def delete_provider(self, name: str) -> None:
        _, source = await self.provider(name)
        if source == "config":
            raise Conflict("this provider comes from the configuration file; remove it there")
        users = [m.name for m, _ in await self.models() if any(r.provider == name for r in m.routes)]
        if users:
            raise Conflict(f"AI provider {name!r} is a peer of {', '.join(users)}; change those models first")
        await self._db.execute("DELETE FROM ai_providers WHERE name = ?", name)

    # Models

    async def models(self) -> list[tuple[ModelConfig, str]]:
        return [(self._model(r), r["source"]) for r in await self._db.fetch("SELECT * FROM ai_models ORDER BY name")]

    async def model(self, name: str) -> tuple[ModelConfig, str]:
        row = await self._db.fetchrow("SELECT * FROM ai_models WHERE name = ?", name)
        if row is None:
            raise NotFound(f"model {name!r} not found")
        return self._model(row), row["source"]

    @staticmethod
    def _model(row: Row) -> ModelConfig:
        definition = json.loads(row["definition"])
        definition.pop("enabled", None)  # as declared; the column holds the switch as it stands
        return ModelConfig(**definition, enabled=bool(row["enabled"]))

    async def create_model(self, model: ModelConfig, source: str = "api", enabled: bool | None = None) -> ModelConfig:
        await self._check_model(model)
        now = self._clock.now()
        try:
            await self._db.execute(
                "INSERT INTO ai_models (name, definition, enabled, source, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", model.name, _definition(model),
                model.enabled if enabled is None else enabled, source, now, now)
        except UniqueViolation as exc:
            raise Conflict(f"a model named {model.name!r} already exists") from exc
        return model

    async def update_model(self, name: str, changes: dict[str, Any]) -> ModelConfig:
        """Changes a model; of a model from the configuration file, only the kill switch."""
        current, source = await self.model(name)
        if source == "config" and set(changes) - {"enabled"}:
            raise Conflict("this model comes from the configuration file; change it there (only 'enabled', its"
                           " kill switch, may be set here)")
        updated = _valid(ModelConfig, {**current.model_dump(), **changes})
        await self._check_model(updated)
        if source == "config":  # the definition keeps what the file declares
            await self._db.execute("UPDATE ai_models SET enabled = ?, updated_at = ? WHERE name = ?",
                                   updated.enabled, self._clock.now(), name)
        else:
            await self._db.execute("UPDATE ai_models SET definition = ?, enabled = ?, updated_at = ? WHERE name = ?",
                                   _definition(updated), updated.enabled, self._clock.now(), name)
        return updated

    async def delete_model(self, name: str) -> None:
        _, source = await self.model(name)
        if source == "config":
            raise Conflict("this model comes from the configuration file; remove it there")
        await self._db.execute("DELETE FROM ai_models WHERE name = ?", name)

    async def _check_model(self, model: ModelConfig) -> None:
        known = {p.name for p, _ in await self.providers()}
        problems = [FieldError(f"routes[{i}].provider", f"no AI provider is named {r.provider!r}")
                    for i, r in enumerate(model.routes) if r.provider not in known]
        taken = {name: m.name for m, _ in await self.models() if m.name != model.name for name in (m.name, *m.aliases)}
        problems += [FieldError("aliases" if name != model.name else "name", f"{name!r} already names model"
                                f" {taken[name]!r}") for name in (model.name, *model.aliases) if name in taken]
        if problems:
            raise InvalidInput("invalid model", problems)

    # Both

    async def reconcile_config(self, providers: tuple[ProviderConfig, ...], models: tuple[ModelConfig, ...]) -> None:
        """Make the file's providers and models exactly the ``config`` ones in the store. A kill switch thrown
        through the API on a model from the file stays as it is, unless the file's own ``enabled`` changed."""
        rows = await self._db.fetch("SELECT name, definition, enabled FROM ai_models WHERE source = 'config'")
        switched = {r["name"]: (json.loads(r["definition"]).get("enabled", True), bool(r["enabled"])) for r in rows}
        for table, present, wanted in (("ai_models", await self.models(), {m.name for m in models}),
                                       ("ai_providers", await self.providers(), {p.name for p in providers})):
            for item, source in present:
                if item.name in wanted and source == "api":
                    raise Conflict(f"{table[3:]}: {item.name!r} already exists, created through the API")
                if source == "config":
                    await self._db.execute(f"DELETE FROM {table} WHERE name = ?", item.name)
        for provider in providers:
            await self.create_provider(provider, "config")
        for model in models:
            declared, standing = switched.get(model.name, (model.enabled, model.enabled))
            await self.create_model(model, "config", enabled=standing if declared == model.enabled else model.enabled)

    async def reseal_all(self) -> int:
        """Re-encrypt every provider key under the current master key version (key rotation)."""
        providers = await self.providers()
        for provider, _ in providers:
            await self._db.execute("UPDATE ai_providers SET api_key_sealed = ? WHERE name = ?",
                                   self._sealed_key(provider), provider.name)
        return len(providers)


def _settings(provider: ProviderConfig) -> str:
    return json.dumps(provider.model_dump(exclude={"name", "type", "api_key"}))


def _definition(model: ModelConfig) -> str:
    return json.dumps(model.model_dump(mode="json"))


def _valid(kind: type[_Definition], values: dict[str, Any]) -> _Definition:
    try:
        return kind.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput("invalid values", [FieldError(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
                                              for e in exc.errors()]) from exc
