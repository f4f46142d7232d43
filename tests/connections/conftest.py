"""A real OAuth authorization server (npm oidc-provider) and an upstream MCP server that requires its tokens."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.interaction.process import WardenProcess, free_port, helper, stop_process, wait_until
from tests.mcp.conftest import served_plain_upstream

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PASSWORD = "correct horse 9 battery"


@contextmanager
def console_session(warden: WardenProcess, email: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A signed-in console session (cookies and the CSRF header), as the browser holds it."""
    with httpx.Client(base_url=warden.console, timeout=30) as client:
        login = client.post("/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        client.headers["x-csrf-token"] = client.cookies["warden_csrf"]
        yield client


def first_admin(warden: WardenProcess, email: str) -> None:
    """Finish first-run setup with ``email`` as the super admin (password PASSWORD)."""
    answer = httpx.post(warden.console + "/api/setup", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def plain_upstream() -> Iterator[str]:
    """tests.mcp.plain_upstream over Streamable HTTP (JSON answers): its ``credentials`` tool reports what
    the caller sent to authenticate."""
    with served_plain_upstream() as url:
        yield url


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class OAuthWorld:
    issuer: str
    upstream: str  # the protected MCP server's URL (the resource)

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.issuer}/test/stats").json()["refreshes"])

    def revoke(self, account: str) -> None:
        httpx.post(f"{self.issuer}/test/revoke", params={"account": account}).raise_for_status()

    def seen(self) -> list[dict[str, str]]:
        return list(httpx.get(self.upstream.removesuffix("/mcp") + "/record").json()["seen"])


@pytest.fixture(scope="module")
def oauth_world() -> Iterator[OAuthWorld]:
    if not (HERE / "node_modules" / "oidc-provider").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True, timeout=600)
    as_port, upstream_port = free_port(), free_port()
    issuer, upstream = f"http://127.0.0.1:{as_port}", f"http://127.0.0.1:{upstream_port}/mcp"
    server = helper(subprocess.Popen(
        ["node", "authorization_server.mjs"], cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "PORT": str(as_port), "RESOURCE": upstream, "ACCESS_TTL": "4",
             "REFRESHED_TTL": "60"},
        start_new_session=True))
    protected = helper(subprocess.Popen(
        [sys.executable, "-m", "tests.connections.protected_upstream", str(upstream_port), issuer], cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    try:
        assert wait_until(lambda: _answers(f"{issuer}/.well-known/openid-configuration"), 30), "no AS"
        assert wait_until(lambda: _answers(upstream.removesuffix("/mcp") + "/record"), 30), "no upstream"
        yield OAuthWorld(issuer, upstream)
    finally:
        stop_process(protected)
        stop_process(server)
