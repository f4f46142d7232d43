"""Invariants over random request sequences: never more than the limit in any window, and the in-process
and Redis adapters decide identically."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from broker.kernel.quota.adapters.memory import MemoryCounters
from broker.kernel.quota.adapters.redis import RedisCounters, quota_redis
from broker.kernel.quota.engine import QuotaEngine, QuotaPolicy, ThresholdCrossed
from broker.kernel.quota.errors import QuotaExceeded
from broker.kernel.quota.models import BUCKETS, WINDOW_SECONDS, QuotaRequest, Rule, Subject
from broker.kernel.quota.ports import CounterStore
from broker.kernel.quota.rulebook import RuleBook
from tests.conftest import REDIS_URL, FakeClock

SUBJECTS = (Subject("user", "u1"), Subject("user", "u2"))

steps = st.lists(
    st.tuples(st.floats(min_value=0, max_value=20, allow_nan=False), st.sampled_from([0, 1])),
    min_size=1, max_size=120,
)


async def ignore(alert: ThresholdCrossed) -> None:
    return None


def engine(store: CounterStore, clock: FakeClock, rules: list[Rule]) -> QuotaEngine:
    return QuotaEngine(store, RuleBook(rules), clock, QuotaPolicy(), CollectorRegistry(), ignore)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=steps, limit=st.integers(min_value=1, max_value=8), window=st.sampled_from(["1m", "5m"]))
async def test_never_more_than_the_limit_and_both_adapters_agree(sequence: list[tuple[float, int]], limit: int,
                                                                window: str) -> None:
    rules = [Rule(uuid.uuid4().hex, "user", "*", "requests", limit, window=window)]  # type: ignore[arg-type]
    clock = FakeClock(1_800_000_000.0)
    client = quota_redis(REDIS_URL, 1.0)
    try:
        memory = engine(MemoryCounters(), clock, rules)
        redis = engine(RedisCounters(client, 1.0, prefix=f"prop:{uuid.uuid4().hex}:"), clock, rules)
        bucket_seconds = WINDOW_SECONDS[window] / BUCKETS
        admitted: dict[int, list[int]] = {0: [], 1: []}
        for gap, who in sequence:
            clock.advance(gap)
            request = QuotaRequest("ai", (SUBJECTS[who],))
            decisions = []
            for eng in (memory, redis):
                try:
                    await eng.admit(request)
                    decisions.append(True)
                except QuotaExceeded:
                    decisions.append(False)
            assert decisions[0] == decisions[1]
            if decisions[0]:
                bucket = int(clock.now() // bucket_seconds)
                admitted[who].append(bucket)
                in_window = [b for b in admitted[who] if b > bucket - BUCKETS]
                assert len(in_window) <= limit
    finally:
        await client.aclose()
