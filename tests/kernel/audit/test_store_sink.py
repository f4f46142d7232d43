from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from broker.app import Kernel
from broker.kernel.audit import events as events_module
from broker.kernel.audit import spool as spool_module
from broker.kernel.audit.adapters import store as store_module
from broker.kernel.audit.adapters.store import BATCH, AuditQuery, StoreAuditSink
from broker.kernel.audit.adapters.store_search import AuditFilter, StoreAuditSearch
from broker.kernel.audit.body_store import LocalBodyStore
from broker.kernel.audit.capture import CapturedBody
from broker.kernel.audit.events import AuditEvent, with_bodies
from broker.kernel.audit.spool import AuditSpool
from tests.conftest import eventually


def event(target: str = "mcp_server:demo") -> AuditEvent:
    return AuditEvent(uuid.uuid4().hex, 1.0, "t" * 32, "mcp", "u1", None, "k1", target, "tools/call:demo__x",
                      "ok", None, 1.5, {"timeline": [{"t_ms": 0, "event": "start"}]})


async def write_spooled(kernel: Kernel, spool: AuditSpool, tmp_path: Path, within: float = 10) -> None:
    """A sink's writer, started on ``spool`` after its sink was closed: it writes what the spool holds, returns."""
    sink = StoreAuditSink(kernel.db, spool, LocalBodyStore(tmp_path / "bodies"))
    sink.close()
    with anyio.fail_after(within):
        await sink.run()


def with_captured(item: AuditEvent) -> AuditEvent:
    return with_bodies(item, {"request": CapturedBody("hello [EMAIL]", 21, {"email": 1}, False)})


async def record_all(sink: StoreAuditSink, events: list[AuditEvent], within: float = 10) -> None:
    """Record ``events`` with the sink's writer running, then close it and wait until it wrote them all."""
    async with anyio.create_task_group() as group:
        group.start_soon(sink.run)
        for item in events:
            await sink.record(item)
        sink.close()
        with anyio.fail_after(within):
            await sink.drained.wait()


async def test_every_queued_event_is_written_before_the_writer_returns(kernel: Kernel, tmp_path: Path) -> None:
    sink = StoreAuditSink(kernel.db, AuditSpool(tmp_path / "small-spool", 1 << 20), LocalBodyStore(tmp_path / 'bodies'))
    events = [event() for _ in range(500)]
    events[0].detail["padding"] = "x" * (1 << 20)  # fills the spool at once: record waits instead of dropping
    await record_all(sink, events)
    stored = await StoreAuditSearch(kernel.db).events(AuditFilter(surface="mcp"), 1000)
    assert sorted(e["id"] for e in stored) == sorted(e.id for e in events)
    assert stored[0]["detail"]["timeline"][0]["event"] == "start"


async def test_replaying_an_event_does_not_duplicate_it(kernel: Kernel, tmp_path: Path) -> None:
    sink = StoreAuditSink(kernel.db, AuditSpool(tmp_path / "spool", 1 << 30), LocalBodyStore(tmp_path / 'bodies'))
    item = event()
    await record_all(sink, [item, item])
    assert len(await StoreAuditSearch(kernel.db).events(AuditFilter(surface="mcp"), 100)) == 1
    assert (await AuditQuery(kernel.db).get(item.id)) is not None


async def test_events_recorded_and_closed_before_the_writer_starts_are_still_written(
        kernel: Kernel, tmp_path: Path) -> None:
    sink = StoreAuditSink(kernel.db, AuditSpool(tmp_path / "spool", 1 << 30), LocalBodyStore(tmp_path / 'bodies'))
    item = event()
    await sink.record(item)  # the writer has not run yet: the event waits in the queue
    sink.close()
    with anyio.fail_after(10):
        await sink.run()
    assert sink.drained.is_set()
    assert (await AuditQuery(kernel.db).get(item.id)) is not None


