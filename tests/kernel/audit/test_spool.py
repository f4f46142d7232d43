"""The audit spool: appended events survive a reopen (as after kill -9) until acknowledged, a torn last record is
cut off, segments rotate and go once acknowledged, and a full spool refuses until a sink catches up."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import uuid
import zlib
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from broker.kernel.audit import events as events_module
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


def test_an_acknowledged_segment_becomes_the_next_one_and_its_old_records_stay_dead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file (its pages and disk blocks) of a segment everyone is done with is written again as a later segment,
    not zeroed first; none of its old records is read back as a new one after a crash: the records are of equal
    size, so an old one starts exactly where the new ones end, and only its CRC, seeded with the position it was
    written at, tells it apart."""
    script = f"""
import os, signal, sys
import anyio
sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
from pathlib import Path
from broker.kernel.audit import events as events_module
from broker.kernel.audit import spool as spool_module
from tests.kernel.audit.test_spool import event
spool_module.SEGMENT_BYTES = 4096
directory = Path({str(tmp_path)!r})
spool = spool_module.AuditSpool(directory, 1 << 20)
first = directory / "00000000000000000000.spool"
inode = first.stat().st_ino
while len(list(directory.glob("*.spool"))) < 2:
    spool.append(event(1000))
spool.ack(spool.position - 1)  # the first segment, not the second: the first becomes the spare
assert not first.exists() and (directory / "spare.seg").stat().st_ino == inode
while len(list(directory.glob("*.spool"))) < 2:
    spool.append(event(2000))
reused = sorted(directory.glob("*.spool"))[-1]
assert reused.stat().st_ino == inode and not (directory / "spare.seg").exists()
spool.append(event(3000))
print(reused.name, spool.position, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, text=True)
    assert finished.returncode == -signal.SIGKILL, finished.stderr
    reused, position = finished.stdout.split()
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 4096)
    reopened = AuditSpool(tmp_path, 1 << 20)
    read, _ = reopened.read(int(reused.removesuffix(".spool")), 100)
    assert [r["detail"]["n"] for r in read] == [2000, 3000]  # the one that started it, then the last
    assert reopened.position == int(position)


def test_a_spare_segment_that_cannot_be_reused_does_not_stop_the_writer(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 4096)
    spool = AuditSpool(tmp_path, 1 << 20)
    while len(list(tmp_path.glob("*.spool"))) < 2:
        spool.append(event(1000))
    spool.ack(spool.position - 1)
    (tmp_path / "spare.seg").unlink()  # gone behind the spool's back
    while len(list(tmp_path.glob("*.spool"))) < 2:
        spool.append(event(2000))
    newest = sorted(tmp_path.glob("*.spool"))[-1]
    assert [r["detail"]["n"] for r in spool.read(int(newest.name.removesuffix(".spool")), 10)[0]] == [2000]


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


def test_what_a_killed_process_appended_is_read_back_whole(tmp_path: Path) -> None:
    """The segment being written is a shared mapping: a process killed with SIGKILL right after ``append`` (no
    close, no unmapping) leaves every event in the file, and the zeros reserved past them are no record."""
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
from broker.kernel.audit.spool import AuditSpool
from tests.kernel.audit.test_spool import event
spool = AuditSpool(__import__("pathlib").Path({str(tmp_path)!r}), 1 << 20)
for n in range(50):
    spool.append(event(n))
os.kill(os.getpid(), signal.SIGKILL)
"""
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert finished.returncode == -signal.SIGKILL, finished.stderr.decode()
    reopened = AuditSpool(tmp_path, 1 << 20)
    read, end = reopened.read(0, 100)
    assert [r["detail"]["n"] for r in read] == list(range(50))
    assert end == reopened.position
    reopened.append(event(50))
    assert [r["detail"]["n"] for r in reopened.read(end, 10)[0]] == [50]


