from __future__ import annotations

import pytest

from broker.app import Kernel
from broker.kernel.errors import AuthenticationFailed, Conflict, InvalidInput, PermissionDenied
from broker.kernel.identity.keys import LOOKUP_LENGTH, KeySpec
from broker.kernel.identity.models import User
from tests.conftest import FakeClock


async def owner(kernel: Kernel) -> User:
    return await kernel.identity.users.create("owner@example.com")


async def test_issued_key_has_prefix_and_is_stored_only_as_a_keyed_hash(kernel: Kernel) -> None:
    user = await owner(kernel)
    issued = await kernel.identity.keys.issue(KeySpec("k", user.id))
    assert issued.secret.startswith("wdn_") and len(issued.secret) >= 4 + 43
    rows = await kernel.db.fetch("SELECT * FROM api_keys")
    dumped = repr(rows)
    assert issued.secret not in dumped and issued.secret[LOOKUP_LENGTH:] not in dumped
    assert rows[0]["lookup_prefix"] == issued.secret[:LOOKUP_LENGTH]
    verified = await kernel.identity.keys.verify(issued.secret)
    assert verified.key.id == issued.key.id


@pytest.mark.parametrize("secret", ["", "sk-foo", "wdn_short", "wdn_" + "x" * 43])
async def test_malformed_or_unknown_key_is_rejected(kernel: Kernel, secret: str) -> None:
    with pytest.raises(AuthenticationFailed):
        await kernel.identity.keys.verify(secret)


async def test_key_without_the_surface_is_forbidden(kernel: Kernel) -> None:
    user = await owner(kernel)
    issued = await kernel.identity.keys.issue(KeySpec("k", user.id, surfaces=frozenset({"mcp"})))
    await kernel.identity.principal_for_key(issued.secret, "mcp")
    with pytest.raises(PermissionDenied):
        await kernel.identity.principal_for_key(issued.secret, "ai")


async def test_revoked_key_is_rejected_despite_the_cache(kernel: Kernel) -> None:
    user = await owner(kernel)
    issued = await kernel.identity.keys.issue(KeySpec("k", user.id))
    await kernel.identity.keys.verify(issued.secret)  # now cached
    await kernel.identity.keys.revoke(issued.key.id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await kernel.identity.keys.verify(issued.secret)


async def test_expired_key_is_rejected(kernel: Kernel, clock: FakeClock) -> None:
    user = await owner(kernel)
    issued = await kernel.identity.keys.issue(KeySpec("k", user.id, expires_at=clock.now() + 60))
    await kernel.identity.keys.verify(issued.secret)
    clock.advance(61)
    with pytest.raises(AuthenticationFailed, match="expired"):
        await kernel.identity.keys.verify(issued.secret)


async def test_rotation_keeps_the_old_key_valid_for_the_grace_period(kernel: Kernel, clock: FakeClock) -> None:
    keys = kernel.identity.keys
    user = await owner(kernel)
    old = await keys.issue(KeySpec("k", user.id, surfaces=frozenset({"ai"}), allowed_models=frozenset({"m"})))
    new = await keys.rotate(old.key.id, grace_seconds=3600)
    assert new.key.surfaces == old.key.surfaces and new.key.allowed_models == old.key.allowed_models
    assert (await keys.verify(old.secret)).key.state(clock.now()) == "rotating"
    await keys.verify(new.secret)
    clock.advance(3601)
    with pytest.raises(AuthenticationFailed, match="rotated"):
        await keys.verify(old.secret)
    await keys.verify(new.secret)
    with pytest.raises(Conflict):
        await keys.rotate(old.key.id, 60)


async def test_disabling_the_owner_disables_the_key(kernel: Kernel) -> None:
    user = await owner(kernel)
    issued = await kernel.identity.keys.issue(KeySpec("k", user.id))
    await kernel.identity.keys.verify(issued.secret)
    await kernel.identity.update_user(user.id, {"disabled": True})
    with pytest.raises(AuthenticationFailed):
        await kernel.identity.keys.verify(issued.secret)


async def test_team_owned_key_cannot_carry_the_management_surface(kernel: Kernel) -> None:
    team = await kernel.identity.teams.create("t")
    with pytest.raises(InvalidInput):
        await kernel.identity.keys.issue(KeySpec("k", None, team.id, frozenset({"management"})))
    issued = await kernel.identity.keys.issue(KeySpec("k", None, team.id))
    principal = await kernel.identity.principal_for_key(issued.secret, "ai")
    assert principal.user is None and principal.team_id == team.id


async def test_imported_key_verifies_and_import_is_idempotent(kernel: Kernel) -> None:
    user = await owner(kernel)
    secret = "wdn_" + "B" * 43
    first = await kernel.identity.keys.import_secret(KeySpec("ci", user.id), secret)
    second = await kernel.identity.keys.import_secret(KeySpec("ci", user.id), secret)
    assert first.id == second.id
    assert (await kernel.identity.keys.verify(secret)).key.id == first.id


async def test_last_used_is_written_in_batches(kernel: Kernel, clock: FakeClock) -> None:
    user = await owner(kernel)
    issued = await kernel.identity.keys.issue(KeySpec("k", user.id))
    for _ in range(5):
        await kernel.identity.keys.verify(issued.secret)
    assert (await kernel.identity.keys.get(issued.key.id)).last_used_at is None
    assert await kernel.identity.keys.flush_last_used() == 1
    assert (await kernel.identity.keys.get(issued.key.id)).last_used_at == clock.now()


async def test_a_keys_principal_is_cached_until_its_grants_change(kernel: Kernel) -> None:
    """The principal behind a key is reused between requests, but a role change or a team change is
    seen at once (the broadcast that drops cached keys drops cached principals too)."""
    user = await owner(kernel)
    issued = await kernel.identity.keys.issue(KeySpec("k", user.id, surfaces=frozenset({"mcp"})))
    first = await kernel.identity.principal_for_key(issued.secret, "mcp")
    assert await kernel.identity.principal_for_key(issued.secret, "mcp") is first
    viewer = await kernel.identity.roles.find_by_name("viewer")
    assert viewer is not None
    assignment = await kernel.identity.roles.assign(user.id, viewer.id)
    granted = await kernel.identity.principal_for_key(issued.secret, "mcp")
    assert granted is not first and granted.permissions != first.permissions
    team = await kernel.identity.teams.create("platform")
    await kernel.identity.add_team_member(team.id, user.id)
    assert team.id in (await kernel.identity.principal_for_key(issued.secret, "mcp")).team_ids
    await kernel.identity.roles.unassign(assignment.id)
    assert (await kernel.identity.principal_for_key(issued.secret, "mcp")).permissions == first.permissions
