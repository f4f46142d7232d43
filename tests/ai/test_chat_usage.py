"""Token counts as providers report them: a count that is not one (a text, a fraction, a negative or absurd
number) is taken as unreported, never raised on and never stored. An absurd count used to be charged to budgets
as it was, and audited as it was: a row PostgreSQL refuses, a batch ClickHouse's client cannot encode (its
channel retried it until it gave the channel's oldest events up)."""

from __future__ import annotations

from typing import Any

import pytest

from ai_proxy.chat_usage import MAX_TOKENS, count, tokens
from ai_proxy.providers import bedrock, gemini
from ai_proxy.providers.anthropic import input_tokens_of

COUNTS: list[tuple[Any, int]] = [
    (12, 12), (0, 0), (12.0, 12), (MAX_TOKENS, MAX_TOKENS), (None, 0),
    (MAX_TOKENS + 1, 0), (1 << 63, 0), (1e300, 0), (-3, 0), (2.5, 0), (float("nan"), 0), (float("inf"), 0),
    ("12", 0), ("many", 0), (True, 0), ([12], 0), ({"n": 12}, 0),
]


@pytest.mark.parametrize(("reported", "counted"), COUNTS)
def test_a_count_is_a_whole_number_within_bounds_or_none(reported: Any, counted: int) -> None:
    assert count(reported) == counted and type(count(reported)) is int


@pytest.mark.parametrize(("reported", "counted"), COUNTS)
def test_every_provider_familys_usage_takes_counts_alike(reported: Any, counted: int) -> None:
    assert tokens({"prompt_tokens": reported, "completion_tokens": 7}) == (counted, 7)
    assert input_tokens_of({"input_tokens": reported, "cache_read_input_tokens": 2}) == counted + 2
    assert bedrock.usage_of({"inputTokens": 5, "cacheReadInputTokens": reported, "outputTokens": reported}) == \
        (5 + counted, counted)
    assert gemini.usage_of({"usageMetadata": {"promptTokenCount": reported, "candidatesTokenCount": 3}}) == \
        (counted, 3)