async def test_a_writer_started_after_an_empty_sink_was_closed_returns_at_once(kernel: Kernel, tmp_path: Path) -> None:
    sink = StoreAuditSink(kernel.db, AuditSpool(tmp_path / "spool", 1 << 30), LocalBodyStore(tmp_path / 'bodies'))
    sink.close()
    with anyio.fail_after(5):
        await sink.run()
    assert sink.drained.is_set()


async def test_events_a_killed_process_left_in_the_spool_are_written_once_at_the_next_start(
        kernel: Kernel, tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path / "spool", 1 << 30)
    first = StoreAuditSink(kernel.db, spool, LocalBodyStore(tmp_path / 'bodies'))
    written, unwritten = event(), [event() for _ in range(3)]
    async with anyio.create_task_group() as group:
        group.start_soon(first.run)
        await first.record(written)

        async def stored() -> bool:
            return (await AuditQuery(kernel.db).get(written.id)) is not None

        assert await eventually(stored, within=10)
        group.cancel_scope.cancel()  # the writer dies with the process...
    for item in unwritten:  # ...and these were recorded (requests answered) but never reached the database
        spool.append(item)
    spool.close()

    # A new process's writer replays what the spool holds past its acknowledged position.
    await write_spooled(kernel, AuditSpool(tmp_path / "spool", 1 << 30), tmp_path)
    stored_ids = [e["id"] for e in await StoreAuditSearch(kernel.db).events(AuditFilter(surface="mcp"), 100)]
    assert sorted(stored_ids) == sorted([written.id, *(e.id for e in unwritten)])


def detail_as_text(item: AuditEvent) -> bytes:
    """How events were spooled before their detail was spliced in as JSON: a string holding the JSON."""
    values = orjson.loads(events_module.spooled(item))
    values[events_module.SPOOLED.index("detail")] = orjson.dumps(values[events_module.SPOOLED.index("detail")]).decode()
    return orjson.dumps(values)


