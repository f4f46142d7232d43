"""Model routing: registered peers by weight (statistically, over 1,000 requests), prefixes to provider
families, fallbacks in weight order, unknown names refused."""

from __future__ import annotations

from collections import Counter

import pytest

from ai_proxy.routing import ModelRouter, UnknownModel
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
