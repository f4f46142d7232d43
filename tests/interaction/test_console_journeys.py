"""The console's main journeys in headless Chromium against ``warden serve``: an admin builds a team, a custom
role and a user; the user signs in, creates a key whose secret is shown once, installs a Store template,
registers a server through the wizard, connects their account to it and calls tools via /mcp; a viewer is
refused the admin pages, in the browser and by the API. The tests also take the README's screenshots."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import anyio
import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page

from tests.browser import LAPTOP, chromium, screenshot, sign_in
from tests.conftest import STRONG_PASSWORD
from tests.interaction.process import WardenProcess, base_env, wait_until
from tests.mcp.conftest import mcp_client, served_plain_upstream

ADMIN = "admin@example.com"
DEVELOPER = "dev@example.com"
VIEWER = "viewer@example.com"


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenProcess]:
    work = tmp_path_factory.mktemp("journeys")
    env = base_env(work / "data", "")
    del env["WARDEN_DATABASE_URL"]
    with WardenProcess(env, work / "warden.log") as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP)  # type: ignore[arg-type]
    try:
        yield context.new_page()
    finally:
        context.close()


@contextmanager
def admin_api(warden: WardenProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=warden.console) as client:
        answer = client.post("/api/auth/login", json={"email": ADMIN, "password": STRONG_PASSWORD})
        assert answer.status_code == 200, answer.text
        client.headers["x-csrf-token"] = answer.json()["csrf_token"]
        yield client


def dialog(page: Page) -> Locator:
    return page.locator("dialog[open]")


def field(page: Page, name: str) -> Locator:
    return dialog(page).locator(f"[name={name}]")


def open_page(page: Page, warden: WardenProcess, path: str, ready: str) -> None:
    page.goto(warden.console + path)
    page.wait_for_selector(ready)


@pytest.mark.timeout(300)
def test_first_run_then_admin_builds_a_team_a_role_and_a_user_who_creates_a_key(page: Page,
                                                                               warden: WardenProcess) -> None:
    # First run: the console sends a fresh installation to setup.
    page.goto(warden.console + "/")
    page.wait_for_url("**/setup")
    screenshot(page, "setup")
    page.fill("#email", ADMIN)
    page.fill("#name", "Ada Admin")
    page.fill("#password", STRONG_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login")
    sign_in(page, warden.console, ADMIN, STRONG_PASSWORD)
    page.wait_for_selector("#permissions li")
    screenshot(page, "home")

    # A team.
    page.click("#nav >> text=Teams")
    page.click("#new-team")
    field(page, "name").fill("Platform")
    field(page, "description").fill("Runs the gateway")
    dialog(page).locator("button[type=submit]").click()
    page.wait_for_selector("#content td >> text=Platform")

    # A custom role that may install MCP servers.
    page.click("#nav >> text=Roles")
    page.click("#new-role")
    field(page, "name").fill("tool-installer")
    for permission in ("keys:create", "mcp_servers:read", "mcp_servers:manage"):
        dialog(page).locator(f"input[value='{permission}']").check()
    dialog(page).locator("button[type=submit]").click()
    page.wait_for_selector("#content td >> text=tool-installer")
    screenshot(page, "roles")

    # Bad input is named at its field, and nothing is saved.
    page.click("#nav >> text=Users")
    page.click("#new-user")
    field(page, "email").fill("not an email")
    dialog(page).locator("button[type=submit]").click()
    email_error = dialog(page).locator("[data-field=email] .field-error")
    email_error.wait_for()
    assert "email" in email_error.inner_text().lower()
    assert field(page, "email").get_attribute("aria-invalid") == "true"
    with admin_api(warden) as api:
        assert api.get("/api/users").json()["total"] == 1

    # The user, with the custom role.
    field(page, "email").fill(DEVELOPER)
    field(page, "name").fill("Dev Eloper")
    field(page, "password").fill(STRONG_PASSWORD)
    role_id = dialog(page).locator("label.choice", has_text="tool-installer").locator("input").get_attribute("value")
    dialog(page).locator(f"input[value='{role_id}']").check()
    dialog(page).locator("button[type=submit]").click()
    page.wait_for_selector(f"#content td >> text={DEVELOPER}")
    screenshot(page, "users")

    # The user joins the team.
    page.click("#nav >> text=Teams")
    page.click("#content a >> text=Platform")
    page.wait_for_selector("h2 >> text=Add a member")
    page.select_option("#content select[name=user_id] >> nth=0", label=DEVELOPER)
    page.click("#content button >> text=Add")
    page.wait_for_selector(f"#content td >> text={DEVELOPER}")
    screenshot(page, "team")
    page.click("#logout")
    page.wait_for_url("**/login")

    # The user signs in: their navigation has keys but no user administration.
    sign_in(page, warden.console, DEVELOPER, STRONG_PASSWORD)
    page.wait_for_selector("#nav a")
    nav = page.inner_text("#nav")
    assert "API keys" in nav and "Users" not in nav and "Settings" not in nav

    page.click("#nav >> text=API keys")
    page.click("#new-key")
    field(page, "name").fill("laptop")
    dialog(page).locator("button[type=submit]").click()
    secret_box = page.locator("#key-secret")
    secret_box.wait_for()
    secret = secret_box.input_value()
    assert secret.startswith("wdn_") or len(secret) > 20
    page.click("#copy-secret")
    page.wait_for_selector("text=Copied.")
    screenshot(page, "key-created")
    page.click("#secret-done")
    page.wait_for_selector("#content td >> text=laptop")
    assert secret not in page.content()  # shown once: gone from the page once its dialog closed
    screenshot(page, "keys")
    answer = httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.text

    # The set-up guide names this gateway in every snippet; its Cursor configuration works as written.
    page.click("#nav >> text=Set-up guide")
    page.wait_for_selector("#content pre")
    guide = page.inner_text("#content")
    assert f"{warden.gateway}/v1" in guide and f"claude mcp add --transport http warden {warden.gateway}/mcp" in guide
    cursor = json.loads(page.locator("#content pre[data-language=json] >> nth=1").inner_text())["mcpServers"]["warden"]
    curl = page.locator("#content pre[data-language=sh] >> nth=1").inner_text().split("\n\n")[-1]  # the /mcp one
    headers = dict(header.split(": ", 1) for header in re.findall(r'-H "([^"]*)"', curl))
    headers["Authorization"] = cursor["headers"]["Authorization"].replace("<YOUR_WARDEN_KEY>", secret)
    listed = httpx.post(cursor["url"], content=re.findall(r"-d '([^']*)'", curl)[-1], headers=headers)
    assert listed.status_code == 200 and "result" in listed.text, listed.text
    screenshot(page, "guide")

    # The user installs a Store template (their role may manage MCP servers); refused names are named.
    page.click("#nav >> text=MCP Store")
    page.fill("#store-search", "everything")
    page.locator("[data-template=everything] button >> text=Install").click()
    field(page, "name").fill("every__thing")
    dialog(page).locator("button[type=submit]").click()
    name_error = dialog(page).locator("[data-field=name] .field-error")
    name_error.wait_for()
    assert "__" in name_error.inner_text()
    field(page, "name").fill("everything")
    dialog(page).locator("button[type=submit]").click()
    # The wizard opens pre-filled, probes the server (npx may fetch the package first) and shows its tools.
    page.wait_for_selector("#probe-report", timeout=90_000)
    assert "connected" in page.inner_text("#probe-report") and "tool(s) found" in page.inner_text("#probe-report")
    assert field(page, "name").input_value() == "everything"
    assert field(page, "mode").input_value() == "none"
    assert dialog(page).locator("[name=secret]").count() == 0  # only the chosen mode's fields
    field(page, "mode").select_option("static")
    assert dialog(page).locator("[name=secret]").count() == 1
    field(page, "mode").select_option("none")
    screenshot(page, "wizard")
    dialog(page).locator("button[type=submit]").click()
    page.wait_for_selector("text=Server everything registered.")
    page.wait_for_url("**/servers")
    page.wait_for_selector("#content td >> text=everything")
    page.goto(warden.console + "/store")
    page.wait_for_selector("[data-template=github]")
    screenshot(page, "store")

    # Its tools are served at /mcp to the user's key, through the official MCP SDK (arguments and results
    # captured, for the log explorer's body viewer).
    with admin_api(warden) as api:
        captured = api.put("/api/settings/audit", json={"mcp_arguments": True, "mcp_results": True})
        assert captured.status_code == 200, captured.text
        deadline = time.monotonic() + 150  # npx may fetch the package first
        while api.get("/api/mcp/servers/everything").json()["health"] != "healthy":
            assert time.monotonic() < deadline, api.get("/api/mcp/servers/everything").json()
            time.sleep(0.5)
    # Playwright's sync API runs an event loop in this thread: the SDK's client gets a thread of its own.
    with ThreadPoolExecutor(1) as thread:
        echoed = thread.submit(anyio.run, call_echo, warden.gateway + "/mcp", secret).result(timeout=60)
    assert echoed == "Echo: from the console journey"
    open_page(page, warden, "/servers", "[data-health=healthy]")
    screenshot(page, "servers")

    # A server whose calls run with each user's own token: registered through the wizard from its URL, then
    # the user connects their account on the connections page and their calls present it.
    with served_plain_upstream() as notes_url:
        page.click("#new-server")
        field(page, "url").fill(notes_url)
        dialog(page).locator("button[type=submit]").click()
        page.wait_for_selector("#probe-report")
        field(page, "name").fill("notes")
        field(page, "mode").select_option("personal_token")
        assert dialog(page).locator("[name=secret]").count() == 0  # the token is each user's, not the form's
        dialog(page).locator("button[type=submit]").click()
        page.wait_for_selector("text=Server notes registered.")
        page.click("#nav >> text=Connections")
        row = page.locator('#connections tr[data-server="notes"]')
        row.wait_for()
        assert row.locator(".state").inner_text() == "needs authorization"
        row.locator('input[aria-label="Account label for notes"]').fill("work")
        row.locator('input[aria-label="Personal token for notes"]').fill("pat-of-the-journey")
        row.get_by_role("button", name="Add token").click()
        row.locator("text=work (default): connected").wait_for()
        assert "pat-of-the-journey" not in page.content()  # never shown back
        screenshot(page, "connections")
        with ThreadPoolExecutor(1) as thread:
            presented = thread.submit(anyio.run, call_credentials, warden.gateway + "/mcp", secret).result(timeout=60)
        assert presented == "Bearer pat-of-the-journey"

    # The admin finds the call in the log explorer, with its timeline and captured bodies.
    page.click("#logout")
    page.wait_for_url("**/login")
    sign_in(page, warden.console, ADMIN, STRONG_PASSWORD)
    deadline = time.monotonic() + 10  # events are stored in batches, within about a quarter of a second
    while True:
        open_page(page, warden, "/logs?server=everything", "#content h1")
        if page.locator("#content .event-link").count() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    screenshot(page, "logs")
    page.click("#content .event-link >> nth=0")
    page.wait_for_selector("dialog[open] >> text=Tool call timeline")
    assert "everything__echo" in dialog(page).inner_text()
    assert "from the console journey" in dialog(page).locator("pre >> nth=0").inner_text()  # the arguments
    screenshot(page, "log-event")
    page.keyboard.press("Escape")

    # ... and on the live dashboard (the feed sends the last minute's events first, then stats).
    open_page(page, warden, "/dashboard", "#health")
    page.wait_for_selector("#recent-events li >> text=tools/call:everything__echo", timeout=15_000)
    page.wait_for_selector("#requests-chart svg rect", timeout=15_000)
    assert page.inner_text("#kpi-requests") != "…"
    health = page.inner_text("#health")
    assert "Database" in health and "MCP · everything" in health
    screenshot(page, "dashboard")


async def call_echo(url: str, secret: str) -> str:
    async with mcp_client(url, secret) as session:
        result = await session.call_tool("everything__echo", {"message": "from the console journey"})
        assert not result.is_error
        return str(result.content[0].text)  # type: ignore[union-attr]


async def call_credentials(url: str, secret: str) -> str | None:
    """What the notes server saw the caller present (its ``credentials`` tool reports it)."""
    async with mcp_client(url, secret) as session:
        result = await session.call_tool("notes__credentials", {})
        assert not result.is_error, result
        assert result.structured_content is not None
        return result.structured_content["authorization"]  # type: ignore[no-any-return]


def test_a_viewer_is_refused_admin_pages_in_the_browser_and_by_the_api(page: Page, warden: WardenProcess) -> None:
    with admin_api(warden) as api:
        if api.get("/api/setup").json().get("required"):
            pytest.fail("the first journey sets the installation up")
        viewer_role = next(r["id"] for r in api.get("/api/roles").json()["items"] if r["name"] == "viewer")
        created = api.post("/api/users", json={"email": VIEWER, "password": STRONG_PASSWORD, "roles": [viewer_role]})
        assert created.status_code == 201, created.text
        # The admin sees the settings page (screenshot for the README).
        admin_page = page.context.browser.new_context(viewport=LAPTOP).new_page()  # type: ignore[union-attr, arg-type]
        sign_in(admin_page, warden.console, ADMIN, STRONG_PASSWORD)
        open_page(admin_page, warden, "/settings", "#content form")
        screenshot(admin_page, "settings")
        # Refused settings are named at their field and nothing of the form is saved.
        before = api.get("/api/settings/audit").json()
        admin_page.check("#content [name=mcp_results]")
        admin_page.fill("#content [name=body_max_bytes]", "10")
        admin_page.fill("#content [name=redaction_patterns]", "ticket=TICKET-[0-9]+")
        admin_page.click("#content form >> nth=0 >> button[type=submit]")
        error = admin_page.locator("#content [data-field=body_max_bytes] .field-error")
        error.wait_for()
        assert "1024" in error.inner_text()
        assert api.get("/api/settings/audit").json() == before
        admin_page.fill("#content [name=body_max_bytes]", "2048")
        admin_page.click("#content form >> nth=0 >> button[type=submit]")
        admin_page.wait_for_selector("text=Settings saved.")
        after = api.get("/api/settings/audit").json()
        assert after["mcp_results"] and after["body_max_bytes"] == 2048
        assert after["redaction_patterns"] == [{"name": "ticket", "pattern": "TICKET-[0-9]+"}]
        # Audit retention: a line that is no kind=days is refused at its field; saved, the API holds it.
        retention = admin_page.locator("#retention-settings")
        retention.locator("[name=retention_days]").fill("400")
        retention.locator("[name=retention_days_by_kind]").fill("admin=730\nmcp: 90")
        retention.locator("button[type=submit]").click()
        retention.locator("[data-field=retention_days_by_kind] .field-error").wait_for()
        assert api.get("/api/settings/retention").json()["retention_days"] == 365
        retention.locator("[name=retention_days_by_kind]").fill("admin=730\nmcp=90")
        retention.locator("button[type=submit]").click()
        kept = {"retention_days": 400, "retention_days_by_kind": {"admin": 730, "mcp": 90}}
        assert wait_until(lambda: api.get("/api/settings/retention").json() == kept, 10, 0.1)
        # The quota fail mode and alert thresholds: words and out-of-range numbers refused at their field.
        quotas = admin_page.locator("#quota-settings")
        for typed, said in (("50, lots", "only numbers"), ("50, 2000", "between 0 and 1000")):
            quotas.locator("[name=fail_mode]").select_option("closed")
            quotas.locator("[name=alert_thresholds]").fill(typed)
            quotas.locator("button[type=submit]").click()
            refused = quotas.locator("[data-field=alert_thresholds] .field-error")
            refused.wait_for()
            assert said in refused.inner_text()
            assert api.get("/api/settings/quotas").json() == {"fail_mode": "open",
                                                               "alert_thresholds": [50.0, 80.0, 95.0, 100.0]}
        quotas.locator("[name=alert_thresholds]").fill("90, 60")
        quotas.locator("button[type=submit]").click()
        saved = {"fail_mode": "closed", "alert_thresholds": [60.0, 90.0]}
        assert wait_until(lambda: api.get("/api/settings/quotas").json() == saved, 10, 0.1)
        admin_page.context.close()

    sign_in(page, warden.console, VIEWER, STRONG_PASSWORD)
    page.wait_for_selector("#nav a")
    assert "Settings" not in page.inner_text("#nav")
    answer = page.goto(warden.console + "/settings")
    assert answer is not None and answer.status == 403
    assert "Not allowed" in page.inner_text("h1")

    # Read-only pages show no changing controls.
    open_page(page, warden, "/users", "#content table")
    assert page.locator("#new-user").count() == 0
    assert page.locator("#content button >> text=Delete").count() == 0

    # The viewer reads the logs but not the bodies captured with them.
    open_page(page, warden, "/logs?server=everything", "#content .event-link")
    assert page.locator("#content [name=q]").count() == 0
    page.click("#content .event-link >> nth=0")
    page.wait_for_selector("dialog[open] >> text=Tool call timeline")
    assert "needs audit:read_bodies" in dialog(page).inner_text()
    assert "from the console journey" not in dialog(page).inner_text()
    event_id = page.evaluate("() => document.querySelector('dialog[open] pre').textContent")
    page.keyboard.press("Escape")

    # And the API refuses the viewer's session whatever the page shows.
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "warden_csrf")
    session = {c["name"]: c["value"] for c in page.context.cookies()}
    with httpx.Client(base_url=warden.console, cookies=session, headers={"x-csrf-token": csrf}) as viewer:
        assert viewer.get("/api/settings/audit").status_code == 403
        assert viewer.put("/api/settings/audit", json={"mcp_results": True}).status_code == 403
        assert viewer.post("/api/users", json={"email": "x@example.com"}).status_code == 403
        assert viewer.get("/api/users").status_code == 200
        event = json.loads(event_id)
        assert viewer.get(f"/api/audit/events/{event['id']}").status_code == 200
        assert viewer.get(f"/api/audit/events/{event['id']}/bodies").status_code == 403
        pages = [p["path"] for p in viewer.get("/api/console/pages").json()["items"]]
        assert "/settings" not in pages and "/users" in pages


def test_the_console_speaks_chinese_and_switches_theme(page: Page, warden: WardenProcess) -> None:
    page.add_init_script("localStorage.setItem('warden.language', 'zh')")
    sign_in(page, warden.console, ADMIN, STRONG_PASSWORD)
    page.wait_for_selector("#nav a")
    assert "用户" in page.inner_text("#nav") and page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("#logout") == "退出登录"
    page.click("#theme")  # system -> light
    page.click("#theme")  # light -> dark
    assert page.get_attribute("html", "data-theme") == "dark"
    page.reload()
    page.wait_for_selector("#nav a")
    assert page.get_attribute("html", "data-theme") == "dark"  # kept in this browser
    screenshot(page, "home-zh-dark")


def test_unknown_console_paths_are_404(warden: WardenProcess) -> None:
    assert httpx.get(warden.console + "/no-such-page").status_code == 404


def test_a_team_scoped_auditor_sees_the_team_s_logs_and_dashboard(page: Page, warden: WardenProcess) -> None:
    with admin_api(warden) as api:
        team = next(t for t in api.get("/api/teams").json()["items"] if t["name"] == "Platform")
        manager = next(r["id"] for r in api.get("/api/roles").json()["items"] if r["name"] == "team_manager")
        lead = api.post("/api/users", json={"email": "lead@example.com", "password": STRONG_PASSWORD})
        assert lead.status_code == 201, lead.text
        assigned = api.post(f"/api/users/{lead.json()['id']}/roles", json={"role_id": manager, "team_id": team["id"]})
        assert assigned.status_code == 201, assigned.text
    sign_in(page, warden.console, "lead@example.com", STRONG_PASSWORD)
    page.wait_for_selector("#nav a")
    open_page(page, warden, "/logs", "#content h1")
    page.wait_for_selector("#content table, #content .empty")
    assert page.locator("#content .error:visible").count() == 0
    open_page(page, warden, "/dashboard", "#health")
    page.wait_for_selector("#requests-chart svg", timeout=15_000)  # the team's live feed opened and spoke
    assert page.locator("#content .error:visible").count() == 0
