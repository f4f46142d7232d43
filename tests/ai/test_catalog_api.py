"""Providers and models through the management API of a real Warden: keys sealed and write-only, models usable
at once by the ``/v1`` routes, the kill switch effective at once (on one instance, and across two sharing
PostgreSQL and Redis), bad input refused naming the field."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml

from tests.ai.test_chat_completions import KEY, provider  # noqa: F401 - fixtures
from tests.conftest import REDIS_URL, eventually
from tests.connections.conftest import first_admin
from tests.interaction.process import WardenProcess, base_env, served, shared_secrets, wait_until

ADMIN = "wdn_" + "A" * 43
KEYS = [{"name": "all", "owner": "ada@example.com", "secret": KEY, "surfaces": ["ai"]},
        {"name": "admin", "owner": "ada@example.com", "secret": ADMIN, "surfaces": ["management"]}]


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[WardenProcess]:  # noqa: F811
    with served(tmp_path_factory.mktemp("catalog"), {
        "providers": [{"name": "fake", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"}],
        "models": [{"name": "house-file", "routes": [{"provider": "fake"}]}],
        "api_keys": KEYS,
    }) as process:
        first_admin(process, "ada@example.com")
        yield process


def admin(warden: WardenProcess) -> httpx.Client:
    return httpx.Client(base_url=warden.console, headers={"authorization": f"Bearer {ADMIN}"})


def ask(warden: WardenProcess, model: str) -> httpx.Response:
    return httpx.post(warden.gateway + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                      json={"model": model, "messages": [{"role": "user", "content": "Hi"}]})


def test_a_provider_and_model_added_through_the_api_serve_at_once(warden: WardenProcess,
                                                                 provider: str) -> None:  # noqa: F811
    with admin(warden) as api:
        added = api.post("/api/ai/providers", json={"name": "claude2", "type": "anthropic",
                                                    "base_url": provider + "/anthropic", "api_key": "sk-ant-fake"})
        assert added.status_code == 201, added.text
        assert added.json()["api_key_set"] is True and "api_key" not in added.json()
        assert "sk-ant-fake" not in api.get("/api/ai/providers").text
        model = api.post("/api/ai/models", json={"name": "team-claude", "aliases": ["tc"],
                                                 "routes": [{"provider": "claude2"}]})
        assert model.status_code == 201, model.text
    with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
        rows = db.execute("SELECT * FROM ai_providers").fetchall()
    assert rows and "sk-ant-fake" not in str(rows) and "sk-fake" not in str(rows)

    answer = ask(warden, "tc")
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == \
        "Hello from the fake provider."
    listed = httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {KEY}"}).json()["data"]
    assert {"team-claude", "house-file"} <= {m["id"] for m in listed}
    refused = httpx.get(warden.gateway + "/v1/models", headers={"authorization": "Bearer wdn_" + "z" * 43})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"  # OpenAI's shape

    def listing_audited() -> bool:  # written off the request path, within moments
        with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
            return bool(db.execute("SELECT count(*) FROM audit_events WHERE action = 'models.list'").fetchone()[0])

    assert wait_until(listing_audited, 5)


def test_the_kill_switch_takes_effect_at_once(warden: WardenProcess) -> None:
    with admin(warden) as api:
        assert ask(warden, "house-file").status_code == 200
        assert api.patch("/api/ai/models/house-file", json={"enabled": False}).json()["enabled"] is False
        refused = ask(warden, "house-file")  # the very next request
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_disabled"
        with anthropic.Anthropic(base_url=warden.gateway, api_key=KEY, max_retries=0) as sdk, \
                pytest.raises(anthropic.APIStatusError) as shaped:
            sdk.messages.create(model="house-file", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert shaped.value.status_code == 503 and shaped.value.body["type"] == "error"  # type: ignore[index]
        listed = httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {KEY}"}).json()
        assert "house-file" not in {m["id"] for m in listed["data"]}
        assert api.get("/api/ai/models/house-file").json()["enabled"] is False
        api.patch("/api/ai/models/house-file", json={"enabled": True})
        with openai.OpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0) as client:
            back = client.chat.completions.create(model="house-file", messages=[{"role": "user", "content": "x"}])
        assert back.choices[0].message.content


def test_bad_input_is_refused_naming_the_field(warden: WardenProcess) -> None:
    with admin(warden) as api:
        wrong_type = api.post("/api/ai/providers", json={"name": "x", "type": "nope"})
        assert wrong_type.status_code == 422, wrong_type.text
        assert wrong_type.json()["error"]["fields"][0]["field"] == "type"
        private = api.post("/api/ai/providers", json={"name": "inside", "type": "openai_compatible",
                                                      "base_url": "http://10.1.2.3/v1"})
        assert private.status_code == 422 and private.json()["error"]["fields"][0]["field"] == "base_url"
        unknown = api.post("/api/ai/models", json={"name": "m", "routes": [{"provider": "nowhere"}]})
        assert unknown.status_code == 422 and unknown.json()["error"]["fields"][0]["field"] == "routes[0].provider"
        assert api.patch("/api/ai/models/house-file", json={"routing": "cost"}).status_code == 409  # from the file
        assert api.delete("/api/ai/providers/fake").status_code == 409
        assert api.get("/api/ai/models/none-such").status_code == 404
    with httpx.Client(base_url=warden.console, headers={"authorization": f"Bearer {KEY}"}) as not_admin:
        assert not_admin.get("/api/ai/providers").status_code in (401, 403)


@pytest.fixture
def instances(tmp_path: Path, postgres_url: str, provider: str) -> Iterator[tuple[WardenProcess, WardenProcess]]:  # noqa: F811
    config = tmp_path / "warden.yaml"
    config.write_text(yaml.safe_dump({
        "providers": [{"name": "fake", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"}],
        "models": [{"name": "house-file", "routes": [{"provider": "fake"}]}], "api_keys": KEYS}))
    secrets = shared_secrets()
    envs = [base_env(tmp_path / name, postgres_url, WARDEN_REDIS_URL=REDIS_URL, WARDEN_CONFIG=str(config),
                     **secrets) for name in ("a", "b")]
    with WardenProcess(envs[0], tmp_path / "a.log") as a, WardenProcess(envs[1], tmp_path / "b.log") as b:
        first_admin(a, "ada@example.com")
        yield a, b


async def test_the_kill_switch_reaches_every_instance(instances: tuple[WardenProcess, WardenProcess]) -> None:
    a, b = instances
    assert ask(b, "house-file").status_code == 200
    with admin(a) as api:
        assert api.patch("/api/ai/models/house-file", json={"enabled": False}).status_code == 200

    async def refused_on_b() -> bool:
        return ask(b, "house-file").status_code == 503

    assert await eventually(refused_on_b, within=2)
