"""``audit.when_full: refuse``: while the audit spool is full (the audit database not taking events), new
requests get 503 ``audit_unavailable`` instead of running unaudited; once the database catches up they run."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import anyio

from broker.app import create_app
from broker.kernel.audit.adapters.store import StoreAuditSink
from broker.kernel.audit.body_store import LocalBodyStore
from broker.kernel.audit.events import AuditEvent
from broker.kernel.audit.spool import AuditSpool
from broker.kernel.errors import AuditUnavailable
from tests.conftest import FakeClock, asgi_client, eventually, make_config

KEY = "wdn_" + "a" * 43
CHAT = {"model": "nowhere-model", "messages": [{"role": "user", "content": "x"}]}


def huge_event() -> AuditEvent:
    return AuditEvent(uuid.uuid4().hex, 1.0, "t" * 32, "ai", None, None, None, "provider:-", "test", "ok", None,
                      1.0, {"padding": "x" * (1 << 20)})


async def test_only_the_refuse_policy_refuses_and_only_while_the_spool_is_full(tmp_path: Path) -> None:
    block = StoreAuditSink(None, AuditSpool(tmp_path / "block", 1 << 20), LocalBodyStore(tmp_path))  # type: ignore[arg-type]
    refuse = StoreAuditSink(None, AuditSpool(tmp_path / "refuse", 1 << 20), LocalBodyStore(tmp_path), True)  # type: ignore[arg-type]
    refuse.admit()
    for sink in (block, refuse):
        await sink.record(huge_event())  # no writer runs: the spool stays full
    block.admit()
    try:
        refuse.admit()
    except AuditUnavailable as exc:
        assert exc.status == 503 and exc.jsonrpc_error()["code"] == -32053
    else:
        raise AssertionError("a full spool under the refuse policy admitted a request")
    assert refuse.refused_total._value.get() == 1


async def test_a_full_spool_refuses_new_ai_requests_until_the_database_catches_up(
        tmp_path: Path, clock: FakeClock) -> None:
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'w.db'}",
                         audit={"spool_max_bytes": 1 << 20, "when_full": "refuse"},
                         api_keys=[{"name": "k", "owner": "ada@example.com", "secret": KEY, "surfaces": ["ai"]}])
    async with create_app(config, clock) as warden, asgi_client(warden.gateway, "http://gateway.test") as gateway:
        headers = {"authorization": f"Bearer {KEY}"}
        assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code == 404
        lock = sqlite3.connect(tmp_path / "w.db", isolation_level=None, timeout=10, check_same_thread=False)
        try:
            # The audit database stops taking events (taken off the event loop, which Warden needs meanwhile).
            await anyio.to_thread.run_sync(lock.execute, "BEGIN EXCLUSIVE")
            await warden.kernel.audit.record(huge_event())
            refused = await gateway.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
            assert refused.json()["error"]["code"] == "audit_unavailable"
        finally:
            if lock.in_transaction:
                lock.execute("ROLLBACK")
            lock.close()

        async def admitted() -> bool:
            return (await gateway.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code == 404

        assert await eventually(admitted, within=20, interval=0.2)
