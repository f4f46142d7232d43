"""Every change made in the console of one Warden instance takes effect on another without a restart: two
``warden serve`` processes sharing PostgreSQL and Redis; each change goes through instance A's management API
(what the console's pages call) and is observed on instance B, through its gateway or its own answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

from tests.ai.fake_providers import launched
from tests.conftest import REDIS_URL, STRONG_PASSWORD, create_postgres_database, drop_postgres_database
from tests.connections.conftest import console_session, first_admin
from tests.interaction.process import WardenProcess, base_env, shared_secrets, wait_until
from tests.mcp.conftest import mcp_client, served_plain_upstream

ADMIN = "ada@example.com"
AGENT = "wdn_" + "w" * 43


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str]]:
    with launched() as provider, served_plain_upstream() as mcp:
        yield provider, mcp


@pytest.fixture(scope="module")
def shared_database() -> Iterator[str]:
    name = anyio.run(create_postgres_database)
    try:
        yield f"postgresql://127.0.0.1:5432/{name}"
    finally:
        anyio.run(drop_postgres_database, name)


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory, shared_database: str, upstreams: tuple[str, str]
              ) -> Iterator[tuple[WardenProcess, WardenProcess]]:
    tmp: Path = tmp_path_factory.mktemp("two-consoles")
    config = tmp / "warden.yaml"
    config.write_text(yaml.safe_dump({"api_keys": [
        {"name": "agent", "owner": ADMIN, "secret": AGENT, "surfaces": ["ai", "mcp"]}]}))
    secrets = shared_secrets()
    envs = [base_env(tmp / name, shared_database, WARDEN_REDIS_URL=REDIS_URL, WARDEN_CONFIG=str(config), **secrets)
            for name in ("a", "b")]
    with WardenProcess(envs[0], tmp / "a.log") as a, WardenProcess(envs[1], tmp / "b.log") as b:
        first_admin(a, ADMIN)
        yield a, b


def chat(instance: WardenProcess, model: str) -> httpx.Response:
    return httpx.post(instance.gateway + "/v1/chat/completions", headers={"authorization": f"Bearer {AGENT}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=10)


def test_settings_changed_on_one_instance_apply_on_the_other(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    a, b = instances
    with console_session(a, ADMIN) as on_a, console_session(b, ADMIN) as on_b:
        assert on_a.put("/api/settings/audit", json={"mcp_results": True, "body_max_bytes": 4096}).status_code == 200
        assert on_a.put("/api/settings/quotas", json={"fail_mode": "closed", "alert_thresholds": [70]}
                        ).status_code == 200
        assert on_a.put("/api/settings/retention", json={"retention_days": 90}).status_code == 200

        def applied() -> bool:  # what B answers is what B applies (its settings in memory)
            audit, quotas = on_b.get("/api/settings/audit").json(), on_b.get("/api/settings/quotas").json()
            retention = on_b.get("/api/settings/retention").json()
            return bool(audit["mcp_results"] and audit["body_max_bytes"] == 4096 and quotas["fail_mode"] == "closed"
                        and retention["retention_days"] == 90)

        assert wait_until(applied, 5)


def test_providers_and_routes_changed_on_one_instance_route_on_the_other(
        instances: tuple[WardenProcess, WardenProcess], upstreams: tuple[str, str]) -> None:
    a, b = instances
    provider = upstreams[0]
    with console_session(a, ADMIN) as on_a:
        for name, url in (("live", provider + "/v1"), ("broken", provider + "/fail/v1")):
            added = on_a.post("/api/ai/providers", json={"name": name, "type": "openai_compatible", "base_url": url,
                                                         "api_key": "sk-fake"})
            assert added.status_code == 201, added.text
        assert on_a.post("/api/ai/models", json={"name": "shared-model", "routes": [{"provider": "live"}]}
                         ).status_code == 201

        def routed(status: int) -> bool:
            return chat(b, "shared-model").status_code == status

        assert wait_until(lambda: routed(200), 5)
        # A new route: every request to the failing peer only.
        assert on_a.patch("/api/ai/models/shared-model", json={"routes": [{"provider": "broken"}]}).status_code == 200
        assert wait_until(lambda: routed(502), 5)
        assert on_a.patch("/api/ai/models/shared-model", json={"enabled": False}).status_code == 200
        assert wait_until(lambda: routed(503), 5)


def test_a_key_revoked_and_a_role_narrowed_on_one_instance_hold_on_the_other(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    a, b = instances
    with console_session(a, ADMIN) as on_a:
        key = on_a.post("/api/keys", json={"name": "temporary", "surfaces": ["ai"]}).json()
        auth = {"authorization": f"Bearer {key['secret']}"}
        assert httpx.get(b.gateway + "/v1/models", headers=auth).status_code == 200
        role = on_a.post("/api/roles", json={"name": "log reader", "permissions": ["audit:read"]}).json()
        user = on_a.post("/api/users", json={"email": "reader@example.com", "password": STRONG_PASSWORD,
                                              "roles": [role["id"]]}).json()
        assert user["email"] == "reader@example.com"
        with console_session(b, "reader@example.com", STRONG_PASSWORD) as reader_on_b:
            assert reader_on_b.get("/api/audit/events?limit=1").status_code == 200
            assert on_a.post(f"/api/keys/{key['id']}/revoke").status_code == 200
            assert on_a.patch(f"/api/roles/{role['id']}", json={"permissions": ["users:read"]}).status_code == 200

            def held() -> bool:
                return (httpx.get(b.gateway + "/v1/models", headers=auth).status_code == 401
                        and reader_on_b.get("/api/audit/events?limit=1").status_code == 403)

            assert wait_until(held, 5)


def test_mcp_servers_and_access_rules_changed_on_one_instance_serve_on_the_other(
        instances: tuple[WardenProcess, WardenProcess], upstreams: tuple[str, str]) -> None:
    a, b = instances

    def tools_on_b() -> set[str]:
        async def listed() -> set[str]:
            async with mcp_client(b.gateway + "/mcp", AGENT) as session:
                return {tool.name for tool in (await session.list_tools()).tools}

        return anyio.run(listed)

    with console_session(a, ADMIN) as on_a:
        registered = on_a.post("/api/mcp/servers", json={"name": "shared", "transport": "streamable_http",
                                                          "url": upstreams[1], "label": "Shared tools"})
        assert registered.status_code == 201, registered.text

        assert wait_until(lambda: {"shared__echo", "shared__weather"} <= tools_on_b(), 10, 0.2)
        keys: list[dict[str, Any]] = on_a.get("/api/keys").json()["items"]
        agent = next(k for k in keys if k["name"] == "agent")
        assert on_a.post("/api/mcp/access-rules", json={"subject_kind": "api_key", "subject_id": agent["id"],
                                                        "pattern": "shared__echo"}).status_code == 201

        assert wait_until(lambda: tools_on_b() == {"shared__echo"}, 5, 0.2)

