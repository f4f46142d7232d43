"""Audit forwarding: every channel (syslog over UDP, TCP and TLS; a signed webhook; NATS JetStream) receives
every event in spool order, retries after failures, resumes where it stopped after a restart, and a dead channel
holds up neither the other channels, nor the store, nor requests."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ssl
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from nats.aio.client import Client

from broker.app import create_app
from broker.kernel.audit import spool as spool_module
from broker.kernel.audit.adapters.store_search import AuditFilter, StoreAuditSearch
from broker.kernel.audit.channels.nats import NatsChannel
from broker.kernel.audit.channels.syslog import SyslogChannel
from broker.kernel.audit.channels.webhook import WebhookChannel
from broker.kernel.audit.events import AuditEvent
from broker.kernel.audit.forwarder import AuditChannel, AuditForwarder, ForwardMetrics
from broker.kernel.audit.spool import AuditSpool
from tests.conftest import FakeClock, eventually, make_config
from tests.interaction.process import free_port
from tests.kernel.audit.receivers import nats_url, parse_syslog, syslog_receiver
from tests.tls import self_signed
from tests.webhook_receiver import Receiver

__all__ = ["nats_url"]  # the fixture


def event(n: int, outcome: str = "ok", user: str | None = "u1") -> AuditEvent:
    return AuditEvent(f"{n:06d}-{uuid.uuid4().hex[:8]}", 1_800_000_000.25 + n, "t" * 32, "mcp" if n % 2 else "ai",
                      user, None, "k1", 'mcp_server:odd "name"] \\', f"call:{n}", outcome, None, 1.5,
                      {"n": n, "text": "é"})


async def forward(spool: AuditSpool, channel: AuditChannel, done: Any, max_lag: int = 1 << 30) -> ForwardMetrics:
    """Run one forwarder until ``done()`` holds."""
    metrics = ForwardMetrics(None)
    async with anyio.create_task_group() as group:
        group.start_soon(AuditForwarder(spool, channel, max_lag, metrics, timeout=5, max_backoff=0.2).run)
        assert await eventually(done, within=15)
        group.cancel_scope.cancel()
    return metrics


# -- the spool's positions per channel ---------------------------------------------------------------------------

def test_a_new_channel_starts_at_the_end_and_its_position_survives_a_reopen(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path, 1 << 20)
    spool.append(event(0))
    spool.close()
    spool = AuditSpool(tmp_path, 1 << 20, ["siem"])
    assert spool.forwarded("siem") == spool.position  # what was recorded before the channel existed is not sent
    spool.append(event(1))
    events, after = spool.read(spool.forwarded("siem"), 10)
    assert [e["detail"]["n"] for e in events] == [1]
    spool.mark_forwarded("siem", after)
    spool.append(event(2))
    spool.close()

    reopened = AuditSpool(tmp_path, 1 << 20, ["siem"])
    events, _ = reopened.read(reopened.forwarded("siem"), 10)
    assert [e["detail"]["n"] for e in events] == [2]
    assert reopened.forwarded_lag() == {"siem": reopened.position - after}
    reopened.close()
    assert AuditSpool(tmp_path, 1 << 20).forwarded_lag() == {}  # a channel no longer configured lets go
    assert not list(tmp_path.glob("forwarded.*"))


def test_segments_stay_until_the_sink_and_every_channel_are_past_them(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 1024)
    spool = AuditSpool(tmp_path, 1 << 20, ["siem"])
    for n in range(20):
        spool.append(event(n))
    segments = len(list(tmp_path.glob("*.spool")))
    assert segments > 3
    spool.ack(spool.position)
    assert len(list(tmp_path.glob("*.spool"))) == segments  # the channel has not sent them yet
    spool.mark_forwarded("siem", spool.position)
    assert len(list(tmp_path.glob("*.spool"))) == 1


def test_a_channel_too_far_behind_gives_up_its_oldest_events_and_says_how_many(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 1024)
    spool = AuditSpool(tmp_path, 1 << 20, ["siem"])
    for n in range(40):
        spool.append(event(n))
    spool.ack(spool.position)  # the store has them all: only the channel's copies go
    assert spool.skip_lagging("siem", 1 << 20) == 0
    lost = spool.skip_lagging("siem", 2048)
    events, _ = spool.read(spool.forwarded("siem"), 100)
    assert lost > 0 and lost + len(events) == 40
    assert [e["detail"]["n"] for e in events] == list(range(lost, 40))  # the newest are kept, in order
    assert spool.position - spool.forwarded("siem") <= 2048
    assert len(list(tmp_path.glob("*.spool"))) <= 3  # and their disk space is given back


# -- syslog --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_syslog_receives_every_event_in_order_as_rfc5424(tmp_path: Path, transport: str) -> None:
    certificate, key = self_signed(tmp_path)
    server_tls = None
    if transport == "tls":
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(certificate, key)
    spool = AuditSpool(tmp_path / "spool", 1 << 30, ["siem"])
    events = [event(n, outcome="refused" if n == 3 else "ok", user=None if n == 4 else "u1") for n in range(250)]
    for item in events:
        spool.append(item)
    async with syslog_receiver(transport, server_tls) as (url, receiver):
        channel = SyslogChannel("siem", url, facility=10, ca_file=certificate if transport == "tls" else None)

        async def all_arrived() -> bool:
            return len(receiver.messages) >= len(events)

        await forward(spool, channel, all_arrived)
    parsed = [parse_syslog(message) for message in receiver.messages]
    assert [p["event"]["id"] for p in parsed] == [e.id for e in events]
    first = parsed[0]
    assert (first["facility"], first["severity"], first["app"], first["msgid"]) == (10, 6, "warden", "audit")
    assert first["timestamp"] == "2027-01-15T08:00:00.250000Z"
    assert datetime.datetime.fromisoformat(first["timestamp"]).timestamp() == events[0].at
    assert first["sd_id"] == "warden@32473"
    assert first["params"]["target"] == 'mcp_server:odd "name"] \\'  # escaped in the message, intact here
    assert first["params"]["id"] == events[0].id and first["event"]["detail"] == {"n": 0, "text": "é"}
    assert parsed[3]["severity"] == 4  # refused: warning
    assert "user_id" not in parsed[4]["params"]
    assert spool.forwarded("siem") == spool.position


async def test_syslog_over_tcp_reconnects_when_the_receiver_restarts(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path / "spool", 1 << 30, ["siem"])
    port = free_port()
    channel = SyslogChannel("siem", f"tcp://127.0.0.1:{port}")
    received: list[bytes] = []
    async with anyio.create_task_group() as group:
        group.start_soon(AuditForwarder(spool, channel, 1 << 30, ForwardMetrics(None), timeout=5,
                                        max_backoff=0.2).run)
        for round_ in range(2):  # the same forwarder and connection throughout; the receiver restarts between
            async with syslog_receiver("tcp", port=port) as (_, receiver):
                for n in range(10):
                    spool.append(event(round_ * 10 + n))
                await receiver.wait_for(10)
                received += receiver.messages
        group.cancel_scope.cancel()
    assert [parse_syslog(m)["event"]["detail"]["n"] for m in received] == list(range(20))
    assert receiver.connections == 1


# -- webhook -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("receiver", [2], indirect=True)  # the first two posts get 503
async def test_a_webhook_receives_every_event_in_order_signed_after_retries(tmp_path: Path,
                                                                           receiver: Receiver) -> None:
    secret = "s3cret-for-the-siem-0123"
    spool = AuditSpool(tmp_path / "spool", 1 << 30, ["hooks"])
    events = [event(n) for n in range(250)]
    for item in events:
        spool.append(item)

    async def all_arrived() -> bool:
        return sum(len(orjson.loads(body)["events"]) for _, body in receiver.posts) >= len(events)

    metrics = await forward(spool, WebhookChannel("hooks", receiver.url, secret), all_arrived)
    delivered = []
    for headers, body in receiver.posts:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-warden-signature"] == f"sha256={expected}"
        assert headers["x-warden-event"] == "audit"
        delivered += orjson.loads(body)["events"]
    assert [e["id"] for e in delivered] == [e.id for e in events]
    assert metrics.failures.labels("hooks")._value.get() == 2
    assert metrics.delivered.labels("hooks")._value.get() == 250


# -- NATS JetStream ------------------------------------------------------------------------------------------

async def stored_in_stream(url: str, stream: str = "WARDEN_AUDIT") -> list[dict[str, Any]]:
    client = Client()
    await client.connect(url)
    try:
        jetstream = client.jetstream()
        info = await jetstream.stream_info(stream)
        return [orjson.loads((await jetstream.get_msg(stream, seq)).data or b"")
                for seq in range(info.state.first_seq, info.state.last_seq + 1)]
    finally:
        await client.close()


async def test_nats_jetstream_stores_every_event_in_order_once_even_when_replayed(tmp_path: Path,
                                                                                  nats_url: str) -> None:
    spool = AuditSpool(tmp_path / "spool", 1 << 30, ["pipeline"])
    events = [event(n) for n in range(120)]
    for item in events:
        spool.append(item)

    async def all_stored() -> bool:
        return spool.forwarded("pipeline") == spool.position

    await forward(spool, NatsChannel("pipeline", nats_url), all_stored)
    stored = await stored_in_stream(nats_url)
    assert [e["id"] for e in stored] == [e.id for e in events]

    # A crash after publishing but before the position was saved: the next run publishes them all again.
    spool.close()
    (tmp_path / "spool" / "forwarded.pipeline").write_text("0")
    spool = AuditSpool(tmp_path / "spool", 1 << 30, ["pipeline"])
    spool.append(event(999))
    await forward(spool, NatsChannel("pipeline", nats_url), all_stored)
    again = await stored_in_stream(nats_url)
    assert [e["id"] for e in again] == [e.id for e in events] + [again[-1]["id"]]  # no duplicates
    assert again[-1]["detail"]["n"] == 999


async def test_nats_down_then_back_loses_nothing(tmp_path: Path, nats_url: str) -> None:
    dead = f"nats://127.0.0.1:{int(nats_url.rsplit(':', 1)[1]) + 1}"  # nothing listens there yet
    spool = AuditSpool(tmp_path / "spool", 1 << 30, ["pipeline"])
    for n in range(5):
        spool.append(event(n))
    channel = NatsChannel("pipeline", dead, timeout=1)
    metrics = ForwardMetrics(None)
    async with anyio.create_task_group() as group:
        group.start_soon(AuditForwarder(spool, channel, 1 << 30, metrics, timeout=2, max_backoff=0.2).run)

        async def failed_twice() -> bool:
            return metrics.failures.labels("pipeline")._value.get() >= 2

        assert await eventually(failed_twice, within=15)
        channel._url = nats_url  # the broker is reachable again

        async def caught_up() -> bool:
            return spool.forwarded("pipeline") == spool.position

        assert await eventually(caught_up, within=15)
        group.cancel_scope.cancel()
    assert [e["detail"]["n"] for e in await stored_in_stream(nats_url)] == list(range(5))


# -- in the running gateway ----------------------------------------------------------------------------------

async def test_a_dead_channel_holds_up_neither_requests_nor_the_store_nor_the_other_channels(
        tmp_path: Path, receiver: Receiver, clock: FakeClock) -> None:
    config = make_config(tmp_path, "", audit={"forward": [
        {"kind": "syslog", "name": "dead", "url": "tcp://127.0.0.1:9"},  # nothing listens on the discard port
        {"kind": "webhook", "name": "hooks", "url": receiver.url},
    ]})
    async with create_app(config, clock) as warden:
        transport = httpx.ASGITransport(app=warden.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            with anyio.fail_after(10):  # unknown keys: refused, and audited
                for _ in range(30):
                    response = await client.get("/v1/models", headers={"authorization": "Bearer wk_nope"})
                    assert response.status_code == 401

        async def forwarded() -> bool:
            return sum(len(orjson.loads(body)["events"]) for _, body in receiver.posts) >= 30

        assert await eventually(forwarded, within=10)
        registry = warden.kernel.registry

        async def dead_failing() -> bool:
            return (registry.get_sample_value("warden_audit_forward_failures_total", {"channel": "dead"}) or 0) > 0

        assert await eventually(dead_failing, within=10)
        assert registry.get_sample_value("warden_audit_forward_lag_bytes", {"channel": "dead"}) > 0
        assert registry.get_sample_value("warden_audit_forward_lag_bytes", {"channel": "hooks"}) == 0

        async def stored_all() -> bool:  # the store's writer lingers for a batch; a channel may be quicker
            return len(await StoreAuditSearch(warden.kernel.db).events(AuditFilter(surface="ai"), 100)) == 30

        assert await eventually(stored_all, within=10)
        stored = await StoreAuditSearch(warden.kernel.db).events(AuditFilter(surface="ai"), 100)
    posted = [e["id"] for _, body in receiver.posts for e in orjson.loads(body)["events"]]
    assert sorted(posted) == sorted(e["id"] for e in stored)
