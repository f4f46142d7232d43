"""Quotas as configured and wired by the composition root: file-declared rules, alerts to events and webhooks."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from broker.app import create_app, open_kernel
from broker.config import WardenConfig
from broker.kernel.quota.errors import QuotaExceeded
from broker.kernel.quota.models import QuotaRequest, Subject, Usage
from broker.storage import StartupError
from tests.conftest import FakeClock, make_config
from tests.webhook_receiver import Receiver


def with_quotas(tmp_path: Path, database_url: str, **quotas: object) -> WardenConfig:
    return make_config(tmp_path, database_url, quotas=quotas)


async def test_rules_from_the_file_are_reconciled_idempotently(tmp_path: Path, database_url: str,
                                                               clock: FakeClock) -> None:
    rules = [{"subject": "user:*", "metric": "requests", "window": "1m", "limit": 1},
             {"subject": "team:platform", "metric": "usd", "period": "monthly", "limit": 50}]
    config = with_quotas(tmp_path, database_url, rules=rules)
    async with open_kernel(config, clock) as kernel:
        first = await kernel.quota_rules.describe()
        assert {(d["rule"].label, d["source"]) for d in first} == {("user:requests/1m", "config"),
                                                                   ("team:usd/monthly", "config")}
        await kernel.quotas.admit(QuotaRequest("ai", (Subject("user", "u"),)))
        with pytest.raises(QuotaExceeded):
            await kernel.quotas.admit(QuotaRequest("ai", (Subject("user", "u"),)))
    async with open_kernel(config, clock) as kernel:
        assert [d["rule"].id for d in await kernel.quota_rules.describe()] == [d["rule"].id for d in first]
    async with open_kernel(with_quotas(tmp_path, database_url, rules=rules[:1]), clock) as kernel:
        assert len(await kernel.quota_rules.describe()) == 1


async def test_a_rule_naming_an_unknown_user_stops_start_up(tmp_path: Path, database_url: str) -> None:
    config = with_quotas(tmp_path, database_url, rules=[
        {"subject": "user:ghost@example.com", "metric": "requests", "window": "1m", "limit": 1}])
    with pytest.raises(StartupError, match=r"quotas.rules\[0\].subject"):
        async with open_kernel(config):
            pass


async def test_threshold_alerts_become_events_and_signed_webhooks(tmp_path: Path, database_url: str,
                                                                  clock: FakeClock, receiver: Receiver) -> None:
    config = with_quotas(tmp_path, database_url, webhooks=[{"url": receiver.url, "secret": "s"}],
                         rules=[{"subject": "user:*", "metric": "usd", "period": "monthly", "limit": 100}])
    async with create_app(config, clock) as warden:
        await warden.kernel.quotas.charge("ai", (Subject("user", "u1"),), Usage(usd=85.0))
        events = await warden.kernel.events.recent("quota.threshold")
        assert sorted(e.detail["threshold_percent"] for e in events) == [50.0, 80.0]
        assert await anyio.to_thread.run_sync(receiver.wait_for, 2)
        payloads = [json.loads(body) for _, body in receiver.posts]
        assert sorted(p["threshold_percent"] for p in payloads) == [50.0, 80.0]
        assert {p["rule"] for p in payloads} == {"user:usd/monthly"}
