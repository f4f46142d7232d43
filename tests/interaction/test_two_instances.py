"""Two ``warden serve`` processes sharing PostgreSQL and Redis behave as one."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import REDIS_URL, STRONG_PASSWORD
from tests.interaction.process import WardenProcess, base_env, shared_secrets, wait_until


def test_revoke_on_one_instance_is_401_on_the_other_within_a_second(tmp_path: Path, postgres_url: str) -> None:
    secrets = shared_secrets()
    env_a = base_env(tmp_path / "a", postgres_url, WARDEN_REDIS_URL=REDIS_URL, **secrets)
    env_b = base_env(tmp_path / "b", postgres_url, WARDEN_REDIS_URL=REDIS_URL, **secrets)
    with WardenProcess(env_a, tmp_path / "a.log") as a, WardenProcess(env_b, tmp_path / "b.log") as b:
        assert httpx.get(b.gateway + "/health/ready").json()["checks"]["redis"]["status"] == "ok"
        with httpx.Client(base_url=a.console) as console_a:
            setup = console_a.post("/api/setup", json={"email": "admin@example.com", "password": STRONG_PASSWORD})
            assert setup.status_code == 201
            # A session opened on A is valid on B: sessions live in the shared database.
            login = console_a.post("/api/auth/login", json={"email": "admin@example.com",
                                                            "password": STRONG_PASSWORD})
            console_a.headers["x-csrf-token"] = login.json()["csrf_token"]
            me_on_b = httpx.get(b.console + "/api/auth/me", cookies=dict(console_a.cookies))
            assert me_on_b.status_code == 200
            key = console_a.post("/api/keys", json={"name": "shared", "surfaces": ["ai"]}).json()
            auth = {"authorization": f"Bearer {key['secret']}"}
            for _ in range(3):  # B verifies and caches the key
                assert httpx.get(b.gateway + "/v1/models", headers=auth).status_code == 200

            assert console_a.post(f"/api/keys/{key['id']}/revoke").status_code == 200
            revoked_at = time.monotonic()
            assert wait_until(lambda: httpx.get(b.gateway + "/v1/models", headers=auth).status_code == 401, 1.0)
            assert time.monotonic() - revoked_at <= 1.0
