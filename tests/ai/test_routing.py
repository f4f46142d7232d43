"""Model routing: registered peers by weight (statistically, over 1,000 requests) or automatically (latency, cost,
balanced), the kill switch, prefixes to provider
families, fallbacks in weight order, unknown names refused."""

from __future__ import annotations

from collections import Counter

import pytest

from ai_proxy.routing import ModelDisabled, ModelRouter, UnknownModel
from broker.config import ModelConfig, ProviderConfig, RouteConfig

PROVIDERS = (ProviderConfig(name="a", type="openai_compatible", base_url="http://a.example/v1"),
             ProviderConfig(name="b", type="openai_compatible", base_url="http://b.example/v1"),
             ProviderConfig(name="c", type="openai_compatible", base_url="http://c.example/v1"),
             ProviderConfig(name="oa", type="openai"), ProviderConfig(name="an", type="anthropic"))


def router(*routes: tuple[str, int]) -> ModelRouter:
    return ModelRouter(PROVIDERS, (ModelConfig(name="house", routes=tuple(
        RouteConfig(provider=p, weight=w) for p, w in routes)),))


def test_weights_are_respected_over_a_thousand_requests() -> None:
    chosen = Counter(router(("a", 3), ("b", 1)).route("house").provider.name for _ in range(1000))
    # 750 expected for "a"; five standard deviations (about 14 each) either side.
    assert 680 <= chosen["a"] <= 820 and chosen["a"] + chosen["b"] == 1000


def test_a_zero_weight_takes_a_peer_out_and_fallbacks_follow_weight_order() -> None:
    route = router(("a", 0), ("b", 1), ("c", 5)).route("house")
    assert {route.provider.name, *(p.name for p in route.fallbacks)} == {"b", "c"}
    if route.provider.name == "b":
        assert [p.name for p in route.fallbacks] == ["c"]


def test_prefixes_go_to_their_family_and_unknown_names_are_refused() -> None:
    models = router(("a", 1))
    assert models.route("gpt-4o").provider.name == "oa"
    assert models.route("o3-mini").provider.name == "oa"
    assert models.route("claude-sonnet-4").provider.name == "an"
    with pytest.raises(UnknownModel):
        models.route("gemini-2.0-flash")  # no gemini provider configured
    with pytest.raises(UnknownModel):
        models.route("llama-3")


def auto(mode: str, chance: float = 1.0, **prices: tuple[float, float]) -> ModelRouter:
    """A model on peers a, b and c routed by ``mode``; ``prices`` per peer (input, output per million)."""
    routes = tuple(RouteConfig(provider=p, input_price_per_million=prices.get(p, (1.0, 1.0))[0],
                               output_price_per_million=prices.get(p, (1.0, 1.0))[1]) for p in ("a", "b", "c"))
    return ModelRouter(PROVIDERS, (ModelConfig(name="house", aliases=("home",), routes=routes, routing=mode),),
                       chance=lambda: chance)  # type: ignore[arg-type]


def test_latency_mode_measures_every_peer_then_keeps_to_the_fastest() -> None:
    models = auto("latency")
    seen = []
    for seconds in (0.30, 0.10, 0.20):  # each peer, unmeasured, comes first in turn
        peer = models.route("house").provider.name
        seen.append(peer)
        models.observe(peer, "house", seconds)
    assert sorted(seen) == ["a", "b", "c"]
    fastest = {0.30: seen[0], 0.10: seen[1], 0.20: seen[2]}[0.10]
    route = models.route("house")
    assert route.provider.name == fastest and "latency 100.0 ms" in route.reason and route.reason.startswith("auto")
    assert [p.name for p in route.fallbacks] == [seen[2], seen[0]]  # by latency, for failover
    for _ in range(10):  # the fastest slows down: its moving average overtakes the next one
        models.observe(fastest, "house", 1.0)
    assert models.route("house").provider.name == seen[2]


def test_cost_mode_takes_the_cheapest_peer_and_charges_its_prices() -> None:
    route = auto("cost", a=(3.0, 15.0), b=(0.5, 1.5), c=(1.0, 2.0)).route("home")  # by alias
    assert route.model == "house" and route.provider.name == "b"
    assert [p.name for p in route.fallbacks] == ["c", "a"]
    assert route.rates_at(route.provider).usage(1_000_000, 1_000_000).usd == pytest.approx(2.0)
    assert route.rates_at(route.fallbacks[1]).usage(1_000_000, 0).usd == pytest.approx(3.0)


def test_balanced_mode_weighs_latency_and_cost_alike() -> None:
    models = auto("balanced", a=(1.0, 1.0), b=(10.0, 10.0), c=(1.0, 1.0))
    for peer, seconds in (("a", 1.0), ("b", 0.1), ("c", 0.9)):
        models.observe(peer, "house", seconds)
    # Halves of latency and price, each over the highest: a 0.5 + 0.05, b 0.05 + 0.5, c 0.45 + 0.05.
    assert models.route("house").provider.name == "c"


def test_auto_modes_explore_a_share_of_requests() -> None:
    models = auto("cost", chance=0.0, a=(0.1, 0.1))
    route = models.route("house")
    assert route.provider.name in ("b", "c") and "exploring" in route.reason


def test_a_switched_off_model_is_refused_and_not_listed() -> None:
    models = ModelRouter(PROVIDERS, (ModelConfig(name="house", routes=(RouteConfig(provider="a"),), enabled=False),
                                     ModelConfig(name="open", routes=(RouteConfig(provider="b"),))))
    with pytest.raises(ModelDisabled):
        models.route("house")
    assert [m.name for m in models.models()] == ["open"]
    models.replace(PROVIDERS, (ModelConfig(name="house", routes=(RouteConfig(provider="a"),)),))
    assert models.route("house").provider.name == "a"  # switched back on: at once
