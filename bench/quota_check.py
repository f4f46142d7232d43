"""Micro-benchmark of the quota hot path: admit (check + count) and charge, 4 subjects x 3 rules each.

In-process: sequential calls, microseconds per request. Redis: one Lua round trip per admit and per
charge; measured sequentially (latency) and with 64 requests in flight (throughput).

    .venv/bin/python bench/quota_check.py [--requests N]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import anyio
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker.kernel.clock import SystemClock
from broker.kernel.quota.adapters.memory import MemoryCounters
from broker.kernel.quota.adapters.redis import RedisCounters, quota_redis
from broker.kernel.quota.engine import QuotaEngine, QuotaPolicy, ThresholdCrossed
from broker.kernel.quota.models import QuotaRequest, Rule, Subject, Usage
from broker.kernel.quota.ports import CounterStore
from broker.kernel.quota.rulebook import RuleBook

SUBJECTS = (Subject("api_key", "k1"), Subject("user", "u1"), Subject("team", "t1"), Subject("provider", "openai"))


def rules() -> list[Rule]:
    made = []
    for subject in SUBJECTS:
        made += [
            Rule(uuid.uuid4().hex, subject.kind, "*", "requests", 1e12, window="1m"),
            Rule(uuid.uuid4().hex, subject.kind, "*", "tokens", 1e15, window="1h"),
            Rule(uuid.uuid4().hex, subject.kind, "*", "usd", 1e12, period="monthly"),
        ]
    return made


async def ignore(alert: ThresholdCrossed) -> None:
    return None


def engine(store: CounterStore) -> QuotaEngine:
    return QuotaEngine(store, RuleBook(rules()), SystemClock(), QuotaPolicy(), CollectorRegistry(), ignore)


REQUEST = QuotaRequest("ai", SUBJECTS)
USAGE = Usage(100, 200, 300.0, 0.001)


async def sequential(eng: QuotaEngine, count: int) -> tuple[float, float]:
    started = time.perf_counter()
    for _ in range(count):
        await eng.admit(REQUEST)
    admit = (time.perf_counter() - started) / count
    started = time.perf_counter()
    for _ in range(count):
        await eng.charge("ai", SUBJECTS, USAGE)
    return admit, (time.perf_counter() - started) / count


async def concurrent(eng: QuotaEngine, count: int, in_flight: int = 64) -> float:
    limiter = anyio.Semaphore(in_flight)

    async def one() -> None:
        async with limiter:
            await eng.admit(REQUEST)
            await eng.charge("ai", SUBJECTS, USAGE)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return count / (time.perf_counter() - started)


async def main(count: int) -> None:
    memory = engine(MemoryCounters())
    await sequential(memory, 1000)  # warm up
    admit, charge = await sequential(memory, count)
    print(f"in-process: admit {admit * 1e6:.1f} us, charge {charge * 1e6:.1f} us,"
          f" admit+charge {(admit + charge) * 1e6:.1f} us per request (12 rules)")
    client = quota_redis("redis://127.0.0.1:6379/0", 1.0)
    try:
        redis = engine(RedisCounters(client, 1.0, prefix=f"bench:{uuid.uuid4().hex}:"))
        await sequential(redis, 200)
        admit, charge = await sequential(redis, count // 10)
        print(f"redis: admit {admit * 1e6:.0f} us, charge {charge * 1e6:.0f} us per request"
              f" (one round trip each), {await concurrent(redis, count // 5):.0f} admit+charge/s with 64 in flight")
    finally:
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    anyio.run(main, parser.parse_args().requests)
