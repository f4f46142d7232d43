"""Token counts as providers report them: a Chat Completions ``usage`` object (an answer's, or a stream's usage
chunk), and any one count."""

from __future__ import annotations

from typing import Any

# No answer is this long. Beyond it a count is not one: it would overflow the store's 64-bit columns (a row
# PostgreSQL refuses, a batch ClickHouse's client cannot encode) and make a user's budget meaningless.
MAX_TOKENS = 1 << 53


def count(value: Any) -> int:
    """A token count a provider reported; 0 for one it left out or that is not a count (a whole number from 0
    to MAX_TOKENS): a text, a fraction, a negative or absurd number. Never raises: the answer is passed on
    regardless, only its usage is unknown."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if type(value) is int and 0 <= value <= MAX_TOKENS else 0


def tokens(usage: dict[str, Any]) -> tuple[int, int]:
    """Prompt (input) and completion (output) tokens; 0 where the provider left one out."""
    return count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
