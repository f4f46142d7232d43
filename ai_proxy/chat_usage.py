"""The token counts in a Chat Completions ``usage`` object (an answer's, or a stream's usage chunk)."""

from __future__ import annotations

from typing import Any


def tokens(usage: dict[str, Any]) -> tuple[int, int]:
    """Prompt (input) and completion (output) tokens; 0 where the provider left one out."""
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
