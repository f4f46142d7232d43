"""What the AI proxy exports to Prometheus: time to first token, tokens and cost per provider and model, and
each provider's circuit state (read when scraped, so no request pays for it)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class AiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._ttft = Histogram(
            "warden_ai_time_to_first_token_seconds", "From the request's arrival to the provider's first byte",
            ["provider", "model"], registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
        )
        self._tokens = Counter("warden_ai_tokens", "Tokens used, as the provider reported them (or estimated)",
                               ["provider", "model", "kind"], registry=registry)
        self._cost = Counter("warden_ai_cost_usd", "Cost of the tokens used, at the model's prices",
                             ["provider", "model"], registry=registry)
        self._children: dict[tuple[str, str], tuple[Histogram, Counter, Counter, Counter]] = {}

    def record(self, provider: str, model: str, ttft: float | None, input_tokens: int, output_tokens: int,
               usd: float) -> None:
        children = self._children.get((provider, model))
        if children is None:  # labels() looked up once per pair: models and providers are few
            children = self._children[(provider, model)] = (
                self._ttft.labels(provider, model), self._tokens.labels(provider, model, "input"),
                self._tokens.labels(provider, model, "output"), self._cost.labels(provider, model))
        ttft_seconds, inputs, outputs, cost = children
        if ttft is not None:
            ttft_seconds.observe(ttft)
        if input_tokens:
            inputs.inc(input_tokens)
        if output_tokens:
            outputs.inc(output_tokens)
        if usd:
            cost.inc(usd)
