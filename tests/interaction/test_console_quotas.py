"""The quotas and budgets page in headless Chromium against ``warden serve``: an admin creates a rate limit and a
budget (a budget never counts requests; a refused limit is named at its field and nothing is saved), watches a
key's live usage bar fill as the key calls the gateway, and raises the limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import screenshot, signed_in_page
from tests.connections.conftest import PASSWORD, console_session, first_admin
from tests.interaction.process import WardenProcess, served

ADMIN = "ada@example.com"
KEY = "wdn_" + "r" * 43


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("quotas-page")
    with served(tmp, {"api_keys": [{"name": "busy", "owner": ADMIN, "secret": KEY, "surfaces": ["ai"]}]}) as process:
        first_admin(process, ADMIN)
        yield process


@pytest.fixture
def page(warden: WardenProcess) -> Iterator[Page]:
    with signed_in_page(warden.console, ADMIN, PASSWORD) as page:
        yield page


def test_rules_by_subject_and_a_live_usage_bar(page: Page, warden: WardenProcess) -> None:
    with console_session(warden, ADMIN) as api:
        key = next(k for k in api.get("/api/keys").json()["items"] if k["name"] == "busy")
    page.goto(warden.console + "/quotas")
    page.wait_for_selector("#new-rule")

    # A rate limit on every API key; a zero limit is refused at its field and nothing is saved.
    page.click("#new-rule")
    dialog = page.locator("dialog[open]")
    dialog.locator("[name=subject_kind]").select_option("api_key")
    dialog.locator("[name=type]").select_option("budget")
    assert dialog.locator("[data-field=period]").is_visible() and not dialog.locator("[data-field=window]").is_visible()
    assert dialog.locator("[name=metric] option[value=requests]").is_disabled()  # budgets count tokens or dollars
    dialog.locator("[name=type]").select_option("rate")
    dialog.locator("[name=metric]").select_option("requests")
    dialog.locator("[name=window]").select_option("1h")
    dialog.locator("[name=limit]").fill("0")
    dialog.locator("button[type=submit]").click()
    dialog.locator("[data-field=limit] .field-error").wait_for()
    with console_session(warden, ADMIN) as api:
        assert api.get("/api/quotas/rules").json()["items"] == []
    dialog.locator("[name=limit]").fill("10")
    dialog.locator("button[type=submit]").click()
    page.wait_for_selector("text=Rule api_key:requests/1h created.")
    page.wait_for_selector("[data-subject='api_key:*'] >> text=Every API key")

    # A monthly dollar budget for the key's owner, listed under that user by email.
    page.click("#new-rule")
    dialog = page.locator("dialog[open]")
    dialog.locator("[name=subject_kind]").select_option("user")
    dialog.locator("[name=subject_id]").fill(key["owner_user_id"])
    dialog.locator("[name=type]").select_option("budget")
    dialog.locator("[name=metric]").select_option("usd")
    dialog.locator("[name=limit]").fill("25")
    dialog.locator("button[type=submit]").click()
    page.wait_for_selector(f"[data-subject='user:{key['owner_user_id']}'] >> text=user: {ADMIN}")

    # The key's live usage: the bar follows the key's requests without a reload.
    page.select_option("#usage-kind", "api_key")
    page.fill("#usage-subject", key["id"])
    page.click("#usage button[type=submit]")
    row = page.locator("[data-rule='api_key:requests/1h']")
    row.wait_for()
    assert "0 of 10" in row.inner_text()
    for _ in range(6):
        assert httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
    row.locator("text=6 of 10").wait_for(timeout=10_000)
    assert row.locator(".threshold").count() == 3  # 50, 80 and 95 %
    assert row.locator(".fill.high").count() == 0
    for _ in range(4):
        httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {KEY}"})
    assert httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 429
    row.locator(".fill.full").wait_for(timeout=10_000)  # 10 of 10: the bar says what the 429 said
    assert "10 of 10" in row.inner_text()
    screenshot(page, "quotas")

    # Raised in the console: the key may go on.
    group = page.locator("[data-subject='api_key:*']")
    group.get_by_role("button", name="Edit").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("[name=limit]").fill("100")
    dialog.locator("button[type=submit]").click()
    page.wait_for_selector("text=Rule api_key:requests/1h saved.")
    deadline = time.monotonic() + 5
    codes = [httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 200] and time.monotonic() < deadline
