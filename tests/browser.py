"""Debian's headless Chromium driven by Playwright (``playwright install`` cannot download here), and the
console steps the browser tests share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, sync_playwright

from tests.services import CHROMIUM

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
LAPTOP = {"width": 1280, "height": 800}


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, console: str, email: str, password: str) -> None:
    page.goto(console + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(console + "/")


def screenshot(page: Page, name: str, part: Locator | None = None) -> None:
    """The README shows these: each main page as the tests left it (or with ``part`` of it at the top)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if part is not None:
        part.evaluate("node => node.scrollIntoView()")
    else:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@contextmanager
def signed_in_page(console: str, email: str, password: str) -> Iterator[Page]:
    """A laptop-sized page of a fresh browser, signed in to ``console``; it accepts the confirmations the
    console asks for (removing, switching off)."""
    with chromium() as browser:
        page = browser.new_context(viewport=LAPTOP).new_page()  # type: ignore[arg-type]
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, console, email, password)
        yield page
