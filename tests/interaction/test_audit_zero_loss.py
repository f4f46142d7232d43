"""Nothing lost: Warden killed with SIGKILL in the middle of a load, then started again, holds an audit event for
every request it answered, each exactly once, and none for a request never sent."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.ai.fake_providers import launched
from tests.interaction.process import WardenProcess, base_env

KEY = "wdn_" + "z" * 43
REQUESTS = 10_000
KILL_AFTER = 5_000  # answered requests before the SIGKILL
CONCURRENCY = 32


@pytest.fixture
def provider() -> Iterator[str]:
    with launched() as url:
        yield url


async def drive(gateway: str, warden: WardenProcess) -> set[str]:
    """Send REQUESTS requests, each with its own x-request-id; SIGKILL Warden once KILL_AFTER were answered.
    Returns the ids of the requests Warden answered."""
    answered: set[str] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(REQUESTS):
        queue.put_nowait(n)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            request_id = f"load-{queue.get_nowait()}"
            try:
                async with session.post(gateway + "/v1/chat/completions", json=body, headers={
                        "authorization": f"Bearer {KEY}", "x-request-id": request_id}) as answer:
                    await answer.read()
                    if answer.status == 200:
                        answered.add(request_id)
            except (TimeoutError, aiohttp.ClientError):
                pass  # in flight when Warden died: it may or may not have been audited, never twice
            if len(answered) >= KILL_AFTER and warden.process is not None and warden.process.poll() is None:
                warden.process.send_signal(signal.SIGKILL)
                warden.process.wait(5)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return answered


def audited_ids(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "warden.db") as db:
        return [r[0] for r in db.execute(
            "SELECT request_id FROM audit_events WHERE surface = 'ai' AND action LIKE 'chat.completions:%'")]


def test_a_sigkill_in_the_middle_of_a_load_loses_no_audit_event_and_duplicates_none(
        tmp_path: Path, provider: str) -> None:
    config = tmp_path / "warden.yaml"
    config.write_text(yaml.safe_dump({
        "providers": [{"name": "fake", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"}],
        "api_keys": [{"name": "load", "owner": "load@example.com", "secret": KEY, "surfaces": ["ai"]}],
    }))
    env = base_env(tmp_path / "data", "", WARDEN_CONFIG=str(config), WARDEN_SERVER_LOG_LEVEL="warning")
    del env["WARDEN_DATABASE_URL"]
    warden = WardenProcess(env, tmp_path / "warden.log").start()
    try:
        answered = asyncio.run(drive(warden.gateway, warden))
    finally:
        warden.stop()
    assert warden.process is not None and warden.process.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(answered) < REQUESTS
    before_restart = len(audited_ids(tmp_path / "data"))

    with WardenProcess(env, tmp_path / "warden.log"):  # the spool is replayed at start
        deadline = time.monotonic() + 60
        while not answered <= set(audited_ids(tmp_path / "data")) and time.monotonic() < deadline:
            time.sleep(0.2)
    ids = audited_ids(tmp_path / "data")
    assert answered <= set(ids), f"{len(answered - set(ids))} answered requests have no audit event"
    assert len(ids) == len(set(ids)), "a replay duplicated events"
    assert set(ids) <= {f"load-{n}" for n in range(REQUESTS)}
    assert before_restart < len(answered)  # the kill did leave events to replay: the test tested something
