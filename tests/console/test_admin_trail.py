"""The admin audit trail: every change through the management API and every console sign-in (failed ones too)
is an audit event of kind ``admin`` with who, what, the outcome, and the resource before and after; secrets
never reach it."""

from __future__ import annotations

import json
from typing import Any

import httpx
from starlette.applications import Starlette

from broker.app import Warden
from broker.kernel.audit.adapters.store_search import AuditFilter
from broker.kernel.audit.events import AuditEvent
from console.admin_trail import AdminTrail
from console.endpoints import ApiRoute, Authenticator, Call, to_starlette
from tests.conftest import STRONG_PASSWORD, asgi_client, eventually
from tests.console.conftest import ADMIN_EMAIL, sign_in


def event_json(event: dict[str, Any]) -> str:
    return json.dumps(event["detail"], separators=(",", ":"))


SIGNED_IN = 2  # the admin fixture's set-up and sign-in are on the trail already


async def trail(warden: Warden, count: int) -> list[dict[str, Any]]:
    """Every admin event, oldest first, once there are ``count`` of them."""
    async def stored() -> bool:
        return len(await warden.kernel.search.events(AuditFilter(surface="admin"), 1000)) >= count

    assert await eventually(stored)
    return list(reversed(await warden.kernel.search.events(AuditFilter(surface="admin"), 1000)))


async def test_a_change_is_recorded_with_who_what_and_before_and_after(warden: Warden,
                                                                      admin: httpx.AsyncClient) -> None:
    created = await admin.post("/api/users", json={"email": "dev@example.com", "name": "Dev",
                                                   "password": STRONG_PASSWORD})
    assert created.status_code == 201
    user_id = created.json()["id"]
    assert (await admin.patch(f"/api/users/{user_id}", json={"name": "Developer"})).status_code == 200
    setup, login, create, rename = await trail(warden, SIGNED_IN + 2)
    assert setup["action"] == "POST /api/setup" and login["user_id"] == setup["detail"]["after"]["user"]["id"]
    assert create["action"] == "POST /api/users" and create["outcome"] == "ok"
    assert create["detail"]["request"]["password"] == "[REDACTED:secret]"
    assert create["detail"]["after"]["email"] == "dev@example.com"  # who it was done to stays readable
    assert rename["action"] == "PATCH /api/users/{user_id}" and rename["detail"]["params"] == {"user_id": user_id}
    assert rename["detail"]["before"]["name"] == "Dev" and rename["detail"]["after"]["name"] == "Developer"
    assert rename["user_id"] == login["user_id"] and rename["client_ip"] and rename["request_id"]


async def test_settings_changes_show_before_and_after(warden: Warden, admin: httpx.AsyncClient) -> None:
    assert (await admin.put("/api/settings/audit", json={"mcp_results": True})).status_code == 200
    change = (await trail(warden, SIGNED_IN + 1))[-1]
    assert change["action"] == "PUT /api/settings/audit"
    assert change["detail"]["before"]["mcp_results"] is False and change["detail"]["after"]["mcp_results"] is True


async def test_a_key_secret_shown_once_never_reaches_the_trail(warden: Warden, admin: httpx.AsyncClient) -> None:
    created = await admin.post("/api/keys", json={"name": "ci", "surfaces": ["ai"]})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    event = (await trail(warden, SIGNED_IN + 1))[-1]
    assert event["action"] == "POST /api/keys"
    rows = await warden.kernel.db.fetch("SELECT detail FROM audit_events WHERE surface = 'admin'")
    assert rows and all(secret not in row["detail"] for row in rows)  # (its public prefix may show)
    assert '"secret":"[REDACTED:secret]"' in event_json(event)


async def test_sign_ins_failed_and_succeeded_are_recorded_without_the_password(warden: Warden,
                                                                             admin: httpx.AsyncClient) -> None:
    async with asgi_client(warden.console, "http://console.test") as browser:
        wrong = await browser.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": "not-the-password1"})
        assert wrong.status_code == 401
        await sign_in(browser)
    failed, succeeded = (await trail(warden, SIGNED_IN + 2))[-2:]
    assert failed["action"] == succeeded["action"] == "POST /api/auth/login"
    assert failed["outcome"] == "refused" and failed["error_code"] == 401 and failed["user_id"] is None
    assert failed["detail"]["request"] == {"email": ADMIN_EMAIL, "password": "[REDACTED:secret]"}
    assert succeeded["outcome"] == "ok" and succeeded["user_id"] is not None
    rows = await warden.kernel.db.fetch("SELECT detail FROM audit_events WHERE surface = 'admin'")
    assert not any("not-the-password1" in row["detail"] or STRONG_PASSWORD in row["detail"] for row in rows)


async def test_a_refused_change_is_recorded_and_reads_are_not(warden: Warden, admin: httpx.AsyncClient) -> None:
    assert (await admin.post("/api/users", json={"email": "view@example.com", "password": STRONG_PASSWORD,
                                                 "roles": ["viewer"]})).status_code == 201
    async with asgi_client(warden.console, "http://console.test") as viewer:
        await sign_in(viewer, "view@example.com")
        before = len(await trail(warden, SIGNED_IN + 2))  # the user created, the viewer signed in
        assert (await viewer.get("/api/users")).status_code == 200
        assert (await viewer.delete("/api/users/someone")).status_code == 403
    refused = (await trail(warden, before + 1))[-1]
    assert refused["action"] == "DELETE /api/users/{user_id}" and refused["outcome"] == "refused"
    assert refused["error_code"] == 403 and refused["detail"]["params"] == {"user_id": "someone"}
    assert len(await warden.kernel.search.events(AuditFilter(surface="admin"), 1000)) == before + 1


class KeptEvents:
    """An audit sink that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def admit(self) -> None:
        return None

    async def record(self, event: AuditEvent) -> None:
        self.events.append(event)


async def test_a_change_that_fails_on_our_side_is_on_the_trail_too() -> None:
    async def broken(call: Call) -> None:
        raise RuntimeError("a bug")

    sink = KeptEvents()
    route = to_starlette(ApiRoute("POST", "/api/things", broken, "break", "test", public=True),
                         Authenticator(None), AdminTrail(sink))  # type: ignore[arg-type]
    async with asgi_client(Starlette(routes=[route]), "http://console.test") as client:
        answer = await client.post("/api/things", json={"password": "hunter2-hunter2"})
    assert answer.status_code == 500
    [event] = sink.events
    assert (event.action, event.outcome, event.error_code) == ("POST /api/things", "error", 500)
    assert event.detail["request"] == {"password": "[REDACTED:secret]"}
