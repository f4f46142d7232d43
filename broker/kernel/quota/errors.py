"""Errors of the quota kernel.

QuotaError
├── QuotaExceeded          429  a rule refused the request; carries the rule label, limit and retry-after
├── LimiterUnavailable     429  the counter store failed and the policy is fail-closed
└── CounterStoreDown       (internal) the adapter could not reach its store within the deadline
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.kernel.errors import WardenError

JSONRPC_RATE_LIMITED = -32029  # server-defined range (JSON-RPC 2.0 §5.1); same data as the HTTP 429 body


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which rule refused, for the wire: ``user:requests/1m``, its limit, and when to retry."""

    rule: str
    limit: float
    used: float
    retry_after: int


class QuotaExceeded(WardenError):
    status = 429
    code = "rate_limited"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"quota rule {refusal.rule} refused the request (limit {refusal.limit:g})")
        self.refusal = refusal

        self.retry_after: int | None = refusal.retry_after

    def details(self) -> dict[str, object]:
        r = self.refusal
        return {"rule": r.rule, "limit": r.limit, "used": r.used, "retry_after": r.retry_after}

    def jsonrpc_error(self) -> dict[str, object]:
        return {"code": JSONRPC_RATE_LIMITED, "message": self.message, "data": {"code": self.code, **self.details()}}


class LimiterUnavailable(WardenError):
    status = 429
    code = "rate_limiter_unavailable"
    retry_after: int | None = 1

    def details(self) -> dict[str, object]:
        return {"retry_after": self.retry_after}

    def jsonrpc_error(self) -> dict[str, object]:
        return {"code": JSONRPC_RATE_LIMITED, "message": self.message, "data": {"code": self.code}}


class CounterStoreDown(Exception):
    """The counter store did not answer in time; the engine applies the fail-open/closed policy."""
