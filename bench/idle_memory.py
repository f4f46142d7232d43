"""Idle resident memory of ``warden serve`` on the embedded default (SQLite, no Redis).

Starts Warden in a temporary data dir, drives a few requests through both listeners so lazy imports have
happened, waits until the process is idle, and prints its RSS. Target (foundation issue): <= 150 MB.

    .venv/bin/python bench/idle_memory.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.interaction.process import WardenProcess, base_env

PASSWORD = "correct horse 9 battery"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = base_env(Path(tmp) / "data", "", WARDEN_SERVER_LOG_LEVEL="warning")
        del env["WARDEN_DATABASE_URL"]
        with WardenProcess(env, Path(tmp) / "warden.log") as warden:
            with httpx.Client(base_url=warden.console) as console:
                console.post("/api/setup", json={"email": "admin@example.com", "password": PASSWORD})
                login = console.post("/api/auth/login", json={"email": "admin@example.com", "password": PASSWORD})
                console.headers["x-csrf-token"] = login.json()["csrf_token"]
                secret = console.post("/api/keys", json={"name": "bench", "surfaces": ["ai"]}).json()["secret"]
                console.get("/api/openapi.json")
            for _ in range(200):
                httpx.get(warden.gateway + "/v1/models", headers={"authorization": f"Bearer {secret}"})
            time.sleep(3)  # let the process settle: this is a measurement, not a test
            assert warden.process is not None
            rss = psutil.Process(warden.process.pid).memory_info().rss
    print(f"idle RSS of warden serve (SQLite): {rss / 1e6:.1f} MB (target <= 150 MB)")
    return 0 if rss <= 150e6 else 1


if __name__ == "__main__":
    sys.exit(main())
