"""What the fake providers share: the canned answer, the usage they report, and what they received."""

from __future__ import annotations

from typing import Any

received: list[dict[str, Any]] = []  # request bodies, in arrival order, whichever fake got them
abandoned: list[str] = []  # streams whose reader went away before the end
failing_calls: list[str] = []  # requests to the always-failing endpoint
traceparents: list[str] = []  # the traceparent header of each chat completion request ("" when absent)
TEXT = ["Hello", " from", " the", " fake", " provider", "."]
INPUT_TOKENS, OUTPUT_TOKENS = 21, 6
CITY = {"city": "Paris"}  # the arguments of every tool call the fakes make
