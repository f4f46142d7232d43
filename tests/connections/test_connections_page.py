"""The connections page in headless Chromium: link an account by OAuth through the real authorization server
(the browser follows its redirects; the session cookie is SameSite=Strict, so the callback must work without
it), paste a personal token, test the connection, make default, disconnect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser import chromium, sign_in
from tests.connections.conftest import PASSWORD, OAuthWorld, first_admin
from tests.connections.test_oauth_links import SCOPES
from tests.interaction.process import WardenProcess, served


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, oauth_world: OAuthWorld, plain_upstream: str
           ) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("connections-page")
    with served(tmp, {"mcp_servers": [
        {"name": "notes", "transport": "streamable_http", "url": oauth_world.upstream, "timeout_seconds": 10,
         "auth": {"mode": "oauth", "ownership": "per_user", "requires_user_auth": True, "scopes": SCOPES}},
        {"name": "tokens", "transport": "streamable_http", "url": plain_upstream,
         "auth": {"mode": "personal_token", "ownership": "per_user"}},
    ]}) as process:
        first_admin(process, "ada@example.com")
        yield process


@pytest.fixture
def page(warden: WardenProcess) -> Iterator[Page]:
    with chromium() as browser:
        page = browser.new_page()
        page.set_extra_http_headers({"x-test-user": "ada"})  # the test authorization server logs in "ada"
        sign_in(page, warden.console, "ada@example.com", PASSWORD)
        yield page


def row(page: Page, server: str) -> str:
    return f'tr[data-server="{server}"]'


def test_connect_by_oauth_in_a_real_browser(page: Page, warden: WardenProcess) -> None:
    page.goto(warden.console + "/connections")
    page.wait_for_selector(row(page, "notes"))
    assert page.inner_text(f"{row(page, 'notes')} .state") == "needs authorization"
    page.click(f"{row(page, 'notes')} >> text=Connect")
    # The authorization server logs in and consents, sends the browser back, and the page moves on.
    page.wait_for_url(warden.console + "/connections?linked=notes", timeout=20_000)
    page.wait_for_selector(f"{row(page, 'notes')} .state:text('connected')")
    assert "default (default): connected" in page.inner_text(row(page, "notes"))

    page.click(f"{row(page, 'notes')} >> text=Test connection")
    page.wait_for_selector(f"{row(page, 'notes')} .verdict:text('auth_ok')")


def test_personal_token_make_default_and_disconnect(page: Page, warden: WardenProcess) -> None:
    page.goto(warden.console + "/connections")
    tokens = row(page, "tokens")
    page.wait_for_selector(tokens)
    for label, token in (("work", "pat-work"), ("home", "pat-home")):
        page.fill(f'{tokens} input[aria-label="Account label for tokens"]', label)
        page.fill(f'{tokens} input[aria-label="Personal token for tokens"]', token)
        page.click(f"{tokens} >> text=Add token")
        page.wait_for_selector(f"{tokens} >> text={label}")
    assert "work (default): connected" in page.inner_text(tokens)
    page.click(f"{tokens} div:has-text('home') >> text=Make default")
    page.wait_for_selector(f"{tokens} >> text=home (default)")
    page.click(f"{tokens} div:has-text('work') >> text=Disconnect")
    page.wait_for_selector(f"{tokens} div:has-text('work')", state="detached")
    assert "pat-" not in page.content()
