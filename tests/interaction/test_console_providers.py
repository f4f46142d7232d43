"""The providers and models page in headless Chromium against ``warden serve`` and the fake providers: add
providers (only their type's fields), register a model, give it a second peer and weights (a refused weight is
marked at its input and nothing is saved), see the traffic the official OpenAI SDK sends split by peer beside
the weights with latency and a cost projection, and throw the kill switch (requests are refused at once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Page

from tests.ai.fake_providers import launched
from tests.browser import screenshot, signed_in_page
from tests.connections.conftest import PASSWORD, console_session, first_admin
from tests.interaction.process import WardenProcess, served

KEY = "wdn_" + "p" * 43
ADMIN = "ada@example.com"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with launched() as url:
        yield url


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("providers-page")
    with served(tmp, {
        "providers": [{"name": "house", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"}],
        "models": [{"name": "house-model", "routes": [{"provider": "house"}]}],
        "api_keys": [{"name": "sdk", "owner": ADMIN, "secret": KEY, "surfaces": ["ai"]}],
    }) as process:
        first_admin(process, ADMIN)
        yield process


@pytest.fixture
def page(warden: WardenProcess) -> Iterator[Page]:
    with signed_in_page(warden.console, ADMIN, PASSWORD) as page:
        yield page


def add_provider(page: Page, name: str, url: str) -> None:
    page.click("#new-provider")
    dialog = page.locator("dialog[open]")
    dialog.locator("[name=name]").fill(name)
    dialog.locator("[name=type]").select_option("bedrock")
    assert dialog.locator("[data-field=region]").is_visible()
    dialog.locator("[name=type]").select_option("openai_compatible")
    assert not dialog.locator("[data-field=region]").is_visible()  # only the chosen type's fields
    dialog.locator("[name=base_url]").fill(url)
    dialog.locator("[name=api_key]").fill("sk-fake")  # what the fake provider takes
    dialog.locator("button[type=submit]").click()
    page.wait_for_selector(f"text=Provider {name} saved.")


def test_weights_traffic_projection_and_the_kill_switch(page: Page, warden: WardenProcess, provider: str) -> None:
    page.goto(warden.console + "/providers")
    page.wait_for_selector("[data-model=house-model]")
    house = page.locator("[data-model=house-model]")
    # Defined in the configuration file: only its kill switch may be thrown here.
    assert house.locator(".save-routing").count() == 0 and house.locator("select[name=routing]").is_disabled()
    assert house.locator(".kill-switch").count() == 1

    add_provider(page, "alpha", provider + "/v1")
    add_provider(page, "beta", provider + "/v1")
    assert "sk-fake" not in page.content()  # a stored key is never shown
    page.click("#new-model")
    dialog = page.locator("dialog[open]")
    dialog.locator("[name=name]").fill("duo")
    dialog.locator("[name=provider]").select_option("alpha")
    dialog.locator("[name=input_price_per_million]").fill("1")
    dialog.locator("[name=output_price_per_million]").fill("2")
    dialog.locator("button[type=submit]").click()
    card = page.locator("[data-model=duo]")
    card.wait_for()

    # A second peer with weights; a weight above the limit is refused at its input and nothing is saved.
    card.locator("select.new-peer").select_option("beta")
    card.get_by_role("button", name="Add peer").click()
    card.locator('[data-peer=beta] input[aria-label="Output $ / 1M tokens · beta"]').fill("20")
    card.locator('[data-peer=alpha] input[aria-label="Weight · alpha"]').fill("5000")
    card.locator(".save-routing").click()
    card.locator('[data-path="routes.0.weight"][aria-invalid=true]').wait_for()
    assert "routes.0.weight" in card.locator(".error").inner_text()
    with console_session(warden, ADMIN) as api:
        assert [r["provider"] for r in api.get("/api/ai/models/duo").json()["routes"]] == ["alpha"]
    card.locator('[data-peer=alpha] input[aria-label="Weight · alpha"]').fill("3")
    card.locator(".save-routing").click()
    page.wait_for_selector("text=Routing of duo saved; every instance uses it at once.")
    with console_session(warden, ADMIN) as api:
        routes = api.get("/api/ai/models/duo").json()["routes"]
    assert [(r["provider"], r["weight"], r["output_price_per_million"]) for r in routes] == [
        ("alpha", 3, None), ("beta", 1, 20.0)]

    # The admin trail names who changed the routing, and what: the peers before and after.
    change = page.locator("#content tr", has=page.locator("code", has_text="PATCH /api/ai/models/{name}")).first
    deadline = time.monotonic() + 10  # the trail is written in batches, like every audit event
    while True:
        page.goto(warden.console + "/trail?outcome=ok")
        page.wait_for_selector("#content h1")
        if change.count() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    row = change.inner_text()
    assert ADMIN in row and "name=duo" in row and "routes.0.weight" in row
    change.locator(".event-link").click()
    weight = page.locator('dialog[open] .diff tr[data-field="routes.0.weight"]')
    weight.wait_for()
    assert (weight.locator("td.old").inner_text(), weight.locator("td.new").inner_text()) == ("1", "3")
    added = page.locator('dialog[open] .diff tr[data-field="routes.1"]')
    assert added.locator("td.old").inner_text() == "—" and '"beta"' in added.locator("td.new").inner_text()
    screenshot(page, "trail")
    page.keyboard.press("Escape")

    # Traffic from the official SDK, split by the weights: the page shows it by peer with latency and cost.
    sdk = openai.OpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0)
    for _ in range(40):
        sdk.chat.completions.create(model="duo", messages=[{"role": "user", "content": "hi"}])
    deadline = time.monotonic() + 15  # the audit log is written in batches
    while True:
        page.goto(warden.console + "/providers")
        card.wait_for()
        counts = {peer: int(card.locator(f"[data-peer={peer}] .peer-requests").inner_text())
                  for peer in ("alpha", "beta")}
        if sum(counts.values()) == 40 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sum(counts.values()) == 40 and min(counts.values()) > 0, counts  # 3:1 by chance: both served
    served_bar = card.locator(".traffic-row >> nth=1")
    assert "alpha" in served_bar.inner_text()
    assert card.locator(".sparkline path.line").count() == 1
    # The latest minute is the line's last point, also when the page's clock reads that minute's first second
    # (it fell off the end then).
    with console_session(warden, ADMIN) as api:
        minutes = api.get("/api/audit/usage", params={"surface": "ai", "group_by": "model", "period": "minute",
                                                      "model": "duo", "since": int(time.time()) - 3600}).json()
    latest = max(datetime.fromisoformat(row["period"].replace("Z", ":00+00:00")) for row in minutes["items"])
    for second in (0, 59):
        pinned = page.context.new_page()  # signed in too; its clock alone is pinned
        try:
            pinned.clock.set_fixed_time(latest + timedelta(seconds=second))
            pinned.goto(warden.console + "/providers")
            line = pinned.locator("[data-model=duo] .sparkline path.line")
            line.wait_for(state="attached")  # one point: a path of no size
            d = line.get_attribute("d") or ""
            assert d.split()[-1][1:].startswith("120.0,"), (second, d)
        finally:
            pinned.close()
    projection = card.locator(".projection").inner_text()
    assert "routed by these weights" in projection and "all to the cheapest peer" in projection, projection
    screenshot(page, "providers", card)

    # The kill switch: refused at once, back on just as fast.
    card.locator(".kill-switch").click()
    page.wait_for_selector("text=duo is switched off.")
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model="duo", messages=[{"role": "user", "content": "hi"}])
    assert "switched off" in str(refused.value)
    page.locator("[data-model=duo] .kill-switch").click()
    page.wait_for_selector("text=duo is switched on.")
    assert sdk.chat.completions.create(model="duo", messages=[{"role": "user", "content": "hi"}]).choices
