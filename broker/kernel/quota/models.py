"""Quota values: subjects, rules, and the requests and charges checked against them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

SubjectKind = Literal["api_key", "user", "team", "provider", "model", "mcp_server", "tool"]
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("api_key", "user", "team", "provider", "model", "mcp_server", "tool")
Metric = Literal["requests", "tokens", "usd"]
Surface = Literal["ai", "mcp"]
RuleSurface = Literal["ai", "mcp", "both"]
Window = Literal["1m", "5m", "1h", "5h", "1d", "1w"]
Period = Literal["daily", "weekly", "monthly"]

WINDOW_SECONDS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600, "5h": 18000, "1d": 86400, "1w": 604800}
BUCKETS = 60
ANY = "*"  # a rule on ``user:*`` applies to every user, counted per user


@dataclass(frozen=True, slots=True)
class Subject:
    """Something usage is counted against: an API key, a user, a team, a provider, a model, a server, a tool."""

    kind: SubjectKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class Rule:
    """A limit on one subject (or every subject of a kind): a sliding window or a calendar budget."""

    id: str
    subject_kind: SubjectKind
    subject_id: str
    metric: Metric
    limit: float
    window: Window | None = None
    period: Period | None = None
    surface: RuleSurface = "both"
    enabled: bool = True
    precheck: bool = False  # refuse up front when the pre-call estimate cannot fit what is left

    @property
    def is_budget(self) -> bool:
        return self.period is not None

    @property
    def label(self) -> str:
        """How rejections name the rule: ``user:requests/1m``, ``team:usd/monthly``."""
        return f"{self.subject_kind}:{self.metric}/{self.window or self.period}"

    def applies_to(self, subject: Subject, surface: Surface) -> bool:
        return (self.enabled and self.subject_kind == subject.kind
                and self.subject_id in (ANY, subject.id) and self.surface in ("both", surface))


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a call is expected to cost before it runs (prompt tokens + max_tokens at the model's rates)."""

    weighted_tokens: float = 0.0
    usd: float = 0.0

    def of(self, metric: Metric) -> float:
        return self.weighted_tokens if metric == "tokens" else self.usd if metric == "usd" else 0.0


@dataclass(frozen=True, slots=True)
class QuotaRequest:
    """One request about to run: who it is for and on which surface."""

    surface: Surface
    subjects: tuple[Subject, ...]
    estimate: Estimate | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What a finished call used, in the three kinds of numbers kept apart everywhere."""

    raw_input_tokens: int = 0
    raw_output_tokens: int = 0
    weighted_tokens: float = 0.0
    usd: float = 0.0

    def of(self, metric: Metric) -> float:
        return self.weighted_tokens if metric == "tokens" else self.usd if metric == "usd" else 0.0


@dataclass(frozen=True, slots=True)
class Counted:
    """One (rule, subject) pair checked for a request, with the usage it saw."""

    rule: Rule
    subject: Subject
    used: float
    resets_in: float

    @property
    def remaining(self) -> float:
        return max(self.rule.limit - self.used, 0.0)


class Admission:
    """The outcome of an admitted request: the counters it touched (built only when asked for, as headers
    and usage views need them but the hot path does not)."""

    __slots__ = ("_bindings", "_checks", "_now", "_used", "fail_open")

    def __init__(self, bindings: Sequence[Any] = (), checks: Sequence[Any] = (), used: Sequence[float] = (),
                 now: float = 0.0, fail_open: bool = False) -> None:
        self._bindings, self._checks, self._used, self._now = bindings, checks, used, now
        self.fail_open = fail_open

    @property
    def counted(self) -> tuple[Counted, ...]:
        return tuple(
            Counted(b.rule, b.subject, used + c.cost, c.slot.ends_at - self._now)
            for b, c, used in zip(self._bindings, self._checks, self._used, strict=True)
        )

    def tightest(self) -> Counted | None:
        """The pair closest to its limit (what ``x-ratelimit-*`` headers report)."""
        return min(self.counted, key=lambda c: c.remaining / c.rule.limit if c.rule.limit else 0.0, default=None)


class BudgetMove(NamedTuple):
    """A budget counter before and after a charge (alerts are derived from it)."""

    rule: Rule
    subject: Subject
    period_key: str
    before: float
    after: float
