from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import anyio
import pytest

from broker.kernel.quota.engine import QuotaPolicy
from broker.kernel.quota.errors import QuotaExceeded
from broker.kernel.quota.models import Estimate, QuotaRequest, Rule, Subject, Usage
from broker.kernel.quota.ports import CounterStore
from tests.conftest import FakeClock
from tests.kernel.quota.conftest import Harness

USER = Subject("user", "u1")
KEY = Subject("api_key", "k1")


def ai(*subjects: Subject, estimate: Estimate | None = None) -> QuotaRequest:
    return QuotaRequest("ai", subjects or (USER, KEY), estimate)


async def test_request_limit_admits_exactly_the_limit_then_names_the_rule(harness: Harness) -> None:
    harness.rules(Rule("r1", "user", "*", "requests", 3, window="1m"))
    for _ in range(3):
        await harness.engine.admit(ai())
    with pytest.raises(QuotaExceeded) as caught:
        await harness.engine.admit(ai())
    assert caught.value.details()["rule"] == "user:requests/1m"
    assert caught.value.details()["limit"] == 3
    assert 1 <= caught.value.retry_after <= 60


async def test_window_slides_bucket_by_bucket(harness: Harness, clock: FakeClock) -> None:
    harness.rules(Rule("r1", "user", "*", "requests", 2, window="1m"))
    clock.value = 1_800_000_000.0
    await harness.engine.admit(ai())
    clock.advance(30)
    await harness.engine.admit(ai())
    with pytest.raises(QuotaExceeded) as caught:
        await harness.engine.admit(ai())
    assert caught.value.retry_after == 30  # the first request's bucket leaves the window in 30 s
    clock.advance(30)
    await harness.engine.admit(ai())


async def test_one_refusal_refuses_the_request_and_counts_nothing(harness: Harness) -> None:
    harness.rules(Rule("a", "user", "*", "requests", 10, window="1m"),
                  Rule("b", "api_key", "k1", "requests", 1, window="1m"))
    await harness.engine.admit(ai())
    with pytest.raises(QuotaExceeded) as caught:
        await harness.engine.admit(ai())
    assert caught.value.details()["rule"] == "api_key:requests/1m"
    usage = {c.rule.id: c.used for c in await harness.engine.usage(USER)}
    assert usage == {"a": 1}


async def test_rules_apply_per_subject_and_surface(harness: Harness) -> None:
    harness.rules(Rule("r", "user", "*", "requests", 1, window="1m", surface="mcp"))
    for _ in range(3):
        await harness.engine.admit(ai())  # an ai request is not counted by an mcp rule
    await harness.engine.admit(QuotaRequest("mcp", (Subject("user", "u1"),)))
    await harness.engine.admit(QuotaRequest("mcp", (Subject("user", "u2"),)))
    with pytest.raises(QuotaExceeded):
        await harness.engine.admit(QuotaRequest("mcp", (Subject("user", "u1"),)))


async def test_token_rate_limit_is_charged_after_the_call(harness: Harness) -> None:
    harness.rules(Rule("t", "api_key", "*", "tokens", 1000, window="1h"))
    await harness.engine.admit(ai())
    await harness.engine.charge("ai", (USER, KEY), Usage(400, 800, weighted_tokens=1200.0, usd=0.01))
    with pytest.raises(QuotaExceeded) as caught:
        await harness.engine.admit(ai())
    assert caught.value.details()["rule"] == "api_key:tokens/1h"


async def test_budget_is_a_soft_cap(harness: Harness) -> None:
    harness.rules(Rule("b", "user", "*", "usd", 10, period="monthly"))
    await harness.engine.admit(ai())
    await harness.engine.charge("ai", (USER,), Usage(usd=9.0))
    await harness.engine.admit(ai())  # 9 < 10: admitted
    await harness.engine.charge("ai", (USER,), Usage(usd=5.0))  # crosses the line and completes
    with pytest.raises(QuotaExceeded) as caught:
        await harness.engine.admit(ai())
    assert caught.value.details()["rule"] == "user:usd/monthly"


