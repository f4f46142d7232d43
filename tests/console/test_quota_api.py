from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock
from tests.console.test_management_api import bearer, create


async def test_rules_are_managed_and_enforced_on_the_gateway(admin: httpx.AsyncClient,
                                                             gateway: httpx.AsyncClient,
                                                             clock: FakeClock) -> None:
    key = await create(admin, "/api/keys", {"name": "limited", "surfaces": ["ai"]})
    rule = await create(admin, "/api/quotas/rules", {"subject_kind": "api_key", "subject_id": "*",
                                                     "metric": "requests", "window": "1m", "limit": 2,
                                                     "surface": "ai"})
    assert rule["label"] == "api_key:requests/1m" and rule["source"] == "api"
    first = await gateway.get("/v1/models", headers=bearer(key["secret"]))
    assert first.status_code == 200
    assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == ("2", "1")
    assert int(first.headers["x-ratelimit-reset"]) >= 1
    assert (await gateway.get("/v1/models", headers=bearer(key["secret"]))).status_code == 200
    refused = await gateway.get("/v1/models", headers=bearer(key["secret"]))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["rule"], error["limit"]) == ("rate_limited", "api_key:requests/1m", 2)
    assert int(refused.headers["retry-after"]) >= 1

    answer = (await admin.get(f"/api/quotas/usage?subject=api_key:{key['id']}")).json()
    assert answer["alert_thresholds"] == [50.0, 80.0, 95.0, 100.0]
    usage = answer["items"]
    assert usage == [{"rule_id": rule["id"], "rule": "api_key:requests/1m", "subject": f"api_key:{key['id']}",
                      "used": 2.0, "limit": 2.0, "remaining": 0.0, "resets_in_seconds": usage[0]["resets_in_seconds"]}]

    raised = await admin.patch(f"/api/quotas/rules/{rule['id']}", json={"limit": 3})
    assert raised.status_code == 200
    assert (await gateway.get("/v1/models", headers=bearer(key["secret"]))).status_code == 200
    assert (await admin.delete(f"/api/quotas/rules/{rule['id']}")).status_code == 204
    unlimited = await gateway.get("/v1/models", headers=bearer(key["secret"]))
    assert unlimited.status_code == 200 and "x-ratelimit-limit" not in unlimited.headers


async def test_team_rules_count_every_member_key(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    team = await create(admin, "/api/teams", {"name": "ml"})
    me = (await admin.get("/api/auth/me")).json()["user"]
    await admin.put(f"/api/teams/{team['id']}/members/{me['id']}")
    keys = [await create(admin, "/api/keys", {"name": f"k{i}", "surfaces": ["ai"]}) for i in range(2)]
    await create(admin, "/api/quotas/rules", {"subject_kind": "team", "subject_id": team["id"],
                                              "metric": "requests", "window": "1h", "limit": 3})
    codes = [(await gateway.get("/v1/models", headers=bearer(keys[i % 2]["secret"]))).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]


async def test_mine_shows_what_is_left(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    key = await create(admin, "/api/keys", {"name": "k", "surfaces": ["ai"]})
    await create(admin, "/api/quotas/rules", {"subject_kind": "user", "subject_id": "*", "metric": "requests",
                                              "window": "1d", "limit": 10})
    await create(admin, "/api/quotas/rules", {"subject_kind": "user", "subject_id": "*", "metric": "usd",
                                              "period": "monthly", "limit": 25})
    await gateway.get("/v1/models", headers=bearer(key["secret"]))
    items = (await admin.get("/api/quotas/mine")).json()["items"]
    by_rule = {i["rule"]: i for i in items}
    assert by_rule["user:requests/1d"]["remaining"] == 9
    assert by_rule["user:usd/monthly"]["remaining"] == 25


@pytest.mark.parametrize(("body", "field"), [
    ({"subject_kind": "user", "subject_id": "*", "metric": "requests", "limit": 5}, "window"),
    ({"subject_kind": "user", "subject_id": "*", "metric": "requests", "period": "daily", "limit": 5}, "metric"),
    ({"subject_kind": "planet", "subject_id": "*", "metric": "usd", "period": "daily", "limit": 5}, "subject_kind"),
    ({"subject_kind": "user", "subject_id": "*", "metric": "usd", "period": "daily", "limit": 0}, "limit"),
])
async def test_invalid_rules_are_422_naming_the_field(admin: httpx.AsyncClient, body: dict[str, Any],
                                                      field: str) -> None:
    response = await admin.post("/api/quotas/rules", json=body)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.json()["error"]["fields"]]


async def test_usage_needs_a_well_formed_subject(admin: httpx.AsyncClient) -> None:
    assert (await admin.get("/api/quotas/usage?subject=nonsense")).status_code == 422


async def test_quota_rules_need_the_permission(admin: httpx.AsyncClient, warden: Any) -> None:
    key = await create(admin, "/api/keys", {"name": "dev", "surfaces": ["management"],
                                            "owner_user_id": (await create(admin, "/api/users", {
                                                "email": "d@example.com", "roles": ["developer"]}))["id"]})
    from tests.conftest import asgi_client

    async with asgi_client(warden.console, "http://console.test") as dev:
        dev.headers.update(bearer(key["secret"]))
        assert (await dev.get("/api/quotas/rules")).status_code == 403
        assert (await dev.get("/api/quotas/mine")).status_code == 200