async def test_events_spooled_by_earlier_versions_are_read_and_written_alike(
        kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spooled events were JSON objects before they became rows, then rows with the detail as JSON text: a spool
    left by those versions, upgraded in place, is still written to the store and forwarded, an event in any form
    the same."""
    ai = AuditEvent(uuid.uuid4().hex, 2.0, "t" * 32, "ai", "u1", "t1", "k1", "provider:p", "chat.completions:m",
                    "ok", None, 3.0, {"model": "m", "provider": "p", "input_tokens": 5, "output_tokens": 7,
                                      "weighted_tokens": 12.0, "usd": 0.5, "routing": "weights"},
                    request_id="r", client_ip="127.0.0.1", user_agent="ua", span_id="a" * 16)
    spool = AuditSpool(tmp_path / "spool", 1 << 30)
    monkeypatch.setattr(spool_module, "spooled", orjson.dumps)  # how events were spooled before
    spool.append(ai)
    spool.append(event())
    monkeypatch.setattr(spool_module, "spooled", detail_as_text)
    spool.append(replace(ai, id=uuid.uuid4().hex))
    monkeypatch.undo()
    spool.append(replace(ai, id=uuid.uuid4().hex))
    old_ai, old_mcp, text_ai, new_ai = spool.read(0, 10)[0]
    assert {**old_ai, "id": new_ai["id"]} == {**text_ai, "id": new_ai["id"]} == new_ai
    assert old_mcp["detail"] == {"timeline": [{"t_ms": 0, "event": "start"}]} and "model" not in new_ai

    await write_spooled(kernel, spool, tmp_path)
    rows = await kernel.db.fetch("SELECT id, model, provider, input_tokens, output_tokens, weighted_tokens, usd,"
                                 " detail, request_id FROM audit_events WHERE surface = 'ai' ORDER BY id")
    assert len(rows) == 3
    for row in rows:
        assert (row["model"], row["provider"], row["input_tokens"], row["output_tokens"], row["weighted_tokens"],
                row["usd"], row["request_id"]) == ("m", "p", 5, 7, 12.0, 0.5, "r")
        assert orjson.loads(row["detail"]) == ai.detail
    assert (await AuditQuery(kernel.db).get(old_mcp["id"])) is not None


async def test_a_full_batch_is_written_in_one_transaction(kernel: Kernel, tmp_path: Path) -> None:
    """A batch as large as the writer takes (its largest statement holds 512 rows, 11,264 values) is stored
    whole, on either database."""
    spool = AuditSpool(tmp_path / "spool", 1 << 30)
    events = [event() for _ in range(BATCH + 23)]
    for item in events:
        spool.append(item)
    await write_spooled(kernel, spool, tmp_path, within=30)
    stored = await kernel.db.fetch("SELECT id FROM audit_events")
    assert sorted(row["id"] for row in stored) == sorted(e.id for e in events)


async def test_numbers_are_stored_typed_whichever_python_number_they_come_as(kernel: Kernel, tmp_path: Path) -> None:
    """A free model's cost is the integer 0 and an error code an int beside events without one: each batch goes
    to PostgreSQL as one typed array per column, which must take them all (and NULLs) as SQLite does."""
    spool = AuditSpool(tmp_path / "spool", 1 << 30)
    free = AuditEvent(uuid.uuid4().hex, 2.0, "t" * 32, "ai", "u1", None, "k1", "provider:p", "chat.completions:m",
                      "error", 502, 3, {"model": "m", "provider": "p", "input_tokens": 5, "output_tokens": 0,
                                        "weighted_tokens": 5, "usd": 0})
    for item in (free, event(), replace(free, id=uuid.uuid4().hex, error_code=None, detail={"model": None})):
        spool.append(item)
    await write_spooled(kernel, spool, tmp_path)
    rows = await kernel.db.fetch("SELECT id, error_code, duration_ms, input_tokens, weighted_tokens, usd"
                                 " FROM audit_events ORDER BY id")
    by_id = {row.pop("id"): row for row in rows}
    assert len(by_id) == 3
    assert by_id[free.id] == {"error_code": 502, "duration_ms": 3.0, "input_tokens": 5, "weighted_tokens": 5.0,
                              "usd": 0.0}
    assert [row["usd"] for row in by_id.values()].count(None) == 2


async def test_the_writer_inserts_remembered_rows_and_reads_only_the_rest_from_the_spool(
        kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows of the latest events this process appended are kept for the writer, at most REMEMBERED of them:
    it reads from the spool only what an earlier run left and what came while that many waited, in order."""
    monkeypatch.setattr(store_module, "REMEMBERED", 3)
    spool = AuditSpool(tmp_path / "spool", 1 << 30)
    left = [event() for _ in range(2)]
    for item in left:  # an earlier run's, never written
        spool.append(item)
    sink = StoreAuditSink(kernel.db, spool, LocalBodyStore(tmp_path / "bodies"))
    captured = with_captured(event())
    recorded = [captured, *(event() for _ in range(6))]
    for item in recorded:
        await sink.record(item)
    read: list[str] = []
    read_payloads = spool.read_payloads

    def counted(start: int, limit: int, end: int | None = None) -> tuple[list[bytes], int]:
        payloads, after = read_payloads(start, limit, end)
        read.extend(orjson.loads(payload)[0] for payload in payloads)
        return payloads, after

    monkeypatch.setattr(spool, "read_payloads", counted)
    async with anyio.create_task_group() as group:
        group.start_soon(sink.run)

        async def all_stored() -> bool:
            return len(await kernel.db.fetch("SELECT id FROM audit_events")) == len(left) + len(recorded)

        assert await eventually(all_stored, within=10)
        later = [event() for _ in range(2)]  # remembered again: the writer took the others
        for item in later:
            await sink.record(item)
        sink.close()
        with anyio.fail_after(10):
            await sink.drained.wait()
    assert read == [e.id for e in [*left, *recorded[3:]]]  # not the first three recorded, nor the later ones
    stored = await kernel.db.fetch("SELECT id FROM audit_events")
    assert sorted(row["id"] for row in stored) == sorted(e.id for e in [*left, *recorded, *later])
    bodies = await AuditQuery(kernel.db).bodies(captured.id, LocalBodyStore(tmp_path / "bodies"))
    assert bodies["request"]["text"] == "hello [EMAIL]"


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("where", ["action", "detail", "body"])
async def test_texts_a_store_cannot_hold_are_stored_replaced_and_the_events_after_them_too(
        kernel: Kernel, tmp_path: Path, text: str, where: str) -> None:
    """A client's tool or model name, argument or body with NUL (PostgreSQL's text cannot hold it: the whole batch
    failed at every retry, so nothing after it was ever stored) or a lone surrogate (not UTF-8: ``record``
    raised) is stored with U+FFFD in its place."""
    sink = StoreAuditSink(kernel.db, AuditSpool(tmp_path / "spool", 1 << 30), LocalBodyStore(tmp_path / "bodies"))
    bad = event()
    if where == "action":
        bad = replace(bad, action=f"tools/call:{text}")
    elif where == "detail":
        bad.detail["arguments"] = {text: [text]}
    else:
        bad = with_bodies(bad, {"request": CapturedBody(text, 3, {}, False)})
    after = event()
    await record_all(sink, [bad, after])
    query = AuditQuery(kernel.db)
    stored = await query.get(bad.id)
    assert stored is not None and await query.get(after.id) is not None
    if where == "action":
        assert stored["action"] == "tools/call:a\ufffdb"
    elif where == "detail":
        assert stored["detail"]["arguments"] == {"a\ufffdb": ["a\ufffdb"]}
    else:
        assert (await query.bodies(bad.id, LocalBodyStore(tmp_path / "bodies")))["request"]["text"] == "a\ufffdb"


async def test_nul_in_events_an_earlier_version_spooled_is_stored_replaced(kernel: Kernel, tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path / "spool", 1 << 30)
    bad = with_bodies(replace(event(), action="tools/call:a\x00b"), {"result": CapturedBody("c\x00d", 3, {}, False)})
    spool.append_spooled(events_module._spooled_row(bad)[1])  # as spooled before NUL was replaced
    await write_spooled(kernel, spool, tmp_path)
    stored = await AuditQuery(kernel.db).get(bad.id)
    assert stored is not None and stored["action"] == "tools/call:a\ufffdb"
    bodies = await AuditQuery(kernel.db).bodies(bad.id, LocalBodyStore(tmp_path / "bodies"))
    assert bodies["result"]["text"] == "c\ufffdd"


async def test_a_body_of_a_mebibyte_of_distinct_words_is_stored_and_searchable(kernel: Kernel,
                                                                             tmp_path: Path) -> None:
    """The largest body kept inline (body_max_bytes at most 1 MiB). On PostgreSQL its full-text vector would
    exceed the 1 MB a tsvector holds: the batch failed at every retry and no later event was stored. Only the
    first 128 Ki characters are indexed there (all of it in SQLite's FTS5)."""
    words = [f"w{n:07x}" for n in range(120_000)]
    text = " ".join(words)[:1 << 20]
    big = with_bodies(event(), {"request": CapturedBody(text, len(text), {}, False)})
    after = event()
    sink = StoreAuditSink(kernel.db, AuditSpool(tmp_path / "spool", 1 << 30), LocalBodyStore(tmp_path / "bodies"))
    await record_all(sink, [big, after], within=20)
    query = AuditQuery(kernel.db)
    assert await query.get(after.id) is not None
    assert (await query.bodies(big.id, LocalBodyStore(tmp_path / "bodies")))["request"]["text"] == text
    search = StoreAuditSearch(kernel.db)
    assert [e["id"] for e in await search.events(AuditFilter(text=f"{words[5]} {words[9000]}"), 10)] == [big.id]


async def test_an_event_the_database_refuses_is_kept_whole_as_unstorable_and_the_rest_is_written(
        kernel: Kernel, tmp_path: Path) -> None:
    """A value no check foresaw (here a provider's token count beyond a signed 64-bit integer, which both databases
    refuse) used to fail its batch at every retry, holding up every event after it. The batch is halved until the
    refused event is alone; it is stored as an 'unstorable' row keeping the whole event, bodies included."""
    sink = StoreAuditSink(kernel.db, AuditSpool(tmp_path / "spool", 1 << 30), LocalBodyStore(tmp_path / "bodies"))
    events = [replace(event(), surface="ai", detail={"input_tokens": 12}) for _ in range(7)]
    events[4] = with_captured(replace(events[4], detail={"input_tokens": 1 << 63, "model": "m"}))
    events[5] = with_captured(events[5])
    await record_all(sink, events, within=20)
    query = AuditQuery(kernel.db)
    stored = {item.id: await query.get(item.id) for item in events}
    assert [row is not None and row["action"] for row in stored.values()] == \
        ["tools/call:demo__x"] * 4 + ["unstorable"] + ["tools/call:demo__x"] * 2
    kept = stored[events[4].id]
    assert kept is not None and kept["user_id"] == "u1" and kept["outcome"] == "ok"
    assert kept["detail"]["event"]["input_tokens"] == 1 << 63 and kept["detail"]["event"]["action"] == \
        "tools/call:demo__x" and "detail" in kept["detail"]["event"]
    assert [body["content"] for body in kept["detail"]["bodies"]] == ["hello [EMAIL]"]
    assert (await query.bodies(events[5].id, LocalBodyStore(tmp_path / "bodies")))["request"]["text"] == \
        "hello [EMAIL]"


async def test_an_integer_beyond_64_bits_in_the_detail_is_kept_as_text(kernel: Kernel, tmp_path: Path) -> None:
    """JSON as the spool writes it (orjson) takes integers of up to 64 bits; ``record`` raised on a larger one."""
    sink = StoreAuditSink(kernel.db, AuditSpool(tmp_path / "spool", 1 << 30), LocalBodyStore(tmp_path / "bodies"))
    item = event()
    item.detail["count"] = 1 << 70
    await record_all(sink, [item])
    stored = await AuditQuery(kernel.db).get(item.id)
    assert stored is not None and stored["detail"]["count"] == str(1 << 70)


class WatchedSpool(AuditSpool):
    """A spool noting its syncs among the sink's other steps."""

    def __init__(self, directory: Path, steps: list[str], channels: tuple[str, ...] = ()) -> None:
        super().__init__(directory, 1 << 30, channels)
        self.steps = steps

    async def sync(self) -> None:
        self.steps.append("sync")
        await super().sync()


@pytest.mark.parametrize("channels", [(), ("siem",)])
async def test_the_spool_is_synced_only_while_it_holds_the_only_copy(kernel: Kernel, tmp_path: Path,
                                                                    channels: tuple[str, ...]) -> None:
    """A batch the database commits at once is durable there: syncing the spool's copy too only wrote back pages
    nobody reads again. A failed write syncs before the retry's wait (the spool is then the only copy), and so does
    every batch while forwarding channels read the spool."""
    steps: list[str] = []
    spool = WatchedSpool(tmp_path / "spool", steps, channels)
    sink = StoreAuditSink(kernel.db, spool, LocalBodyStore(tmp_path / "bodies"))
    insert = sink._insert
    failures = [RuntimeError("the database went away")]

    async def watched_insert(rows: Any, bodies: Any) -> None:
        steps.append(f"insert {len(rows)}")
        if failures and len(rows) == 2:
            raise failures.pop()
        await insert(rows, bodies)

    sink._insert = watched_insert  # type: ignore[method-assign]
    await record_all(sink, [event()])
    assert steps == [*["sync"] * bool(channels), "insert 1"]
    steps.clear()
    items = [event(), event()]
    await record_all(sink, items)
    assert steps == [*["sync"] * bool(channels), "insert 2", "sync", *["sync"] * bool(channels), "insert 2"]
    assert all([await AuditQuery(kernel.db).get(item.id) for item in items])