def test_records_larger_than_a_segment_or_a_read_chunk_round_trip(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 1024)
    monkeypatch.setattr(spool_module, "_READ_BYTES", 512)
    big = [replace(event(n), detail={"n": n, "text": "x" * 5000}) for n in range(3)]
    spool = AuditSpool(tmp_path, 1 << 20)
    spool.append(big[0])  # into a fresh, empty segment: it grows to take it
    spool.append(event(1))
    spool.append(big[1])  # past a segment holding others: a new one, as large as needed
    spool.append(event(3))
    spool.append(big[2])
    expected = [(0, 5000), (1, 10), (1, 5000), (3, 10), (2, 5000)]
    read, end = spool.read(0, 100)
    assert [(r["detail"]["n"], len(r["detail"]["text"])) for r in read] == expected
    spool.close()
    reopened = AuditSpool(tmp_path, 1 << 20)
    assert reopened.position == end
    one_by_one = []
    position = 0
    while position < end:
        events, position = reopened.read(position, 1)
        one_by_one += events
    assert [(r["detail"]["n"], len(r["detail"]["text"])) for r in one_by_one] == expected


def test_a_torn_position_file_replays_from_the_oldest_event_kept(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path, 1 << 20, ["siem"])
    for n in range(5):
        spool.append(event(n))
    spool.ack(spool.position)
    spool.mark_forwarded("siem", spool.position)
    spool.close()
    (tmp_path / "acked").write_bytes(b"\x00" * 20)  # what a power loss can leave of an overwrite
    (tmp_path / "forwarded.siem").write_bytes(b"12\x00")
    reopened = AuditSpool(tmp_path, 1 << 20, ["siem"])
    assert reopened.acked == 0 and reopened.forwarded("siem") == 0  # sinks skip ids they hold; channels resend
    assert [r["detail"]["n"] for r in reopened.read(0, 10)[0]] == list(range(5))


def test_records_an_earlier_version_wrote_with_unseeded_crcs_are_read_and_its_spare_is_dropped(
        tmp_path: Path) -> None:
    """Versions before seeded CRCs wrote the plain length and CRC-32: their records left in a spool are read back,
    and new ones follow them. Their spare segment (zeroed, or with old records still in it) is deleted rather
    than reused: its old records would pass the unseeded check."""
    payloads = [events_module.spooled(event(n)) for n in range(2)]
    (tmp_path / "00000000000000000000.spool").write_bytes(
        b"".join(struct.pack("<II", len(p), zlib.crc32(p)) + p for p in payloads) + bytes(4096))
    (tmp_path / "spare").write_bytes(b"old records")
    spool = AuditSpool(tmp_path, 1 << 20)
    assert not (tmp_path / "spare").exists()
    spool.append(event(2))
    spool.close()
    reopened = AuditSpool(tmp_path, 1 << 20)
    assert [r["detail"]["n"] for r in reopened.read(0, 10)[0]] == [0, 1, 2]


def test_a_damaged_record_in_an_earlier_segment_is_skipped_to_the_next_segment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """After a power loss, bytes never synced may read back as zeros anywhere (the events there were stored by the
    database or were durable nowhere): reading goes on at the next segment instead of failing for good."""
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 2048)
    spool = AuditSpool(tmp_path, 1 << 20)
    for n in range(30):
        spool.append(event(n))
    spool.close()
    segments = sorted(tmp_path.glob("*.spool"))
    assert len(segments) >= 3
    second = bytearray(segments[1].read_bytes())
    second[len(second) // 2:] = bytes(len(second) - len(second) // 2)
    segments[1].write_bytes(second)

    reopened = AuditSpool(tmp_path, 1 << 20)
    read, end = reopened.read(0, 100)
    numbers = [r["detail"]["n"] for r in read]
    assert end == reopened.position and numbers[-1] == 29
    assert numbers == sorted(numbers) and 0 < 30 - len(numbers) < 10  # only the damaged segment's tail is gone
    assert "skipped" in caplog.text and segments[1].name in caplog.text
