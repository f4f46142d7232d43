from __future__ import annotations

from broker.app import Kernel
from broker.kernel.identity.keys import KeySpec
from broker.kernel.identity.maintenance import DAY, IdentityUpkeep, UpkeepPolicy
from tests.conftest import FakeClock


def upkeep(kernel: Kernel, clock: FakeClock, inactivity_days: int = 0) -> IdentityUpkeep:
    return IdentityUpkeep(kernel.db, kernel.identity.keys, kernel.identity.sessions, kernel.events, clock,
                          UpkeepPolicy(purge_after_days=30, inactivity_days=inactivity_days, expiry_warning_days=7))


async def test_soft_deleted_records_are_purged_after_thirty_days(kernel: Kernel, clock: FakeClock) -> None:
    identity = kernel.identity
    user = await identity.users.create("gone@example.com")
    team = await identity.teams.create("gone")
    await identity.keys.issue(KeySpec("k", user.id))
    await identity.delete_user(user.id)
    await identity.delete_team(team.id)
    clock.advance(29 * DAY)
    assert (await upkeep(kernel, clock).run_once()).purged == 0
    clock.advance(2 * DAY)
    assert (await upkeep(kernel, clock).run_once()).purged == 3
    assert await kernel.db.fetch("SELECT id FROM users WHERE id = ?", user.id) == []


async def test_unused_keys_are_disabled_after_the_inactivity_timeout(kernel: Kernel, clock: FakeClock) -> None:
    identity = kernel.identity
    user = await identity.users.create("idle@example.com")
    idle = await identity.keys.issue(KeySpec("idle", user.id))
    busy = await identity.keys.issue(KeySpec("busy", user.id))
    clock.advance(9 * DAY)
    await identity.keys.verify(busy.secret)
    clock.advance(2 * DAY)
    report = await upkeep(kernel, clock, inactivity_days=10).run_once()
    assert report.disabled_inactive == 1
    assert (await identity.keys.get(idle.key.id)).disabled_reason == "inactive"
    assert (await identity.keys.get(busy.key.id)).disabled_reason is None
    events = await kernel.events.recent("api_key.disabled_inactive")
    assert [e.subject_id for e in events] == [idle.key.id]


async def test_expiry_warning_is_emitted_once_ahead_of_time(kernel: Kernel, clock: FakeClock) -> None:
    identity = kernel.identity
    user = await identity.users.create("exp@example.com")
    soon = await identity.keys.issue(KeySpec("soon", user.id, expires_at=clock.now() + 3 * DAY))
    await identity.keys.issue(KeySpec("later", user.id, expires_at=clock.now() + 60 * DAY))
    seen: list[dict[str, object]] = []

    async def collect(message: dict[str, object]) -> None:
        seen.append(message)

    kernel.broadcast.subscribe("kernel.events", collect)
    assert (await upkeep(kernel, clock).run_once()).expiry_warnings == 1
    assert (await upkeep(kernel, clock).run_once()).expiry_warnings == 0
    assert [m["subject_id"] for m in seen] == [soon.key.id]
    assert seen[0]["kind"] == "api_key.expiring"
