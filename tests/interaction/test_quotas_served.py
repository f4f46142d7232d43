"""Quotas through real ``warden serve`` processes: two instances sharing one limit, and a Redis outage."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import yaml

from tests.conftest import REDIS_URL
from tests.connections.conftest import console_session, first_admin
from tests.interaction.process import WardenProcess, base_env, free_port, shared_secrets, wait_until

SECRET = "wdn_" + "Q" * 43


def config_file(tmp_path: Path, limit: int, fail_mode: str = "open", timeout_ms: int = 50) -> Path:
    path = tmp_path / "warden.yaml"
    path.write_text(yaml.safe_dump({
        "api_keys": [{"name": "load", "owner": "load@example.com", "secret": SECRET, "surfaces": ["ai"]}],
        "quotas": {"fail_mode": fail_mode, "redis_timeout_ms": timeout_ms, "rules": [
            {"subject": "api_key:*", "metric": "requests", "window": "1m", "limit": limit, "surface": "ai"}]},
    }))
    return path


async def test_two_instances_with_200_concurrent_requests_each_admit_exactly_100(tmp_path: Path,
                                                                                postgres_url: str) -> None:
    secrets = shared_secrets()
    # 400 requests at once saturate both event loops on this 2-core machine: a 50 ms deadline would expire
    # from scheduling lag alone. Fail closed with a deadline above that lag, so any store trouble shows up
    # as rate_limiter_unavailable instead of as extra admissions.
    config = config_file(tmp_path, 100, fail_mode="closed", timeout_ms=2000)
    envs = [base_env(tmp_path / n, postgres_url, WARDEN_REDIS_URL=REDIS_URL, WARDEN_CONFIG=str(config),
                     WARDEN_SERVER_LOG_LEVEL="warning", **secrets)
            for n in ("a", "b")]
    # Keys left by an earlier run in the shared Redis must not count: the rule id is derived from the rule,
    # so flush this rule's counters first.
    with WardenProcess(envs[0], tmp_path / "a.log") as a, WardenProcess(envs[1], tmp_path / "b.log") as b:
        await _flush_quota_counters()
        statuses: list[int] = []
        codes: list[str] = []
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=30,
                                     headers={"authorization": f"Bearer {SECRET}"}) as client:
            async def one(base: str) -> None:
                response = await client.get(base + "/v1/models")
                statuses.append(response.status_code)
                if response.status_code == 429:
                    codes.append(response.json()["error"]["code"])

            async with anyio.create_task_group() as group:
                for _ in range(200):
                    group.start_soon(one, a.gateway)
                    group.start_soon(one, b.gateway)
        assert statuses.count(200) == 100 and statuses.count(429) == 300
        assert set(codes) == {"rate_limited"}


async def _flush_quota_counters() -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter("warden:quota:w:cfg_*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def private_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    yield port, processes
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(5)


def start_redis(port: int, processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL)
    processes.append(process)
    assert wait_until(lambda: _redis_answers(port), 10)
    return process


def _redis_answers(port: int) -> bool:
    try:
        return subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, timeout=2,
                              check=False).stdout.strip() == b"PONG"
    except subprocess.TimeoutExpired:
        return False


@pytest.mark.parametrize(("fail_mode", "changed_to", "while_down"),
                         [("open", None, 200), ("closed", None, 429), ("open", "closed", 429)])
def test_redis_outage_follows_the_fail_mode_and_recovers(tmp_path: Path, private_redis: tuple[int, list[
        subprocess.Popen[bytes]]], fail_mode: str, changed_to: str | None, while_down: int) -> None:
    """The fail mode of the configuration file, or the one the console changed it to while Warden ran."""
    port, processes = private_redis
    redis = start_redis(port, processes)
    env = base_env(tmp_path / "data", "", WARDEN_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                   WARDEN_CONFIG=str(config_file(tmp_path, 1000, fail_mode)), WARDEN_METRICS_TOKEN="scrape-" + "q" * 20)
    del env["WARDEN_DATABASE_URL"]
    auth = {"authorization": f"Bearer {SECRET}"}
    with WardenProcess(env, tmp_path / "warden.log") as warden:
        assert httpx.get(warden.gateway + "/v1/models", headers=auth).status_code == 200
        if changed_to is not None:
            first_admin(warden, "admin@example.com")
            with console_session(warden, "admin@example.com") as console:
                assert console.put("/api/settings/quotas", json={"fail_mode": changed_to}).status_code == 200
        redis.terminate()
        redis.wait(5)
        for _ in range(5):
            response = httpx.get(warden.gateway + "/v1/models", headers=auth, timeout=5)
            assert response.status_code == while_down
            assert response.elapsed.total_seconds() < 0.5
        if while_down == 429:
            assert response.json()["error"]["code"] == "rate_limiter_unavailable"
        else:
            metrics = httpx.get(warden.gateway + "/metrics",
                                headers={"authorization": "Bearer scrape-" + "q" * 20}).text
            assert "quota_fail_open_total 5.0" in metrics
        start_redis(port, processes)
        assert wait_until(lambda: "x-ratelimit-limit" in httpx.get(warden.gateway + "/v1/models",
                                                                    headers=auth).headers, 10, 0.2)
