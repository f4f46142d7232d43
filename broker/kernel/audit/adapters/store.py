"""Audit events spooled, then written to the database in batches by one writer task, off the request path (an
event is stored within about a quarter of a second of being recorded while the database answers).

``record`` appends the event to the spool (``broker/kernel/audit/spool.py``) before it returns, so the event
survives the process being killed; the writer takes the events from the last acknowledged position (the rows
``record`` made, kept in memory, or read back from the spool for what an earlier run left), inserts them (ids
already stored are skipped, so a replay never duplicates) and only then acknowledges them. The database's commit
makes a batch durable; the spool's copy is synced (fsync) only while it is the only one: when a write fails, and
for every batch while forwarding channels read the spool. Syncing each batch the database then took at once wrote
back pages no one reads again (its thread's CPU: 1-2.6 us a request under load, docs/performance.md), for no
event more kept after a power loss: either way what the last few hundred milliseconds recorded is not yet on
disk. While the database is down the writer retries and the spool grows; when it holds its maximum, ``record``
waits for room (back pressure), it never drops an event. ``run`` drains the spool before it returns on shutdown,
and starts by replaying what an earlier process left unacknowledged.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Sequence
from typing import Any, Final

import anyio
import orjson
from prometheus_client import CollectorRegistry, Counter

from broker.kernel.audit.body_store import BodyStore, offload_key
from broker.kernel.audit.events import (
    SPOOLED,
    STORED,
    AuditEvent,
    has_bodies,
    spooled_row,
    stored_row,
    unspooled,
    without_nul,
)
from broker.kernel.audit.spool import AuditSpool, SpoolFull
from broker.kernel.errors import AuditUnavailable
from broker.kernel.store.ports import Database, Row

log = logging.getLogger(__name__)
BATCH = 1000
REMEMBERED = 4 * BATCH  # rows kept for the writer, about 4 MB at most
# Seconds an event may wait for others to share its transaction. Each batch wakes the database thread, on the
# same core as the event loop: a quarter of a second rather than 50 ms cut auditing's CPU a request by about a
# third under load (bench/audit_cost.py, docs/performance.md).
LINGER = 0.25
_COLUMNS = SPOOLED[:STORED]  # a spooled event's first values are the row
# search_text: an offloaded body's first SEARCHED_CHARS characters, so that full-text search finds it too (NULL
# for a body kept whole in content)
_BODY_COLUMNS = ("event_id", "part", "at", "bytes", "redactions", "content", "offload_key", "search_text")
SEARCHED_CHARS = 131_072  # as much of a body as PostgreSQL's full-text vector of it takes (migration 0018)
_INSERT_BODY = (f"INSERT INTO audit_bodies ({', '.join(_BODY_COLUMNS)}) VALUES ({', '.join('?' * len(_BODY_COLUMNS))})"
                " ON CONFLICT (event_id, part) DO NOTHING")
_TARGET = _COLUMNS.index("target")  # the row's values before it: ids, time and surface, all Warden's own
_DETAIL = _COLUMNS.index("detail")


# An event this process appended: where its record starts and ends in the spool, its row, and the spooled event
# when it carries bodies (their rows are made from it). A plain tuple: a named one cost ``record`` a third of
# what appending the event to the spool does.
_Remembered = tuple[int, int, Sequence[Any], bytes | None]
_START: Final = 0
_END: Final = 1
_ROW: Final = 2
_PAYLOAD: Final = 3


class StoreAuditSink:
    """The embedded default sink (SQLite or PostgreSQL, whichever is the store)."""

    def __init__(self, db: Database, spool: AuditSpool, bodies: BodyStore, refuse_when_full: bool = False,
                 registry: CollectorRegistry | None = None) -> None:
        self._db = db
        self._spool = spool
        self._bodies = bodies
        self._refuse_when_full = refuse_when_full
        # The one kind of request with no audit event: refused because its event could not have been kept.
        self.refused_total = Counter("warden_audit_refused_requests", "Requests refused with 503"
                                     " audit_unavailable because the audit spool was full", registry=registry)
        self._closed = False
        self._appended: anyio.Event | None = None  # set when an event arrives while the writer waits for one
        # The rows of the latest events this process appended, one contiguous run of spool records ending where
        # the spool ends, for the writer to insert as they are: reading them back from the spool and parsing
        # them again cost it about as much as appending them. What is not here (an earlier run's events, or
        # those appended while REMEMBERED rows waited, the database being slow or down) is read from the spool.
        self._remembered: collections.deque[_Remembered] = collections.deque()
        self.drained = anyio.Event()  # set when ``run`` has written everything recorded before ``close``

    def admit(self) -> None:
        if self._refuse_when_full and self._spool.full():
            self.refused_total.inc()
            raise AuditUnavailable("audit is mandatory and the audit spool is full (the audit database has not"
                                   " taken events for a while); retry later")

    async def record(self, event: AuditEvent) -> None:
        # Even after ``close`` (a stream cancelled at shutdown): the spool keeps it for the next start.
        row, payload = spooled_row(event)
        while True:
            start = self._spool.position
            try:
                self._spool.append_spooled(payload)
                break
            except SpoolFull as exc:
                log.warning("audit: %s; requests wait until the database takes events again", exc)
                await self._spool.wait_for_room()
        remembered = self._remembered
        if len(remembered) < REMEMBERED and (not remembered or remembered[-1][_END] == start):
            remembered.append((start, self._spool.position, row, payload if event.bodies else None))
        if self._appended is not None:
            self._appended.set()

    def close(self) -> None:
        """A running ``run`` writes what the spool holds and returns (idempotent); events recorded later stay
        in the spool until the next start."""
        self._closed = True
        if self._appended is not None:
            self._appended.set()

    async def run(self) -> None:
        position = self._spool.acked
        if self._spool.left_over:
            log.warning("audit: replaying %d spooled bytes an earlier run left unwritten", self._spool.left_over)
        full_batch = False
        while True:
            if self._spool.position == position:
                if self._closed:
                    self.drained.set()
                    return
                self._appended = anyio.Event()
                await self._appended.wait()
                self._appended = None
                continue
            if not (full_batch or self._closed):
                # Let what arrives shortly after share the transaction: a transaction per few events costs
                # the database thread and the event loop far more than a short delay before they are stored.
                await anyio.sleep(LINGER)
            rows, with_bodies, after = self._batch(position)
            full_batch = len(rows) == BATCH
            await self._write(rows, with_bodies)
            self._spool.ack(after)
            position = after

    def _batch(self, position: int) -> tuple[list[Sequence[Any]], list[bytes], int]:
        """The rows of up to BATCH events from ``position``, the spooled events among them that carry bodies,
        and the position after them: remembered ones when they start there, else read from the spool."""
        remembered = self._remembered
        while remembered and remembered[0][_START] < position:  # written already (not expected: one writer)
            remembered.popleft()
        if remembered and remembered[0][_START] == position:
            taken = [remembered.popleft() for _ in range(min(BATCH, len(remembered)))]
            return ([item[_ROW] for item in taken], [item[_PAYLOAD] for item in taken if item[_PAYLOAD] is not None],
                    taken[-1][_END])
        payloads, after = self._spool.read_payloads(position, BATCH, remembered[0][_START] if remembered else None)
        return [stored_row(payload) for payload in payloads], [p for p in payloads if has_bodies(p)], after

    async def _write(self, rows: list[Sequence[Any]], with_bodies: list[bytes]) -> None:
        """Retry until written; meanwhile the spool grows and, once full, ``record`` makes requests wait."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with anyio.CancelScope(shield=True):  # a started transaction finishes even during shutdown
                    if self._spool.has_channels:  # the spool's copy is their only one (see above)
                        await self._spool.sync()
                    bodies = await self._body_rows(with_bodies)  # offloaded first: a row never points at nothing
                    if attempt == 1:
                        await self._insert(rows, bodies)
                    else:
                        await self._insert_isolating(rows, bodies)
                if attempt > 1:
                    log.warning("audit writes work again after %d failed attempt(s)", attempt - 1)
                return
            except Exception as exc:
                log.error("audit write of %d event(s) failed (attempt %d): %s", len(rows), attempt, exc)
                await self._sync_after_failure()
            try:
                await anyio.sleep(min(0.2 * 2**attempt, 5))
            except anyio.get_cancelled_exc_class():
                log.critical("audit: shutting down with %d event(s) unwritten; they stay in the spool and are"
                             " written when Warden starts again", len(rows))
                raise

    async def _sync_after_failure(self) -> None:
        """Sync the spool before the retry's wait: the events are in no database now (nor those recorded while
        the database is down, which each failed attempt syncs too)."""
        try:
            with anyio.CancelScope(shield=True):
                await self._spool.sync()
        except OSError as exc:  # the next attempt syncs again
            log.error("audit spool: sync failed: %s", exc)

    async def _body_rows(self, with_bodies: list[bytes]) -> list[tuple[Any, ...]]:
        rows = []
        for payload in with_bodies:
            event = unspooled(payload)
            for part, body in (event.get("bodies") or {}).items():
                # without_nul: bodies spooled by a version that kept NUL in them
                if body["offload"]:
                    key = offload_key(event["id"], event["at"], part)
                    await self._bodies.put(key, body["text"].encode())
                    content, searched = None, without_nul(body["text"][:SEARCHED_CHARS])
                else:
                    key, content, searched = None, without_nul(body["text"]), None
                rows.append((event["id"], part, event["at"], body["bytes"], orjson.dumps(body["redactions"]).decode(),
                             content, key, searched))
        return rows

    async def _insert(self, rows: Sequence[Sequence[Any]], bodies: list[tuple[Any, ...]]) -> None:
        if not bodies:  # the store's bulk path on its own: on PostgreSQL one COPY, no transaction around it
            await self._db.insert_new("audit_events", _COLUMNS, rows, "id")
            return
        async with self._db.transaction() as tx:
            await tx.execute_many(_INSERT_BODY, bodies)
            await tx.insert_new("audit_events", _COLUMNS, rows, "id")

    async def _insert_isolating(self, rows: Sequence[Sequence[Any]], bodies: list[tuple[Any, ...]]) -> None:
        """``_insert`` for a batch that failed before: when the database answers yet refuses the batch, the part
        it refuses is found by halving, and an event it refuses on its own is stored as an ``unstorable`` row
        that keeps the whole event as JSON text. Retrying the batch as it was would fail forever and hold up
        every event after it (a value no check foresaw: an integer beyond 64 bits from a provider, say). Raises
        when the database does not answer (the caller retries the batch; what was written is skipped then)."""
        try:
            await self._insert(rows, bodies)
            return
        except Exception as exc:
            await self._db.ping()  # down rather than refusing: the caller's retry
            if len(rows) > 1:
                half = len(rows) // 2
                for part in (rows[:half], rows[half:]):
                    ids = {row[0] for row in part}
                    await self._insert_isolating(part, [body for body in bodies if body[0] in ids])
                return
            log.error("audit: the database refuses event %s (%s); stored as an 'unstorable' row that keeps the"
                      " event as JSON text in its detail", rows[0][0], exc)
            await self._insert([unstorable_row(rows[0], bodies, exc)], [])


