"""The audit spool: every audit event is appended to a local file before the request it describes is answered,
and leaves the spool only once a sink has confirmed it.

Appending copies the record into the current segment, a file mapped into memory (shared, so the copy is in the
kernel's page cache at once): an event survives the process being killed (``kill -9``) the moment ``append``
returns; ``sync`` (fsync, in a worker thread) makes it survive the machine too. A sink that makes events durable
itself (the store: its commit is an fsync) needs no ``sync`` for a batch it takes at once; the store writer calls
it when a write fails and while forwarding channels are configured (they have no other copy). A mapping rather
than a ``write`` per event: under load a ``write`` waited on the filesystem journal (the database writes to the
same disk) for about 10 us on average and now and then for milliseconds, on the event loop; a copy into the
mapping costs a page fault per 4 KiB at most. Each segment's space is reserved (fallocate) when it is started, so
a full disk is an error from ``append``, never a SIGBUS from a copy. After a restart the events past the
acknowledged position are read again and handed on again; sinks ignore an id they already hold.

Layout, in ``<data_dir>/audit-spool``: segment files named after the spool-wide byte position they start at
(``00000000000000000000.spool``), each a run of records — 4-byte little-endian length (its top bit set), 4-byte
CRC-32 of the payload seeded with the record's spool-wide position, the payload (the event as JSON) — and
``acked``, the position up to which the sink confirmed. A record cut short by a crash is found by its length or CRC
when the spool is opened and cut off; nothing after it was acknowledged to anyone. The seed makes a record valid
only where it was written: a reused segment's old records, past the new ones after a crash, fail their CRC, so the
segment need not be zeroed first. (Records without the top bit, from versions before the seed, are checked with
an unseeded CRC.)

After a power loss, what was never made durable may read back as zeros or old bytes, and not only at the end: the
``acked`` file may be older than the database's latest commit, and a segment acknowledged since (hence never
synced) may be back. Reading skips from a damaged record to the next segment: what it passes over was either
stored already or was not durable anywhere.

A segment everyone is done with becomes the next one (renamed ``spare.seg`` until a new segment starts) instead
of being deleted: writing into a file's pages that are in the page cache with their disk blocks allocated cost
about 0.2 us per 4 KiB page here, filling a new file's pages about 8.5 us (block allocation, the page cache
growing): 1.6-1.9 us an event of 730 bytes in the copy alone.

Forwarding channels (syslog, webhooks, NATS) read the same spool, each from its own position, kept in
``forwarded.<channel>``: the spool is every channel's queue, so a channel that is down keeps its events, in
order, without holding up the sink or the others. Only the sink, the system of record, makes the spool full; a
channel that falls more than its own bound behind loses its oldest segments (counted, logged), so it never holds
the disk either.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import mmap
import os
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from broker.kernel.audit.events import AuditEvent, spooled, unspooled

log = logging.getLogger(__name__)
SEGMENT_BYTES = 8 * 1024 * 1024  # a new segment starts past this; acknowledged ones go (or are reused) whole
_HEADER = struct.Struct("<II")
_READ_BYTES = 1 << 20  # reading a finished segment: a chunk at a time
_SUFFIX = ".spool"
_SPARE = "spare.seg"  # an acknowledged segment kept to become the next one (not a *.spool: no reader sees it)
# A spare left by a version before seeded CRCs: its old records would pass the unseeded check; deleted at start.
_LEGACY_SPARE = "spare"
_SEEDED = 0x8000_0000  # the length's top bit: the record's CRC is seeded with its position


class SpoolFull(Exception):
    """The spool holds its maximum of unacknowledged bytes (the sink has been failing for a while)."""


class SpoolInUse(Exception):
    """Another process holds this spool (two instances must not share a data directory)."""


class AuditSpool:
    def __init__(self, directory: Path, max_bytes: int, channels: Iterable[str] = ()) -> None:
        self._directory = directory
        self._max_bytes = max_bytes
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # events hold who did what: owner only
        self._lock = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel if the process dies
        except BlockingIOError:
            os.close(self._lock)
            raise SpoolInUse(f"another Warden process is using the audit spool in {directory}; give each"
                             " instance its own server.data_dir") from None
        segments = self._segments()
        acked = self._read_position("acked", segments[0] if segments else 0)
        if not segments:
            segments = [acked]
            (directory / _name(acked)).touch(mode=0o600)
        self._starts = segments  # the segments' start positions, oldest first (only this process changes them)
        self._position_files: dict[str, int] = {}  # descriptors of ``acked`` and ``forwarded.*``, kept open
        self._segment_start = segments[-1]
        self._position = self._segment_start + _valid_length(directory / _name(self._segment_start),
                                                             self._segment_start)
        os.truncate(directory / _name(self._segment_start), self._position - self._segment_start)
        self._acked = min(max(acked, segments[0]), self._position)  # 0 (a torn file): from the oldest kept
        self.left_over = self._position - self._acked  # what an earlier process recorded but the sink never took
        # A channel seen for the first time starts with what is recorded from now on; one no longer
        # configured lets go of its segments.
        self._forwarded = {name: min(max(self._read_position(_forwarded_file(name), self._position), segments[0]),
                                     self._position) for name in channels}
        for stale in directory.glob(_forwarded_file("*")):
            if stale.name not in {_forwarded_file(name) for name in self._forwarded}:
                stale.unlink()
        (directory / _LEGACY_SPARE).unlink(missing_ok=True)
        self._spare = (directory / _SPARE).exists()
        self._delete_below(self._kept_from())
        self._fd, self._map = _mapped(directory / _name(self._segment_start), self._position - self._segment_start)
        self._room: anyio.Event | None = None  # set when an acknowledgement makes room in a full spool
        # Finished segments' descriptors by start, closed once ``sync`` made them durable or they are let go
        self._retired: dict[int, int] = {}
        self._grown: anyio.Event | None = None  # set by the next append, for channels waiting for events

    # -- writing (on the event loop: one write to the page cache) ---------------------------------------------

    @property
    def position(self) -> int:
        """Where the next event will be appended (spool-wide bytes)."""
        return self._position

    @property
    def acked(self) -> int:
        return self._acked

    @property
    def unacked_bytes(self) -> int:
        return self._position - self._acked

    @property
    def has_channels(self) -> bool:
        """Whether forwarding channels read this spool (for them it is the only durable copy of an event)."""
        return bool(self._forwarded)

    def full(self) -> bool:
        return self.unacked_bytes >= self._max_bytes

    def append(self, event: AuditEvent) -> None:
        """Append one event, or raise SpoolFull."""
        self.append_spooled(spooled(event))

    def append_spooled(self, payload: bytes) -> None:
        """Append one event as ``broker.kernel.audit.events.spooled`` made it, or raise SpoolFull."""
        if self.full():
            raise SpoolFull(f"the audit spool holds {self.unacked_bytes} unacknowledged bytes")
        position = self._position
        record = _HEADER.pack(len(payload) | _SEEDED, zlib.crc32(payload, _seed(position))) + payload
        offset = position - self._segment_start
        if offset + len(record) > len(self._map):
            self._rotate(len(record))
            offset = 0
        self._map[offset:offset + len(record)] = record
        self._position = position + len(record)
        if self._grown is not None:
            self._grown.set()
            self._grown = None

    async def wait_beyond(self, position: int) -> None:
        """Return once something was appended past ``position``."""
        while self._position <= position:
            if self._grown is None:
                self._grown = anyio.Event()
            await self._grown.wait()

    async def wait_for_room(self) -> None:
        while self.full():
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()

    async def sync(self) -> None:
        """Make what was appended so far durable on disk (fsync in a worker thread, off the event loop)."""
        retired, self._retired = self._retired, {}
        descriptors = [*retired.values(), self._fd]

        def fsync_all() -> None:
            for descriptor in descriptors:
                os.fsync(descriptor)

        try:
            await anyio.to_thread.run_sync(fsync_all)
        except BaseException:
            self._retired = {**retired, **self._retired}  # synced again by the next attempt
            raise
        for descriptor in retired.values():
            os.close(descriptor)

    def close(self) -> None:
        self._finish_segment()
        for descriptor in (*self._retired.values(), *self._position_files.values(), self._fd, self._lock):
            os.close(descriptor)
        self._retired = {}

    def _rotate(self, record_bytes: int) -> None:
        """Start a new segment at the current position (one record may be larger than SEGMENT_BYTES)."""
        if self._position > self._segment_start:
            self._finish_segment()
            self._retired[self._segment_start] = self._fd  # made durable by a ``sync``, not here on the loop
            self._segment_start = self._position
            self._starts.append(self._segment_start)
            if self._spare:
                self._spare = False
                with contextlib.suppress(FileNotFoundError):  # removed behind the spool's back: a new file then
                    os.replace(self._directory / _SPARE, self._directory / _name(self._segment_start))
        else:  # nothing in this segment yet: it grows to take the record
            self._map.close()
            os.close(self._fd)
        self._fd, self._map = _mapped(self._directory / _name(self._segment_start), 0, record_bytes)

    def _finish_segment(self) -> None:
        """Unmap the segment being written and give back its reserved space past the last record (the data
        stays in the page cache: unmapping neither loses nor flushes it)."""
        self._map.close()
        os.ftruncate(self._fd, self._position - self._segment_start)

    # -- reading and acknowledging (the writer task) ------------------------------------------------------------

    def read(self, start: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Up to ``limit`` events from ``start`` (a record boundary), and the position after the last one."""
        payloads, position = self.read_payloads(start, limit)
        return [unspooled(payload) for payload in payloads], position

    def read_payloads(self, start: int, limit: int, end: int | None = None) -> tuple[list[bytes], int]:
        """``read``, the events left as they were spooled (``broker.kernel.audit.events.spooled``); none at or
        past ``end`` (a record boundary) when given."""
        return self._payloads(start, limit, self._position if end is None else end)

    def oldest_unacked_at(self) -> float | None:
        """When the oldest event not yet acknowledged was recorded (None when every event was)."""
        if self._position == self._acked:
            return None
        events, _ = self.read(self._acked, 1)
        return float(events[0]["at"]) if events else None

    def ack(self, position: int) -> None:
        """A sink holds everything before ``position``: remember it, delete segments wholly before it."""
        if position <= self._acked:
            return
        self._acked = position
        self._write_position("acked", position)
        self._delete_below(self._kept_from())
        if self._room is not None and not self.full():
            self._room.set()
            self._room = None

    # -- forwarding channels (each its own task) -----------------------------------------------------------

    def forwarded(self, channel: str) -> int:
        """The position up to which ``channel`` delivered."""
        return self._forwarded[channel]

    def forwarded_lag(self) -> dict[str, int]:
        """Bytes recorded but not yet delivered, by channel."""
        return {name: self._position - position for name, position in self._forwarded.items()}

    def mark_forwarded(self, channel: str, position: int) -> None:
        if position <= self._forwarded[channel]:
            return
        self._forwarded[channel] = position
        self._write_position(_forwarded_file(channel), position)
        self._delete_below(self._kept_from())

    def skip_lagging(self, channel: str, max_lag: int) -> int:
        """When ``channel`` is more than ``max_lag`` bytes behind, give up its oldest segments until it is not
        (or only the segment being written is left); return how many events it thereby lost."""
        start = self._forwarded[channel]
        if self._position - start <= max_lag:
            return 0
        target = next((s for s in self._starts if s > start and self._position - s <= max_lag), self._starts[-1])
        if target <= start:
            return 0
        lost = 0
        position = start
        while position < target:
            payloads, position = self._payloads(position, 10_000, target)
            lost += len(payloads)
        self.mark_forwarded(channel, target)
        return lost

    # -- helpers ------------------------------------------------------------------------------------------------

    def _payloads(self, start: int, limit: int, end: int) -> tuple[list[bytes], int]:
        """The payloads of up to ``limit`` records from ``start`` to at most ``end`` (record boundaries), and the
        position after the last one; read a chunk at a time, the segment being written from its mapping."""
        payloads: list[bytes] = []
        position = start
        while len(payloads) < limit and position < end:
            index = bisect.bisect_right(self._starts, position) - 1
            segment = self._starts[index]
            # Segments are contiguous: one ends where the next starts.
            segment_end = min(end, self._starts[index + 1] if index + 1 < len(self._starts) else self._position)
            chunk = self._bytes(segment, position, min(segment_end, position + _READ_BYTES))
            offset = 0
            while len(payloads) < limit and position < segment_end:
                payload = _record_at(chunk, offset, position)
                if payload is None:
                    if offset:
                        break  # the rest of the segment is in the next chunk (or a damaged record, found there)
                    length = _HEADER.unpack_from(chunk)[0] & ~_SEEDED if len(chunk) >= _HEADER.size else 0
                    if len(chunk) < _HEADER.size + length <= segment_end - position:  # larger than a chunk
                        chunk = self._bytes(segment, position, position + _HEADER.size + length)
                        if len(chunk) == _HEADER.size + length:
                            continue
                    if index + 1 == len(self._starts):  # the segment being written was checked when opened
                        raise ValueError(f"audit spool: no whole, undamaged record at {position} in"
                                         f" {_name(segment)}")
                    log.warning("audit spool: no whole, undamaged record at %d in %s (what a power loss left of"
                                " bytes never synced); skipped %d bytes to the next segment", position,
                                _name(segment), segment_end - position)
                    position = segment_end
                    break
                payloads.append(payload)
                offset += _HEADER.size + len(payload)
                position += _HEADER.size + len(payload)
        return payloads, position

    def _bytes(self, segment: int, start: int, end: int) -> bytes:
        """Spool bytes ``start`` to ``end``, all in ``segment``."""
        if segment == self._segment_start:
            return self._map[start - segment:end - segment]
        with (self._directory / _name(segment)).open("rb") as file:
            file.seek(start - segment)
            return file.read(end - start)

    def _segments(self) -> list[int]:
        return sorted(int(p.name.removesuffix(_SUFFIX)) for p in self._directory.glob("*" + _SUFFIX))

    def _delete_below(self, position: int) -> None:
        """Let go of the segments that end at or before ``position`` (never the last one, still appended to): the
        first becomes the spare when there is none, the others are deleted."""
        while len(self._starts) > 1 and self._starts[1] <= position:
            start = self._starts.pop(0)
            if (descriptor := self._retired.pop(start, None)) is not None:  # never synced: its events are stored
                os.close(descriptor)
            path = self._directory / _name(start)
            if not self._spare and path.exists():
                os.replace(path, self._directory / _SPARE)
                self._spare = True
            else:
                path.unlink(missing_ok=True)

    def _kept_from(self) -> int:
        """Where the oldest position anyone still needs is: segments wholly before it can go."""
        return min([self._acked, *self._forwarded.values()])

    def _read_position(self, file: str, default: int) -> int:
        try:
            return int((self._directory / file).read_text().strip())
        except FileNotFoundError:
            return default
        except ValueError:  # cut short by a power loss: from the oldest event kept (sinks skip what they hold)
            return 0

    def _write_position(self, file: str, position: int) -> None:
        """Overwrite the position in place: one small write to a descriptor kept open (a temporary file and a
        rename per batch were a directory change each, on the event loop). Fixed width, so nothing is left of
        a longer number before it; a power loss that tears it is read as "from the oldest event kept"."""
        descriptor = self._position_files.get(file)
        if descriptor is None:
            descriptor = os.open(self._directory / file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._position_files[file] = descriptor
        os.pwrite(descriptor, b"%020d" % position, 0)


def _forwarded_file(channel: str) -> str:
    return f"forwarded.{channel}"


def _name(start: int) -> str:
    return f"{start:020d}{_SUFFIX}"


def _mapped(path: Path, used: int, record_bytes: int = 0) -> tuple[int, mmap.mmap]:
    """Open a segment for appending past ``used`` bytes: its space reserved, zeros past ``used``, mapped."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        size = max(SEGMENT_BYTES, used + record_bytes)
        os.posix_fallocate(descriptor, 0, size)
        return descriptor, mmap.mmap(descriptor, size)
    except BaseException:
        os.close(descriptor)
        raise


def _valid_length(path: Path, start: int) -> int:
    """The length of the run of whole, CRC-valid records at the start of the segment starting at ``start``."""
    data = path.read_bytes()
    offset = 0
    while (payload := _record_at(data, offset, start + offset)) is not None:
        offset += _HEADER.size + len(payload)
    return offset


def _seed(position: int) -> int:
    """A record's CRC seed: its spool-wide position, folded to the 32 bits a CRC-32 starts from."""
    return (position ^ position >> 32) & 0xFFFF_FFFF


def _record_at(data: bytes, offset: int, position: int) -> bytes | None:
    """The payload of the record at ``offset`` in ``data``, spool-wide at ``position``, or None when no whole,
    CRC-valid one starts there (an empty one counts as none: zeros past the last record, reserved or left by a
    crash, are no record; nor does an old one in a reused segment, written at another position)."""
    if offset + _HEADER.size > len(data):
        return None
    length, crc = _HEADER.unpack_from(data, offset)
    seed = _seed(position) if length & _SEEDED else 0
    length &= ~_SEEDED
    payload = data[offset + _HEADER.size:offset + _HEADER.size + length]
    if not length or len(payload) < length or zlib.crc32(payload, seed) != crc:
        return None
    return payload


class SpoolMetrics(Collector):
    """``warden_audit_spool_bytes``: recorded events not yet confirmed by the sink (read when scraped)."""

    def __init__(self, spool: AuditSpool) -> None:
        self._spool = spool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("warden_audit_spool_bytes", "Audit events spooled but not yet confirmed by the"
                                " audit sink, in bytes", value=self._spool.unacked_bytes)
        oldest = self._spool.oldest_unacked_at()
        yield GaugeMetricFamily("warden_audit_spool_oldest_age_seconds", "Age of the oldest audit event not yet"
                                " confirmed by the audit sink (0 when there is none)",
                                value=max(0.0, time.time() - oldest) if oldest is not None else 0.0)
        lag = GaugeMetricFamily("warden_audit_forward_lag_bytes", "Audit events recorded but not yet delivered"
                                " by a forwarding channel, in bytes", labels=["channel"])
        for channel, behind in self._spool.forwarded_lag().items():
            lag.add_metric([channel], behind)
        yield lag
