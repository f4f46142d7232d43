"""The console's first-run setup, sign-in and sign-out, driven in headless Chromium against ``warden serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import chromium
from tests.conftest import STRONG_PASSWORD
from tests.interaction.process import WardenProcess, base_env


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def warden(tmp_path: Path) -> Iterator[WardenProcess]:
    env = base_env(tmp_path / "data", "")
    del env["WARDEN_DATABASE_URL"]
    with WardenProcess(env, tmp_path / "warden.log") as process:
        yield process


def fill(page: Page, **fields: str) -> None:
    for name, value in fields.items():
        page.fill(f"#{name}", value)
    page.click("button[type=submit]")


def test_setup_sign_in_and_sign_out_in_a_browser(browser: Browser, warden: WardenProcess) -> None:
    page = browser.new_page()
    page.goto(warden.console + "/")
    page.wait_for_url("**/setup")
    fill(page, email="admin@example.com", name="Ada", password="lettersonly")
    page.wait_for_selector(".error:not([hidden])")
    assert "password" in page.inner_text(".error")

    fill(page, password=STRONG_PASSWORD)
    page.wait_for_url("**/login")
    fill(page, email="admin@example.com", password="wrong password 1")
    page.wait_for_selector(".error:not([hidden])")

    fill(page, email="admin@example.com", password=STRONG_PASSWORD)
    page.wait_for_url(warden.console + "/")
    page.wait_for_selector("#permissions li")
    assert "admin@example.com" in page.inner_text("#whoami")
    session = next(c for c in page.context.cookies() if c["name"] == "warden_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"

    page.goto(warden.console + "/setup")
    page.wait_for_url("**/login")  # setup is gone once an admin exists
    page.goto(warden.console + "/")
    page.click("#logout")
    page.wait_for_url("**/login")
    page.goto(warden.console + "/")
    page.wait_for_url("**/login")
