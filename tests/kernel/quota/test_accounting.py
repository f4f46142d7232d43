from __future__ import annotations

import pytest

from broker.kernel.quota.accounting import ModelRates, TokenAccounting

ACCOUNTING = TokenAccounting({"big": ModelRates(2.0, 4.0, 3.0, 15.0)})


def test_raw_weighted_and_usd_are_kept_apart() -> None:
    usage = ACCOUNTING.usage("big", 1000, 500)
    assert (usage.raw_input_tokens, usage.raw_output_tokens) == (1000, 500)
    assert usage.weighted_tokens == 1000 * 2.0 + 500 * 4.0
    assert usage.usd == pytest.approx((1000 * 3.0 + 500 * 15.0) / 1_000_000)


def test_unknown_model_weighs_one_and_costs_nothing() -> None:
    usage = ACCOUNTING.usage("other", 10, 20)
    assert usage.weighted_tokens == 30 and usage.usd == 0


def test_estimate_counts_prompt_plus_max_tokens() -> None:
    estimate = ACCOUNTING.estimate("big", 100, 1000)
    assert estimate.weighted_tokens == 100 * 2.0 + 1000 * 4.0
    assert estimate.usd == pytest.approx((100 * 3.0 + 1000 * 15.0) / 1_000_000)
