"""The audit spool: appended events survive a reopen (as after kill -9) until acknowledged, a torn last record is
cut off, segments rotate and go once acknowledged, and a full spool refuses until a sink catches up."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from broker.kernel.audit import spool as spool_module
from broker.kernel.audit.events import AuditEvent
from broker.kernel.audit.spool import AuditSpool, SpoolFull


def event(n: int) -> AuditEvent:
    return AuditEvent(f"{n:04d}-{uuid.uuid4().hex[:8]}", float(n), "t" * 32, "ai", "u1", None, "k1",
                      "provider:fake", "chat.completions:m", "ok", None, 1.5, {"n": n, "text": "é" * 10},
                      request_id=f"r{n}", client_ip="127.0.0.1", user_agent="ua")


def test_events_read_back_in_order_and_reopening_resumes_after_the_acknowledged_ones(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path, 1 << 20)
    written = [event(n) for n in range(10)]
    for item in written:
        spool.append(item)
    read, after = spool.read(spool.acked, 4)
    assert [r["id"] for r in read] == [e.id for e in written[:4]]
    assert read[0]["detail"] == {"n": 0, "text": "é" * 10} and read[0]["request_id"] == "r0"
    spool.ack(after)
    spool.close()  # no flush, no goodbye: what a killed process leaves behind

    reopened = AuditSpool(tmp_path, 1 << 20)
    rest, end = reopened.read(reopened.acked, 100)
    assert [r["id"] for r in rest] == [e.id for e in written[4:]]
    assert end == reopened.position and reopened.unacked_bytes == end - after


@pytest.mark.parametrize("tail", [b"\x40\x00\x00\x00\x12\x34",  # a header, no payload
                                  b"\x00" * 4096])  # the zeros a file system can leave past the last write
def test_a_record_torn_by_a_crash_is_cut_off_and_appending_goes_on(tmp_path: Path, tail: bytes) -> None:
    spool = AuditSpool(tmp_path, 1 << 20)
    spool.append(event(1))
    whole = spool.position
    spool.close()
    segment = next(tmp_path.glob("*.spool"))
    segment.write_bytes(segment.read_bytes() + tail)

    reopened = AuditSpool(tmp_path, 1 << 20)
    assert reopened.position == whole
    reopened.append(event(2))
    read, _ = reopened.read(0, 10)
    assert [r["detail"]["n"] for r in read] == [1, 2]


def test_segments_rotate_and_acknowledged_ones_are_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 1024)
    spool = AuditSpool(tmp_path, 1 << 20)
    for n in range(20):
        spool.append(event(n))
    assert len(list(tmp_path.glob("*.spool"))) > 3
    read, after = spool.read(0, 15)
    assert [r["detail"]["n"] for r in read] == list(range(15))
    spool.ack(after)
    remaining = sorted(tmp_path.glob("*.spool"))
    assert int(remaining[0].name.removesuffix(".spool")) <= after  # only what holds unacknowledged events
    rest, _ = spool.read(spool.acked, 100)
    assert [r["detail"]["n"] for r in rest] == list(range(15, 20))


async def test_a_full_spool_refuses_until_an_acknowledgement_makes_room(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path, 1000)
    while not spool.full():
        spool.append(event(0))
    with pytest.raises(SpoolFull):
        spool.append(event(1))
    made_room = False

    async def acknowledge_later() -> None:
        nonlocal made_room
        await anyio.sleep(0.1)
        made_room = True
        spool.ack(spool.position)

    async with anyio.create_task_group() as group:
        group.start_soon(acknowledge_later)
        with anyio.fail_after(5):
            await spool.wait_for_room()
    assert made_room and not spool.full()
    spool.append(event(2))
    await spool.sync()