def unstorable_row(row: Sequence[Any], bodies: list[tuple[Any, ...]], error: Exception) -> tuple[Any, ...]:
    """A row for an event the database refuses: its ids, time, surface and outcome (Warden's own values), action
    ``unstorable``, and in its detail the database's error and the whole event, bodies included, as JSON."""
    event = dict(zip(_COLUMNS, row, strict=True))
    detail = {"unstorable": str(error)[:1000], "event": event,
              "bodies": [{column: value for column, value in zip(_BODY_COLUMNS, body, strict=True)
                          if column != "search_text"} for body in bodies]}  # the body is there whole already
    # The standard library's JSON: any integer, and ASCII only (a NUL or surrogate as an escape), so it stores.
    text = json.dumps(detail, default=str)
    return (*row[:_TARGET], "-", "unstorable", event["outcome"], None, event["duration_ms"] or 0.0, text,
            *[None] * (len(_COLUMNS) - _DETAIL - 1))


class AuditQuery:
    """Reading one stored event and its bodies back (searching is the ``AuditSearch`` port's)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, event_id: str) -> dict[str, Any] | None:
        row = await self._db.fetchrow("SELECT * FROM audit_events WHERE id = ?", event_id)
        return event_from_row(row) if row else None

    async def bodies(self, event_id: str, store: BodyStore) -> dict[str, dict[str, Any]]:
        """The event's captured bodies by part, offloaded ones fetched from ``store``."""
        rows = await self._db.fetch("SELECT * FROM audit_bodies WHERE event_id = ? ORDER BY part", event_id)
        bodies = {}
        for row in rows:
            text = row["content"] if row["offload_key"] is None else \
                (await store.get(row["offload_key"])).decode("utf-8", "replace")
            bodies[row["part"]] = {"text": text, "bytes": row["bytes"], "redactions": json.loads(row["redactions"]),
                                   "offloaded": row["offload_key"] is not None}
        return bodies


def event_from_row(row: Row) -> dict[str, Any]:
    return {**row, "detail": json.loads(row["detail"])}