async def test_pre_call_estimate_refuses_what_cannot_fit(harness: Harness) -> None:
    harness.rules(Rule("b", "user", "*", "tokens", 1000, period="daily", precheck=True),
                  Rule("c", "api_key", "*", "tokens", 1000, period="daily"))
    await harness.engine.charge("ai", (USER, KEY), Usage(weighted_tokens=700.0))
    await harness.engine.admit(ai(estimate=Estimate(weighted_tokens=300.0)))
    with pytest.raises(QuotaExceeded) as caught:
        await harness.engine.admit(ai(estimate=Estimate(weighted_tokens=301.0)))
    assert caught.value.details()["rule"] == "user:tokens/daily"


async def test_monthly_budget_resets_at_the_boundary_in_the_configured_zone(store: CounterStore,
                                                                          clock: FakeClock) -> None:
    zone = ZoneInfo("America/New_York")
    harness = Harness(store, clock, QuotaPolicy(timezone="America/New_York"))
    harness.rules(Rule("m", "team", "*", "usd", 100, period="monthly"))
    team = (Subject("team", "t1"),)
    clock.value = datetime(2026, 11, 30, 23, 59, 0, tzinfo=zone).timestamp()
    await harness.engine.charge("ai", team, Usage(usd=150.0))
    with pytest.raises(QuotaExceeded) as caught:
        await harness.engine.admit(QuotaRequest("ai", team))
    assert 60 <= caught.value.retry_after <= 61  # until local midnight
    clock.value = datetime(2026, 12, 1, 0, 0, 0, tzinfo=zone).timestamp()  # 05:00 UTC
    await harness.engine.admit(QuotaRequest("ai", team))


async def test_one_charge_crossing_several_thresholds_fires_each_once(harness: Harness) -> None:
    harness.rules(Rule("b", "user", "*", "usd", 100, period="monthly"))
    await harness.engine.charge("ai", (USER,), Usage(usd=60.0))
    assert [a.threshold for a in harness.alerts] == [50.0]
    await harness.engine.charge("ai", (USER,), Usage(usd=41.0))  # 60 % -> 101 %
    assert [a.threshold for a in harness.alerts] == [50.0, 80.0, 95.0, 100.0]
    await harness.engine.charge("ai", (USER,), Usage(usd=10.0))
    assert len(harness.alerts) == 4


async def test_requests_with_no_rule_cost_nothing(harness: Harness) -> None:
    admission = await harness.engine.admit(ai())
    assert admission.counted == () and not admission.fail_open


async def test_admission_reports_the_tightest_rule_for_headers(harness: Harness) -> None:
    harness.rules(Rule("a", "user", "*", "requests", 100, window="1m"),
                  Rule("b", "api_key", "*", "requests", 5, window="1h"))
    admission = await harness.engine.admit(ai())
    tightest = admission.tightest()
    assert tightest is not None and tightest.rule.id == "b" and tightest.remaining == 4


async def test_concurrent_admissions_never_exceed_the_limit(harness: Harness) -> None:
    harness.rules(Rule("r", "user", "*", "requests", 50, window="1m"))
    admitted = 0

    async def one() -> None:
        nonlocal admitted
        try:
            await harness.engine.admit(ai())
            admitted += 1
        except QuotaExceeded:
            pass

    async with anyio.create_task_group() as group:
        for _ in range(120):
            group.start_soon(one)
    assert admitted == 50


async def test_refusal_carries_the_same_data_as_a_json_rpc_error(harness: Harness) -> None:
    harness.rules(Rule("r1", "user", "*", "requests", 1, window="1m", surface="mcp"))
    request = QuotaRequest("mcp", (USER,))
    await harness.engine.admit(request)
    with pytest.raises(QuotaExceeded) as caught:
        await harness.engine.admit(request)
    error = caught.value.jsonrpc_error()
    assert error["code"] == -32029
    assert error["data"] == {"code": "rate_limited", **caught.value.details()}
    assert caught.value.details()["rule"] == "user:requests/1m"
