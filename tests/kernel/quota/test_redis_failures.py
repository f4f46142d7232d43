"""The Redis adapter when Redis is down, blackholed or comes back; and two instances sharing one Redis."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import anyio
import pytest
from prometheus_client import CollectorRegistry

from broker.kernel.quota.adapters.redis import RedisCounters, quota_redis
from broker.kernel.quota.engine import QuotaEngine, QuotaPolicy, ThresholdCrossed
from broker.kernel.quota.errors import LimiterUnavailable, QuotaExceeded
from broker.kernel.quota.models import QuotaRequest, Rule, Subject, Usage
from broker.kernel.quota.rulebook import RuleBook
from tests.conftest import REDIS_URL, FakeClock
from tests.interaction.process import free_port, wait_until
from tests.services import answers

TIMEOUT = 0.05
RULE = Rule("r", "user", "*", "requests", 100, window="1m")
REQUEST = QuotaRequest("ai", (Subject("user", "u1"),))


async def ignore(alert: ThresholdCrossed) -> None:
    return None


def make_engine(url: str, fail_mode: str = "open", rule: Rule = RULE) -> tuple[QuotaEngine, object]:
    client = quota_redis(url, TIMEOUT)
    store = RedisCounters(client, TIMEOUT, prefix=f"fail:{time.time_ns()}:")
    engine = QuotaEngine(store, RuleBook([rule]), FakeClock(), QuotaPolicy(fail_mode=fail_mode),
                         CollectorRegistry(), ignore)
    return engine, client


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        server.close()


@pytest.fixture
def own_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A private redis-server this test may stop and start."""
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    yield port, processes
    for process in processes:
        process.terminate()
        process.wait(5)


def start_redis(port: int, processes: list[subprocess.Popen[bytes]]) -> None:
    processes.append(subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
    assert wait_until(lambda: answers(("127.0.0.1", port)), 10)


@pytest.mark.parametrize("target", ["closed", "blackhole"])
async def test_fail_open_answers_within_the_timeout_and_counts(target: str, blackhole: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0" if target == "closed" else blackhole
    engine, client = make_engine(url)
    try:
        for _ in range(20):
            started = time.perf_counter()
            admission = await engine.admit(REQUEST)
            assert admission.fail_open
            assert time.perf_counter() - started < TIMEOUT + 0.1
        assert engine.fail_open_total._value.get() == 20
        assert await engine.charge("ai", REQUEST.subjects, Usage(usd=1.0))  # no usd rule: nothing to count
    finally:
        await client.aclose()  # type: ignore[attr-defined]


async def test_fail_closed_refuses_with_rate_limiter_unavailable(blackhole: str) -> None:
    engine, client = make_engine(blackhole, fail_mode="closed")
    try:
        with pytest.raises(LimiterUnavailable) as caught:
            await engine.admit(REQUEST)
        assert caught.value.status == 429 and caught.value.code == "rate_limiter_unavailable"
    finally:
        await client.aclose()  # type: ignore[attr-defined]


async def test_limits_resume_within_seconds_when_redis_comes_back(
        own_redis: tuple[int, list[subprocess.Popen[bytes]]]) -> None:
    port, processes = own_redis
    engine, client = make_engine(f"redis://127.0.0.1:{port}/0", fail_mode="closed",
                                 rule=Rule("r", "user", "*", "requests", 1, window="1m"))
    try:
        with pytest.raises(LimiterUnavailable):
            await engine.admit(REQUEST)
        start_redis(port, processes)
        async with anyio.create_task_group() as group:
            group.start_soon(engine.watch_store, 0.1)
            with anyio.fail_after(5):
                while True:
                    try:
                        await engine.admit(REQUEST)
                        break
                    except LimiterUnavailable:
                        await anyio.sleep(0.05)
            with pytest.raises(QuotaExceeded):
                await engine.admit(REQUEST)  # the limit of 1 is enforced again
            group.cancel_scope.cancel()
    finally:
        await client.aclose()  # type: ignore[attr-defined]


async def test_two_instances_with_200_concurrent_requests_each_admit_exactly_100() -> None:
    rule = Rule(f"c{time.time_ns()}", "user", "*", "requests", 100, window="1m")
    prefix = f"conc:{time.time_ns()}:"
    engines, clients = [], []
    for _ in range(2):
        # Exactness is the point here, not latency: 400 admissions at once on a loaded two-core machine can take
        # longer than the production timeout, which would fail them closed (and this test) for the wrong reason.
        client = quota_redis(REDIS_URL, 5.0)
        clients.append(client)
        engines.append(QuotaEngine(RedisCounters(client, 5.0, prefix=prefix), RuleBook([rule]), FakeClock(),
                                   QuotaPolicy(fail_mode="closed"), CollectorRegistry(), ignore))
    admitted = 0

    async def one(engine: QuotaEngine) -> None:
        nonlocal admitted
        try:
            await engine.admit(REQUEST)
            admitted += 1
        except QuotaExceeded:
            pass

    try:
        async with anyio.create_task_group() as group:
            for _ in range(200):
                for engine in engines:
                    group.start_soon(one, engine)
        assert admitted == 100
    finally:
        for client in clients:
            await client.aclose()
