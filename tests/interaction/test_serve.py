"""``warden serve`` as a process: both listeners, readiness, graceful stop, start-up failures, no secrets leaked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import STRONG_PASSWORD
from tests.interaction.process import WardenProcess, base_env, free_port, warden_command

ADMIN = "admin@example.com"


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(warden_command(*args), env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_serve_answers_on_both_ports_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", "", WARDEN_METRICS_TOKEN="scrape-" + "m" * 20)
    del env["WARDEN_DATABASE_URL"]  # the embedded default
    warden = WardenProcess(env, tmp_path / "warden.log").start()
    try:
        ready = httpx.get(warden.gateway + "/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["database"]["status"] == "ok"
        assert httpx.get(warden.gateway + "/health/live").json()["status"] == "ok"
        assert "warden_http_requests_total" in httpx.get(warden.gateway + "/metrics", headers={
            "authorization": "Bearer scrape-" + "m" * 20}).text
        login = httpx.get(warden.console + "/login", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/setup"
        assert httpx.get(warden.console + "/health/ready").status_code == 404  # health lives on the gateway
        assert httpx.get(warden.gateway + "/api/users").status_code == 404  # management lives on the console
    finally:
        assert warden.stop() == 0
    assert (tmp_path / "data" / "warden.db").exists()


def test_bad_configuration_exits_non_zero_naming_the_key(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", "", WARDEN_SERVER_GATEWAY_PORT="eighty")
    result = run_cli(env, "serve")
    assert result.returncode == 2
    assert "server.gateway_port" in result.stderr and "Traceback" not in result.stderr
    check = run_cli(env, "config", "check")
    assert check.returncode == 2 and "server.gateway_port" in check.stderr
    config_file = tmp_path / "warden.yaml"
    config_file.write_text("database: {pool_size: 0}\n")
    ok_env = base_env(tmp_path / "data", "")
    result = run_cli(ok_env, "--config", str(config_file), "config", "check")
    assert result.returncode == 2 and "database.pool_size" in result.stderr


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("WARDEN_DATABASE_URL", "postgresql://127.0.0.1:{port}/nothing", "database"),
    ("WARDEN_REDIS_URL", "redis://127.0.0.1:{port}/0", "redis"),
    ("WARDEN_SECRET_KEY", "v1:tooshort", "secret key"),
])
def test_start_up_names_the_dependency_that_failed(tmp_path: Path, variable: str, value: str, named: str) -> None:
    env = base_env(tmp_path / "data", "", **{variable: value.format(port=free_port())})
    if variable != "WARDEN_DATABASE_URL":
        del env["WARDEN_DATABASE_URL"]
    result = run_cli(env, "serve", timeout=30)
    assert result.returncode == 3
    assert f"start-up failed: {named}" in result.stderr
    assert "Traceback" not in result.stderr


def test_headless_setup_then_second_setup_is_refused(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", "", WARDEN_ADMIN_PASSWORD=STRONG_PASSWORD)
    del env["WARDEN_DATABASE_URL"]
    first = run_cli(env, "setup", "--email", ADMIN)
    assert first.returncode == 0, first.stderr
    second = run_cli(env, "setup", "--email", "other@example.com")
    assert second.returncode == 1 and "already complete" in second.stderr


def test_declared_keys_and_models_come_from_the_config_file(tmp_path: Path) -> None:
    secret = "wdn_" + "C" * 43
    config_file = tmp_path / "warden.yaml"
    config_file.write_text("""
providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${OPENAI_API_KEY}"}
models:
  - {name: gpt-4o-mini, routes: [{provider: openai, weight: 1}]}
  - {name: gpt-4o, routes: [{provider: openai}]}
api_keys:
  - {name: ci, owner: ci@example.com, secret: "${WARDEN_CI_KEY}", surfaces: [ai], allowed_models: [gpt-4o-mini]}
""")
    env = base_env(tmp_path / "data", "", WARDEN_CI_KEY=secret, OPENAI_API_KEY="sk-upstream",
                   WARDEN_CONFIG=str(config_file))
    del env["WARDEN_DATABASE_URL"]
    with WardenProcess(env, tmp_path / "warden.log") as warden:
        models = httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {secret}"})
        assert models.status_code == 200
        assert [m["id"] for m in models.json()["data"]] == ["gpt-4o-mini"]
        anthropic_style = httpx.get(warden.gateway + "/v1/models", headers={"x-api-key": secret})
        assert anthropic_style.status_code == 200


def test_keys_and_passwords_never_reach_logs_or_the_database_in_clear(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", "")
    del env["WARDEN_DATABASE_URL"]
    with WardenProcess(env, tmp_path / "warden.log") as warden:
        with httpx.Client(base_url=warden.console) as console:
            assert console.post("/api/setup", json={"email": ADMIN, "password": STRONG_PASSWORD}).status_code == 201
            csrf = console.post("/api/auth/login", json={"email": ADMIN, "password": STRONG_PASSWORD}).json()
            console.headers["x-csrf-token"] = csrf["csrf_token"]
            secret = console.post("/api/keys", json={"name": "k", "surfaces": ["ai"]}).json()["secret"]
            bad = console.post("/api/auth/login", json={"email": ADMIN, "password": "wrong-" + STRONG_PASSWORD})
            assert bad.status_code == 401
        ok = httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {secret}"})
        assert ok.status_code == 200
        assert httpx.get(warden.gateway + "/v1/models",
                         headers={"authorization": f"Bearer {secret}x"}).status_code == 401
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.name.startswith("warden.db"))
    logged = (tmp_path / "warden.log").read_bytes()
    for needle in (secret, secret[12:], STRONG_PASSWORD):
        assert needle.encode() not in stored
        assert needle.encode() not in logged


async def test_postgres_holds_no_key_or_password_in_clear(tmp_path: Path) -> None:
    from tests.conftest import create_postgres_database, drop_postgres_database

    name = await create_postgres_database()
    try:
        url = f"postgresql://127.0.0.1:5432/{name}"
        env = base_env(tmp_path / "data", url, WARDEN_ADMIN_PASSWORD=STRONG_PASSWORD)
        assert run_cli(env, "setup", "--email", ADMIN).returncode == 0
        created = run_cli(env, "keys", "create", "--owner", ADMIN, "--name", "k")
        assert created.returncode == 0, created.stderr
        secret = created.stdout.split('"secret": "')[1].split('"')[0]
        conn = await asyncpg.connect(url)
        try:
            tables = [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables"
                                                               " WHERE schemaname = 'public'")]
            dump = "".join([str(await conn.fetch(f'SELECT * FROM "{t}"')) for t in tables])
        finally:
            await conn.close()
        assert "api_keys" in tables
        assert secret not in dump and secret[12:] not in dump and STRONG_PASSWORD not in dump
    finally:
        await drop_postgres_database(name)
