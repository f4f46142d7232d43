"""A registered MCP server's page in headless Chromium against ``warden serve``: the edit form shows only the
chosen auth mode's fields and keeps a stored secret it never shows; tool-level access rules are added and
explained; a tool call's progress events appear on the page while the call runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from playwright.sync_api import Page

from tests.browser import screenshot, signed_in_page
from tests.connections.conftest import PASSWORD, console_session, first_admin
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client, served_plain_upstream, stdio_server

ADMIN = "ada@example.com"
AGENT = "wdn_" + "s" * 43  # the access rules test narrows this key to plain__echo
RUNNER = "wdn_" + "t" * 43
STORED = "stored-upstream-secret"


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("servers-page")
    with served_plain_upstream() as plain, served(tmp, {
        "api_keys": [{"name": "agent", "owner": ADMIN, "secret": AGENT, "surfaces": ["mcp"]},
                     {"name": "runner", "owner": ADMIN, "secret": RUNNER, "surfaces": ["mcp"]}],
    }) as process:
        first_admin(process, ADMIN)
        with console_session(process, ADMIN) as api:
            for server in (stdio_server("demo"), {"name": "plain", "transport": "streamable_http", "url": plain,
                                                  "auth": {"mode": "static", "secret": STORED}}):
                assert api.post("/api/mcp/servers", json=server).status_code == 201
        yield process


@pytest.fixture
def page(warden: WardenProcess) -> Iterator[Page]:
    with signed_in_page(warden.console, ADMIN, PASSWORD) as page:
        yield page


def call(warden: WardenProcess, tool: str, arguments: dict[str, Any], secret: str = AGENT) -> Any:
    async def run() -> Any:
        async with mcp_client(warden.gateway + "/mcp", secret) as session:
            return await session.call_tool(tool, arguments)

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API runs an event loop in this thread
        return thread.submit(anyio.run, run).result(timeout=60)


def refusal(warden: WardenProcess, tool: str) -> str | None:
    """The error a call of ``tool`` is refused with (None: it was not)."""
    async def run() -> str | None:
        async with mcp_client(warden.gateway + "/mcp", AGENT) as session:
            try:
                await session.call_tool(tool, {})
            except MCPError as exc:
                return exc.error.message
            return None

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(anyio.run, run).result(timeout=60)


def test_the_edit_form_shows_only_the_chosen_mode_and_keeps_the_stored_secret(page: Page,
                                                                                warden: WardenProcess) -> None:
    page.goto(warden.console + "/servers")
    page.click("#content a >> text=plain")
    edit = page.locator("#edit-server")
    edit.wait_for()
    assert edit.locator("[name=secret]").count() == 1 and edit.locator("[name=scopes]").count() == 0
    assert "leave empty to keep it" in edit.inner_text()
    edit.locator("[name=mode]").select_option("oauth")
    assert edit.locator("[name=secret]").count() == 0 and edit.locator("[name=scopes]").count() == 1
    edit.locator("[name=mode]").select_option("static")
    edit.locator("[name=timeout_seconds]").fill("0")
    edit.locator("button[type=submit]").click()
    edit.locator("[data-field=timeout_seconds] .field-error").wait_for()  # refused at its field
    edit.locator("[name=timeout_seconds]").fill("30")
    edit.locator("button[type=submit]").click()
    page.wait_for_selector("text=Server plain saved; every instance uses it at once.")
    with console_session(warden, ADMIN) as api:
        assert api.get("/api/mcp/servers/plain").json()["timeout_seconds"] == 30
    assert STORED not in page.content()
    # The secret left empty on the form is the one still presented upstream.
    presented = call(warden, "plain__credentials", {}).structured_content["authorization"]
    assert presented == f"Bearer {STORED}"


def test_access_rules_are_added_and_explained(page: Page, warden: WardenProcess) -> None:
    page.goto(warden.console + "/servers/plain")
    rules = page.locator("#access-rules")
    rules.wait_for()
    form = rules.locator("form >> nth=0")
    form.locator("[name=subject_kind]").select_option("api_key")
    agent = next(option for option in form.locator("[name=subject_id] option").all_inner_texts()
                 if option.startswith("agent"))
    form.locator("[name=subject_id]").select_option(label=agent)
    form.locator("[name=pattern]").select_option("plain__echo")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=Allowed plain__echo.")
    rules = page.locator("#access-rules")
    rules.locator("td >> text=plain__echo").wait_for()
    explain = rules.locator("form >> nth=1")
    explain.locator("[name=tool]").select_option("plain__weather")
    explain.locator("[name=api_key]").select_option(label=agent)
    explain.locator("button[type=submit]").click()
    rules.locator(".explain >> text=not in the catalog").wait_for()
    assert "allow-list excludes it" in rules.locator(".explain").inner_text()
    explain.locator("[name=tool]").select_option("plain__echo")
    explain.locator("button[type=submit]").click()
    rules.locator(".explain >> text=callable").wait_for()
    assert refusal(warden, "plain__weather") == "unknown tool 'plain__weather'"  # the gateway holds to it too


def test_a_calls_progress_appears_while_it_runs(page: Page, warden: WardenProcess) -> None:
    page.goto(warden.console + "/servers/demo")
    page.wait_for_selector("#live-calls[data-watching=true]")
    with ThreadPoolExecutor(1) as thread:
        running = thread.submit(call, warden, "demo__countdown", {"steps": 20}, RUNNER)  # 20 steps, 50 ms apart
        # Progress on the page while the call is still running...
        progress, ended = page.locator(".live-call [data-event=progress]"), page.locator(".live-call [data-event=ok]")
        deadline = time.monotonic() + 15
        while not (progress.count() and not ended.count()):  # read in this order: the end comes after progress
            assert time.monotonic() < deadline and not running.done(), "no progress on the page while the call ran"
            time.sleep(0.02)
        screenshot(page, "server", page.locator("#calls"))
        assert not running.result(timeout=30).is_error
    # ... and every step of it once it ended.
    page.wait_for_selector(".live-call [data-event=ok]")
    assert page.locator(".live-call [data-event=progress]").count() == 20
    assert "step 20" in page.inner_text(".live-call")
