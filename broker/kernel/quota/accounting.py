"""The three kinds of token numbers: raw provider tokens (analytics), weighted tokens (quotas) and USD.

Weighted tokens are raw tokens times the model's input/output multipliers (default 1.0); USD is raw
tokens times the model's prices. A model without configured rates weighs 1.0 and costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.kernel.quota.models import Estimate, Usage

PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelRates:
    """How one model's tokens are weighed and priced."""

    input_weight: float = 1.0
    output_weight: float = 1.0
    input_usd_per_million: float = 0.0
    output_usd_per_million: float = 0.0

    def usage(self, input_tokens: int, output_tokens: int) -> Usage:
        return Usage(
            raw_input_tokens=input_tokens,
            raw_output_tokens=output_tokens,
            weighted_tokens=input_tokens * self.input_weight + output_tokens * self.output_weight,
            usd=(input_tokens * self.input_usd_per_million + output_tokens * self.output_usd_per_million)
            / PER_MILLION,
        )

    def estimate(self, prompt_tokens: int, max_tokens: int) -> Estimate:
        """The most a call can cost: its prompt plus ``max_tokens`` of output."""
        usage = self.usage(prompt_tokens, max_tokens)
        return Estimate(weighted_tokens=usage.weighted_tokens, usd=usage.usd)


class TokenAccounting:
    """Turns raw token counts into usage, and a request's size into a pre-call estimate."""

    def __init__(self, rates: dict[str, ModelRates]) -> None:
        self._rates = rates
        self._default = ModelRates()

    def usage(self, model: str, input_tokens: int, output_tokens: int) -> Usage:
        return self._rates.get(model, self._default).usage(input_tokens, output_tokens)

    def estimate(self, model: str, prompt_tokens: int, max_tokens: int) -> Estimate:
        """The most a call can cost: its prompt plus ``max_tokens`` of output, at the model's rates."""
        return self._rates.get(model, self._default).estimate(prompt_tokens, max_tokens)
