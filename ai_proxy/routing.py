"""Which provider serves a requested model.

Models registered (``models``, by name or alias) route to their peers by manual weight, or automatically: to the
peer with the lowest observed latency, the lowest price, or the best balance of both. Each peer may know the
model by its own name (an Azure deployment) and have its own prices. A registered model switched off (its kill
switch) is refused. Any other model name goes by its prefix to the configured provider of that family (``gpt-``,
``o1-``, ``o3-``, ``o4-`` to OpenAI; ``claude-`` to Anthropic; ``gemini-`` to Google). A name that matches
neither is unknown.

The catalogue is replaced as a whole when providers or models change (on every instance); latency is observed
per instance.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.config import ModelConfig, ProviderConfig, RouteConfig
from broker.kernel.quota.accounting import ModelRates

_PREFIXES = (("gpt-", "openai"), ("o1-", "openai"), ("o3-", "openai"), ("o4-", "openai"), ("claude-", "anthropic"),
             ("gemini-", "gemini"))
# Where each provider family answers when its base URL is not configured.
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
                     "gemini": "https://generativelanguage.googleapis.com"}
LATENCY_SMOOTHING = 0.2  # the weight of a new latency observation in a peer's moving average
EXPLORATION = 0.05  # the share of auto-routed requests sent to another peer, to keep their latency current
DEFAULT_RATES = ModelRates()


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
    chosen and why, the other peers to fail over to, in order, and what each peer calls the model and charges."""

    model: str
    provider: Provider
    reason: str
    fallbacks: tuple[Provider, ...] = ()
    upstream_names: tuple[tuple[str, str], ...] = ()  # (provider name, the model's name there) where they differ
    peer_rates: tuple[tuple[str, ModelRates], ...] = ()  # (provider name, its rates for this model)

    @property
    def peers(self) -> tuple[Provider, ...]:
        return (self.provider, *self.fallbacks)

    def model_at(self, provider: Provider) -> str:
        return next((name for peer, name in self.upstream_names if peer == provider.name), self.model)

    def rates_at(self, provider: Provider) -> ModelRates:
        return next((rates for peer, rates in self.peer_rates if peer == provider.name), DEFAULT_RATES)


class UnknownModel(Exception):
    pass


