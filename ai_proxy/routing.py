"""Which provider serves a requested model.

Models registered in the configuration (``models``, by name or alias) route to their peers by manual weight,
each peer knowing the model by its own name if it has one (an Azure deployment); any other model name goes by
its prefix to the configured provider of that family (``gpt-``, ``o1-``, ``o3-``, ``o4-`` to
OpenAI; ``claude-`` to Anthropic; ``gemini-`` to Google). A name that matches neither is unknown.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.config import ModelConfig, ProviderConfig

_PREFIXES = (("gpt-", "openai"), ("o1-", "openai"), ("o3-", "openai"), ("o4-", "openai"), ("claude-", "anthropic"),
             ("gemini-", "gemini"))
# Where each provider family answers when its base URL is not configured.
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
                     "gemini": "https://generativelanguage.googleapis.com"}


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    type: str
    base_url: str
    api_key: str | None = field(repr=False)
    timeout_seconds: float = 600.0
    api_version: str = "2024-10-21"
    region: str | None = None
    aws_access_key_id: str | None = None

    @classmethod
    def from_config(cls, item: ProviderConfig) -> Provider:
        base = item.base_url or DEFAULT_BASE_URLS.get(item.type, "")
        if item.type == "bedrock" and not item.base_url:
            base = f"https://bedrock-runtime.{item.region}.amazonaws.com"
        return cls(item.name, item.type, base.rstrip("/"), item.api_key, item.timeout_seconds, item.api_version,
                   item.region, item.aws_access_key_id)


@dataclass(frozen=True, slots=True)
class Route:
    """One request's destination: the model (its registered name when the client used an alias), the provider
    chosen and why, the other peers to fail over to, in order, and the names peers know the model by."""

    model: str
    provider: Provider
    reason: str
    fallbacks: tuple[Provider, ...] = ()
    upstream_names: tuple[tuple[str, str], ...] = ()  # (provider name, the model's name there) where they differ

    @property
    def peers(self) -> tuple[Provider, ...]:
        return (self.provider, *self.fallbacks)

    def model_at(self, provider: Provider) -> str:
        return next((name for peer, name in self.upstream_names if peer == provider.name), self.model)


class UnknownModel(Exception):
    pass


class ModelRouter:
    def __init__(self, providers: tuple[ProviderConfig, ...], models: tuple[ModelConfig, ...],
                 choose: Callable[[list[float]], int] | None = None) -> None:
        self._providers = {p.name: Provider.from_config(p) for p in providers}
        self._models = {name: m for m in models for name in (m.name, *m.aliases)}
        self._choose = choose or _weighted

    def route(self, model: str) -> Route:
        registered = self._models.get(model)
        if registered is not None:
            peers = [r for r in registered.routes if r.weight > 0]
            if not peers:
                raise UnknownModel(f"model {model!r} has no peer with a weight above 0")
            chosen = peers[self._choose([float(r.weight) for r in peers])]
            others = sorted((r for r in peers if r is not chosen), key=lambda r: -r.weight)
            return Route(registered.name, self._providers[chosen.provider],
                         f"registered model, peer {chosen.provider} by weight {chosen.weight}",
                         tuple(self._providers[r.provider] for r in others),
                         tuple((r.provider, r.model) for r in peers if r.model))
        for prefix, family in _PREFIXES:
            if model.startswith(prefix):
                provider = next((p for p in self._providers.values() if p.type == family), None)
                if provider is not None:
                    return Route(model, provider, f"prefix {prefix!r} -> {family} provider {provider.name}")
        raise UnknownModel(f"the model {model!r} does not exist or is not routed by this gateway")


def _weighted(weights: list[float]) -> int:
    return random.choices(range(len(weights)), weights=weights)[0]  # noqa: S311 - load spreading, not security
