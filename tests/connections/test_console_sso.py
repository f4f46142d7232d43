"""Console sign-in through OpenID Connect against the tests' real provider (oidc-provider): PKCE, nonce, a
verified ID token; users found by email then by subject, created when allowed; group claims granting roles
and team memberships, taken back when the group goes; refusals for unknown users and foreign callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.connections.conftest import OAuthWorld, console_session, first_admin
from tests.interaction.process import WardenProcess, free_port, served


@contextmanager
def with_sso(directory: Path, oauth_world: OAuthWorld, **oidc: object) -> Iterator[WardenProcess]:
    """A Warden whose console signs in with the tests' provider (a client registered for it by DCR)."""
    port = free_port()
    registered = httpx.post(f"{oauth_world.issuer}/reg", json={
        "redirect_uris": [f"http://127.0.0.1:{port}/auth/oidc/callback"], "grant_types": ["authorization_code"],
        "response_types": ["code"], "token_endpoint_auth_method": "client_secret_basic"})
    assert registered.status_code == 201, registered.text
    client = registered.json()
    with served(directory, {"security": {"oidc": {
        "issuer": oauth_world.issuer, "client_id": client["client_id"], "client_secret": client["client_secret"],
        "scopes": ["openid", "email", "groups"], **oidc}}}, WARDEN_SERVER_CONSOLE_PORT=str(port)) as process:
        yield process


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, oauth_world: OAuthWorld) -> Iterator[WardenProcess]:
    with with_sso(tmp_path_factory.mktemp("console-sso"), oauth_world, create_users=True, groups_claim="groups",
                  group_roles={"warden-admins": "admin"}, group_teams={"platform": "platform"}) as process:
        first_admin(process, "root@example.com")
        with console_session(process, "root@example.com") as admin:
            assert admin.post("/api/teams", json={"name": "platform"}).status_code == 201
        yield process


@contextmanager
def sso(warden: WardenProcess, account: str, groups: str = "") -> Iterator[tuple[httpx.Response, httpx.Client]]:
    """Sign in as ``account`` at the provider (with ``groups``), as a browser would: the callback's answer,
    and the browser (its cookies)."""
    with httpx.Client(timeout=30) as browser:
        response = browser.get(warden.console + "/auth/oidc/login")
        headers = {"x-test-user": account, "x-test-groups": groups}
        while response.status_code in (302, 303):
            location = urljoin(str(response.url), response.headers["location"])
            response = browser.get(location, headers=headers if not location.startswith(warden.console) else None)
        yield response, browser


def me(browser: httpx.Client, warden: WardenProcess) -> dict[str, object]:
    answer = browser.get(warden.console + "/api/auth/me")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_login_page_offers_single_sign_on(warden: WardenProcess) -> None:
    methods = httpx.get(warden.console + "/api/auth/methods").json()
    assert methods["password"] is True and methods["oidc"]["login_url"] == "/auth/oidc/login"


def test_a_new_user_is_created_and_gets_the_roles_and_teams_of_their_groups(warden: WardenProcess) -> None:
    with sso(warden, "carol", "warden-admins platform") as (landed, browser):
        assert landed.status_code == 200 and 'url=/"' in landed.text
        identity = me(browser, warden)
        user = identity["user"]
        assert isinstance(user, dict) and user["email"] == "carol@example.com"
        assert "users:manage" in identity["permissions"]  # type: ignore[operator]
        teams = browser.get(warden.console + "/api/teams").json()["items"]
        assert [t["name"] for t in teams] == ["platform"]

    # The groups went away at the provider: the next sign-in takes back what they granted.
    with sso(warden, "carol", "") as (again, browser):
        assert again.status_code == 200
        assert "users:manage" not in me(browser, warden)["permissions"]  # type: ignore[operator]


def test_an_existing_user_signs_in_by_email(warden: WardenProcess) -> None:
    with sso(warden, "root") as (landed, browser):
        assert landed.status_code == 200
        user = me(browser, warden)["user"]
        assert isinstance(user, dict) and user["email"] == "root@example.com"


def test_a_callback_from_another_browser_is_refused(warden: WardenProcess) -> None:
    with httpx.Client(timeout=30) as victim:
        start = victim.get(warden.console + "/auth/oidc/login")
        location = start.headers["location"]
        with httpx.Client(timeout=30) as provider_side:
            response = provider_side.get(location, headers={"x-test-user": "mallory"})
            while response.status_code in (302, 303) and not response.headers["location"].startswith(
                    warden.console):
                response = provider_side.get(urljoin(str(response.url), response.headers["location"]),
                                             headers={"x-test-user": "mallory"})
            callback = response.headers["location"]
        with httpx.Client(timeout=30) as elsewhere:  # no binding cookie: not the browser that started
            refused = elsewhere.get(callback)
    assert refused.status_code == 403 and "another browser" in refused.text
    assert "warden_session" not in refused.cookies


def test_forged_state_is_refused(warden: WardenProcess) -> None:
    refused = httpx.get(warden.console + "/auth/oidc/callback", params={"state": "forged", "code": "x"})
    assert refused.status_code == 403 and "expired" in refused.text


def test_without_create_users_an_unknown_email_is_refused(tmp_path: Path, oauth_world: OAuthWorld) -> None:
    with with_sso(tmp_path, oauth_world) as warden, sso(warden, "stranger") as (refused, browser):
        assert refused.status_code == 403 and "no Warden user has the email stranger@example.com" in refused.text
        assert browser.get(warden.console + "/api/auth/me").status_code == 401
