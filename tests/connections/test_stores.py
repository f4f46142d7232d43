"""The connections feature's storage ports, each on its embedded adapter and on the real server:
linked accounts (SQLite, PostgreSQL), pending authorizations and refresh locks (store, Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from redis.asyncio import Redis

from broker.config import WardenConfig
from broker.connections.links import LinkStore, TokenSet
from broker.connections.locks import CredentialLocks, RedisLock, SharedLock, StoreLock
from broker.connections.pending import PendingAuthorizations, RedisPendingAuthorizations, StorePendingAuthorizations
from broker.kernel.crypto import KeyRing, SealedValueError, SecretBox
from broker.kernel.errors import InvalidInput
from broker.kernel.store.migrations import migrate
from broker.kernel.store.ports import Database
from broker.storage import open_database
from tests.conftest import FakeClock


@pytest.fixture
async def db(config: WardenConfig) -> AsyncIterator[Database]:
    database = await open_database(config)
    try:
        await migrate(database)
        await database.execute("INSERT INTO users (id, email, name, disabled, created_at, updated_at)"
                               " VALUES ('u1', 'a@example.com', 'a', FALSE, 0, 0)")
        yield database
    finally:
        await database.close()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(KeyRing.parse(KeyRing.generate_entry(1)))


async def test_links_keep_tokens_sealed_and_one_default(db: Database, box: SecretBox, clock: FakeClock) -> None:
    links = LinkStore(db, box, clock)
    work = await links.save("notes", "u1", "work", "oauth", TokenSet("access-1", "refresh-1", 100.0), "as#alice")
    home = await links.save("notes", "u1", "home", "personal_token", TokenSet("pat-1"), "notes#home")
    assert (work.is_default, home.is_default) == (True, False)
    assert (await links.find("notes", "u1", None)).id == work.id  # type: ignore[union-attr]
    row = await db.fetchrow("SELECT sealed FROM upstream_links WHERE id = ?", work.id)
    assert row is not None and "access-1" not in row["sealed"] and "refresh-1" not in row["sealed"]
    assert "access-1" not in str(work.public()) and "refresh" not in str(work.public())

    await links.make_default(home)
    assert (await links.find("notes", "u1", None)).label == "home"  # type: ignore[union-attr]
    await links.delete(await links.get(home.id))
    assert (await links.find("notes", "u1", None)).label == "work"  # type: ignore[union-attr]
    with pytest.raises(InvalidInput):
        await links.save("notes", "u1", "Not A Label", "oauth", TokenSet("x"), "s")


async def test_a_refresh_writes_only_over_the_version_it_read(db: Database, box: SecretBox, clock: FakeClock) -> None:
    links = LinkStore(db, box, clock)
    link = await links.save("notes", "u1", "work", "oauth", TokenSet("a1", "r1", 100.0), "as#alice")
    first = await links.refreshed(link, TokenSet("a2", "r2", 200.0))
    assert first is not None and first.tokens.access_token == "a2"
    assert await links.refreshed(link, TokenSet("a3", "r3", 300.0)) is None  # stale: someone refreshed first
    assert (await links.get(link.id)).tokens.access_token == "a2"


async def test_a_sealed_token_does_not_open_on_another_row(db: Database, box: SecretBox, clock: FakeClock) -> None:
    links = LinkStore(db, box, clock)
    one = await links.save("notes", "u1", "one", "personal_token", TokenSet("secret-one"), "s")
    two = await links.save("notes", "u1", "two", "personal_token", TokenSet("secret-two"), "s")
    row = await db.fetchrow("SELECT sealed FROM upstream_links WHERE id = ?", one.id)
    assert row is not None
    await db.execute("UPDATE upstream_links SET sealed = ? WHERE id = ?", row["sealed"], two.id)
    with pytest.raises(SealedValueError):
        await links.get(two.id)


@pytest.fixture(params=["store", "redis"])
async def pending(request: pytest.FixtureRequest, db: Database, clock: FakeClock
                  ) -> AsyncIterator[PendingAuthorizations]:
    if request.param == "store":
        yield StorePendingAuthorizations(db, clock)
        return
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        yield RedisPendingAuthorizations(redis, 1.0)
    finally:
        await redis.aclose()


async def test_a_pending_authorization_is_taken_once(pending: PendingAuthorizations) -> None:
    state = uuid.uuid4().hex
    await pending.put(state, "payload")
    assert await pending.take("not-" + state) is None
    assert await pending.take(state) == "payload"
    assert await pending.take(state) is None  # a replay finds nothing


async def test_a_pending_authorization_expires(db: Database, clock: FakeClock) -> None:
    pending = StorePendingAuthorizations(db, clock)
    await pending.put("s", "payload", ttl=600)
    clock.advance(601)
    assert await pending.take("s") is None
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        shared = RedisPendingAuthorizations(redis, 1.0)
        state = uuid.uuid4().hex
        await shared.put(state, "payload", ttl=0.05)
        await anyio.sleep(0.2)
        assert await shared.take(state) is None
    finally:
        await redis.aclose()


async def test_the_state_is_stored_hashed(db: Database, clock: FakeClock) -> None:
    await StorePendingAuthorizations(db, clock).put("the-state-itself", "payload")
    rows = await db.fetch("SELECT state_hash FROM oauth_states")
    assert rows and all(r["state_hash"] != "the-state-itself" for r in rows)


@pytest.fixture(params=["store", "redis"])
async def shared_lock(request: pytest.FixtureRequest, db: Database, clock: FakeClock) -> AsyncIterator[SharedLock]:
    if request.param == "store":
        yield StoreLock(db, clock)
        return
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        yield RedisLock(redis)
    finally:
        await redis.aclose()


async def test_two_instances_never_hold_one_credential_lock_at_once(shared_lock: SharedLock) -> None:
    """Two lock managers (two instances) over one shared lock: their critical sections never overlap."""
    name = "link:" + uuid.uuid4().hex
    instances = [CredentialLocks(shared_lock), CredentialLocks(shared_lock)]
    inside, overlaps, entered = 0, 0, 0

    async def work(locks: CredentialLocks) -> None:
        nonlocal inside, overlaps, entered
        async with locks.hold(name):
            inside += 1
            entered += 1
            overlaps += inside > 1
            await anyio.sleep(0.01)
            inside -= 1

    async with anyio.create_task_group() as group:
        for i in range(10):
            group.start_soon(work, instances[i % 2])
    assert (entered, overlaps) == (10, 0)


async def test_a_dead_holders_store_lock_expires(db: Database, clock: FakeClock) -> None:
    lock = StoreLock(db, clock)
    assert await lock.acquire("link:x", "dead")
    assert not await lock.acquire("link:x", "alive")
    clock.advance(31)
    assert await lock.acquire("link:x", "alive")
