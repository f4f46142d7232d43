"""Two Warden instances sharing PostgreSQL and Redis refresh a user's upstream token once between them."""

from __future__ import annotations

from pathlib import Path

import anyio
import yaml

from tests.conftest import REDIS_URL
from tests.connections.conftest import OAuthWorld, console_session, first_admin
from tests.connections.test_oauth_links import SCOPES, authorize_at_server, whoami
from tests.interaction.process import WardenProcess, base_env, shared_secrets

ALICE = "wdn_" + "t" * 43


def link_twin(warden: WardenProcess) -> None:
    """Set up the first admin and link their account through ``warden``'s console."""
    first_admin(warden, "twin@example.com")
    with console_session(warden, "twin@example.com") as console:
        started = console.post("/api/connections/notes/authorize", json={"label": "work"}).json()
        assert console.get(authorize_at_server(started["authorize_url"], "twin")).status_code == 200


async def test_a_token_expiring_under_calls_on_two_instances_is_refreshed_once(
        tmp_path: Path, postgres_url: str, oauth_world: OAuthWorld) -> None:
    config = tmp_path / "warden.yaml"
    config.write_text(yaml.safe_dump({
        "mcp": {"refresh_ahead_seconds": 1},
        "mcp_servers": [{"name": "notes", "transport": "streamable_http", "url": oauth_world.upstream,
                         "timeout_seconds": 10, "auth": {"mode": "oauth", "ownership": "per_user",
                                                         "requires_user_auth": True, "scopes": SCOPES}}],
        "api_keys": [{"name": "alice", "owner": "twin@example.com", "secret": ALICE, "surfaces": ["mcp"]}],
    }))
    secrets = shared_secrets()
    env_a = base_env(tmp_path / "a", postgres_url, WARDEN_REDIS_URL=REDIS_URL, WARDEN_CONFIG=str(config), **secrets)
    env_b = base_env(tmp_path / "b", postgres_url, WARDEN_REDIS_URL=REDIS_URL, WARDEN_CONFIG=str(config), **secrets)
    with WardenProcess(env_a, tmp_path / "a.log") as a, WardenProcess(env_b, tmp_path / "b.log") as b:
        link_twin(a)
        assert await whoami(a, ALICE) == "twin" and await whoami(b, ALICE) == "twin"

        await anyio.sleep(4.5)  # the 4-second access token expires
        before = oauth_world.stats().get("twin", 0)
        answers: list[str] = []

        async def call(instance: WardenProcess) -> None:
            answers.append(await whoami(instance, ALICE))

        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(call, (a, b)[i % 2])
        assert answers == ["twin"] * 20
        assert oauth_world.stats().get("twin", 0) - before == 1