class ModelDisabled(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Catalog:
    providers: dict[str, Provider]
    models: dict[str, _Plan]  # by name and by alias


@dataclass(frozen=True, slots=True)
class _Plan:
    """What routing a registered model needs, worked out once per catalogue (not per request)."""

    model: ModelConfig
    peers: tuple[RouteConfig, ...]  # weight above 0, provider known
    names: tuple[tuple[str, str], ...]
    rates: tuple[tuple[str, ModelRates], ...]
    only: Route | None  # the route, when a weighted model has a single peer

    @classmethod
    def of(cls, model: ModelConfig, providers: dict[str, Provider]) -> _Plan:
        peers = tuple(r for r in model.routes if r.weight > 0 and r.provider in providers)
        names = tuple((r.provider, r.model) for r in peers if r.model)
        rates = tuple((r.provider, rates_of(model, r)) for r in peers)
        only = Route(model.name, providers[peers[0].provider], f"registered model, peer {peers[0].provider} by"
                     f" weight {peers[0].weight}", (), names, rates) \
            if len(peers) == 1 and model.routing == "weighted" else None
        return cls(model, peers, names, rates, only)


class ModelRouter:
    def __init__(self, providers: tuple[ProviderConfig, ...] = (), models: tuple[ModelConfig, ...] = (),
                 choose: Callable[[list[float]], int] | None = None,
                 chance: Callable[[], float] = random.random) -> None:
        self._catalog = _Catalog({}, {})
        self._choose = choose or _weighted
        self._chance = chance
        self._latency: dict[tuple[str, str], float] = {}  # (provider, model) -> moving average, seconds
        self.replace(providers, models)

    def replace(self, providers: tuple[ProviderConfig, ...] | list[ProviderConfig],
                models: tuple[ModelConfig, ...] | list[ModelConfig]) -> None:
        """Route by a new catalogue from now on (requests being routed keep the one they started with)."""
        known = {p.name: Provider.from_config(p) for p in providers}
        plans = [_Plan.of(m, known) for m in models]
        self._catalog = _Catalog(known, {name: plan for plan in plans for name in (plan.model.name,
                                                                                   *plan.model.aliases)})

    def models(self) -> list[ModelConfig]:
        """The registered models that are switched on."""
        return sorted({p.model.name: p.model for p in self._catalog.models.values() if p.model.enabled}.values(),
                      key=lambda m: m.name)

    def observe(self, provider: str, model: str, seconds: float) -> None:
        """A peer's time to first byte for a model, for latency-based routing."""
        key = (provider, model)
        previous = self._latency.get(key)
        self._latency[key] = seconds if previous is None else \
            (1 - LATENCY_SMOOTHING) * previous + LATENCY_SMOOTHING * seconds

    def route(self, model: str) -> Route:
        catalog = self._catalog
        registered = catalog.models.get(model)
        if registered is not None:
            return self._registered(catalog, registered)
        for prefix, family in _PREFIXES:
            if model.startswith(prefix):
                provider = next((p for p in catalog.providers.values() if p.type == family), None)
                if provider is not None:
                    return Route(model, provider, f"prefix {prefix!r} -> {family} provider {provider.name}")
        raise UnknownModel(f"the model {model!r} does not exist or is not routed by this gateway")

    def _registered(self, catalog: _Catalog, plan: _Plan) -> Route:
        registered = plan.model
        if not registered.enabled:
            raise ModelDisabled(f"the model {registered.name!r} is switched off by the gateway's operators")
        if plan.only is not None:
            return plan.only
        peers = list(plan.peers)
        if not peers:
            raise UnknownModel(f"model {registered.name!r} has no peer with a weight above 0")
        if registered.routing == "weighted":
            chosen = peers[self._choose([float(r.weight) for r in peers])]
            ordered = [chosen, *sorted((r for r in peers if r is not chosen), key=lambda r: -r.weight)]
            reason = f"registered model, peer {chosen.provider} by weight {chosen.weight}"
        else:
            scores = self._scores(registered, peers)
            ordered = sorted(peers, key=lambda r: scores[r.provider])
            reason = f"auto ({registered.routing}): peer {ordered[0].provider}, " \
                + _describe(registered, ordered[0], self._latency)
            if len(ordered) > 1 and self._chance() < EXPLORATION:
                ordered.insert(0, ordered.pop(random.randrange(1, len(ordered))))  # noqa: S311
                reason = f"auto ({registered.routing}): exploring peer {ordered[0].provider}"
        return Route(registered.name, catalog.providers[ordered[0].provider], reason,
                     tuple(catalog.providers[r.provider] for r in ordered[1:]), plan.names, plan.rates)

    def _scores(self, model: ModelConfig, peers: list[RouteConfig]) -> dict[str, float]:
        """Lower is better. A peer never measured scores a latency of 0, so that it gets measured."""
        latency = {r.provider: self._latency.get((r.provider, model.name), 0.0) for r in peers}
        cost = {r.provider: _price(model, r) for r in peers}
        if model.routing == "latency":
            return latency
        if model.routing == "cost":
            return cost
        slowest, dearest = max(latency.values()) or 1.0, max(cost.values()) or 1.0
        return {p: 0.5 * latency[p] / slowest + 0.5 * cost[p] / dearest for p in latency}


def rates_of(model: ModelConfig, route: RouteConfig) -> ModelRates:
    """How a peer's tokens for a model are weighed and priced (the peer's prices where it has its own)."""
    return ModelRates(model.input_weight, model.output_weight,
                      _first(route.input_price_per_million, model.input_price_per_million),
                      _first(route.output_price_per_million, model.output_price_per_million))


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


def _price(model: ModelConfig, route: RouteConfig) -> float:
    rates = rates_of(model, route)
    return rates.input_usd_per_million + rates.output_usd_per_million


def _describe(model: ModelConfig, route: RouteConfig, latency: dict[tuple[str, str], float]) -> str:
    measured = latency.get((route.provider, model.name))
    rates = rates_of(model, route)
    return (f"latency {measured * 1000:.1f} ms" if measured is not None else "latency not measured yet") + \
        f", ${rates.input_usd_per_million:g}/${rates.output_usd_per_million:g} per million tokens"


def _weighted(weights: list[float]) -> int:
    return random.choices(range(len(weights)), weights=weights)[0]  # noqa: S311 - load spreading, not security
