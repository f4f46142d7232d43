from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from broker.kernel.quota.adapters.memory import MemoryCounters
from broker.kernel.quota.adapters.redis import RedisCounters, quota_redis
from broker.kernel.quota.engine import QuotaEngine, QuotaPolicy, ThresholdCrossed
from broker.kernel.quota.models import Rule
from broker.kernel.quota.ports import CounterStore
from broker.kernel.quota.rulebook import RuleBook
from tests.conftest import REDIS_URL, FakeClock

# Generous: these tests check what the engine counts, not how fast (the failure tests set their own short
# timeouts); under a loaded full run, 120 concurrent admissions took longer than 0.5 s and failed closed.
TIMEOUT = 5.0


def redis_counters(client: Redis, timeout: float = TIMEOUT) -> RedisCounters:
    return RedisCounters(client, timeout, prefix=f"test:{uuid.uuid4().hex}:")


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    client = quota_redis(REDIS_URL, TIMEOUT)
    try:
        yield redis_counters(client)
    finally:
        await client.aclose()


class Harness:
    """An engine over a store, with a hand-moved clock and the alerts it fired."""

    def __init__(self, store: CounterStore, clock: FakeClock, policy: QuotaPolicy | None = None) -> None:
        self.clock = clock
        self.alerts: list[ThresholdCrossed] = []
        self.engine = QuotaEngine(store, RuleBook(), clock, policy or QuotaPolicy(), CollectorRegistry(),
                                  self._record)

    async def _record(self, alert: ThresholdCrossed) -> None:
        self.alerts.append(alert)

    def rules(self, *rules: Rule) -> Harness:
        self.engine.rules.replace(list(rules))
        return self


@pytest.fixture
def harness(store: CounterStore, clock: FakeClock) -> Harness:
    return Harness(store, clock)
