"""The MCP Store in headless Chromium against ``warden serve``: an admin adds a private template (bad JSON and a
template the schema refuses are named at the field, nothing is added), installs it twice with display labels
through the wizard, sees both installs on the template's card and in the server list, and removes the template
(the servers stay)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser import screenshot, signed_in_page
from tests.connections.conftest import PASSWORD, console_session, first_admin
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import served_plain_upstream

ADMIN = "ada@example.com"
TEMPLATE = {
    "id": "acme-local", "name": {"en": "ACME tools", "zh": "ACME 工具"},
    "description": {"en": "Our team's own tools.", "zh": "我们团队自己的工具。"},
    "notes": {"en": "Runs on the host you name.", "zh": "运行在你指定的主机上。"},
    "category": "development", "icon": {"glyph": "A", "color": "#6a1b9a"},
    "transport": "streamable_http", "url": "http://{host}/mcp", "auth": {"mode": "none", "ownership": "shared"},
    "inputs": [{"name": "host", "label": {"en": "Host and port", "zh": "主机和端口"}, "example": "127.0.0.1:8000"}],
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with served_plain_upstream() as url:
        yield url.removeprefix("http://").removesuffix("/mcp")


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("store-page")
    with served(tmp, {}) as process:
        first_admin(process, ADMIN)
        yield process


@pytest.fixture
def page(warden: WardenProcess) -> Iterator[Page]:
    with signed_in_page(warden.console, ADMIN, PASSWORD) as page:
        yield page


def add_template(page: Page, text: str) -> None:
    page.click("#add-template")
    page.locator("dialog[open] [name=template]").fill(text)
    page.locator("dialog[open] button[type=submit]").click()


def install(page: Page, upstream: str, label: str) -> None:
    page.locator("[data-template=acme-local] button >> text=Install").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("[name=label]").fill(label)
    dialog.locator("[name=input_host]").fill(upstream)
    dialog.locator("button[type=submit]").click()
    page.wait_for_selector("#probe-report")
    dialog.locator("button[type=submit]").click()
    page.wait_for_url("**/servers")


def test_a_private_template_installed_twice_with_labels(page: Page, warden: WardenProcess, upstream: str) -> None:
    page.goto(warden.console + "/store")
    page.wait_for_selector("[data-template=github]")
    error = page.locator("dialog[open] [data-field=template] .field-error")
    add_template(page, "{not json")
    error.wait_for()
    assert "not JSON" in error.inner_text()
    untranslated = {**TEMPLATE, "description": {"en": "English only"}}
    page.locator("dialog[open] [name=template]").fill(json.dumps(untranslated))
    page.locator("dialog[open] button[type=submit]").click()
    page.wait_for_selector("dialog[open] [data-field=template] .field-error >> text=description: 'zh' is a required")
    with console_session(warden, ADMIN) as api:
        assert not any(t["private"] for t in api.get("/api/store/templates").json()["items"])
    page.locator("dialog[open] [name=template]").fill(json.dumps(TEMPLATE))
    page.locator("dialog[open] button[type=submit]").click()
    page.wait_for_selector("text=Template acme-local added to the Store.")

    card = page.locator("[data-template=acme-local]")
    assert "private" in card.inner_text()
    install(page, upstream, "ACME tools (work)")
    page.goto(warden.console + "/store")
    install(page, upstream, "ACME tools (home)")  # the second install gets a name of its own
    page.wait_for_selector("#content td >> text=ACME tools (home)")
    listed = page.inner_text("#content table")
    assert "ACME tools (work)" in listed and "acme-local-2" in listed
    page.goto(warden.console + "/store")
    installed = page.locator("[data-template=acme-local] .installed")
    installed.wait_for()
    assert installed.inner_text() == "Installed as: ACME tools (work), ACME tools (home)"
    screenshot(page, "store-private", page.locator("[data-template=acme-local]"))

    page.locator("[data-template=acme-local] button >> text=Delete").click()
    page.wait_for_selector("[data-template=acme-local]", state="detached")
    with console_session(warden, ADMIN) as api:
        servers = {s["name"]: s["label"] for s in api.get("/api/mcp/servers").json()["items"]}
    assert servers == {"acme-local": "ACME tools (work)", "acme-local-2": "ACME tools (home)"}
