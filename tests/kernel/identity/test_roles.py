from __future__ import annotations

import pytest

from broker.app import Kernel
from broker.kernel.errors import Conflict, InvalidInput, PermissionDenied
from broker.kernel.identity.permissions import BUILTIN_ROLES


async def test_five_builtin_tiers_are_seeded_and_immutable(kernel: Kernel) -> None:
    roles = await kernel.identity.roles.all()
    assert {r.id for r in roles if r.builtin} == set(BUILTIN_ROLES) == {
        "super_admin", "admin", "team_manager", "developer", "viewer"}
    with pytest.raises(Conflict):
        await kernel.identity.roles.update("admin", {"description": "x"})
    with pytest.raises(Conflict):
        await kernel.identity.roles.delete("viewer")


async def test_custom_role_lifecycle_is_recorded_in_history(kernel: Kernel) -> None:
    roles = kernel.identity.roles
    actor = await kernel.identity.users.create("actor@example.com")
    role = await roles.create("auditor", ["audit:read"], "reads audit", actor.id)
    await roles.update(role.id, {"permissions": ["audit:read", "audit:read_bodies"]}, actor.id)
    await roles.delete(role.id, actor.id)
    history = await roles.history()
    assert [h["action"] for h in reversed(history)] == ["role.create", "role.update", "role.delete"]
    update = next(h for h in history if h["action"] == "role.update")
    assert update["actor_id"] == actor.id
    assert update["before_state"]["permissions"] == ["audit:read"]
    assert update["after_state"]["permissions"] == ["audit:read", "audit:read_bodies"]


async def test_unknown_permission_is_rejected_naming_it(kernel: Kernel) -> None:
    with pytest.raises(InvalidInput) as caught:
        await kernel.identity.roles.create("bad", ["audit:read", "root:everything"])
    assert caught.value.fields[0].field == "permissions[1]"


async def test_team_scoped_role_grants_only_within_that_team(kernel: Kernel) -> None:
    identity = kernel.identity
    user = await identity.users.create("tm@example.com")
    team, other = await identity.teams.create("a"), await identity.teams.create("b")
    await identity.roles.assign(user.id, "team_manager", team.id)
    perms = await identity.roles.permissions_of(user.id)
    assert perms.allows("keys:manage", team.id)
    assert not perms.allows("keys:manage", other.id)
    assert not perms.allows("keys:manage")
    assert perms.allows_somewhere("teams:manage")


async def test_only_a_super_admin_may_grant_super_admin(kernel: Kernel) -> None:
    identity = kernel.identity
    admin, target = await identity.users.create("adm@example.com"), await identity.users.create("t@example.com")
    await identity.roles.assign(admin.id, "admin")
    admin_perms = await identity.roles.permissions_of(admin.id)
    with pytest.raises(PermissionDenied):
        await identity.roles.assign(target.id, "super_admin", actor=admin_perms, actor_id=admin.id)
    await identity.roles.assign(target.id, "developer", actor=admin_perms, actor_id=admin.id)
    with pytest.raises(Conflict):
        await identity.roles.assign(target.id, "developer", actor=admin_perms)


async def test_export_then_import_into_a_fresh_store_round_trips(kernel: Kernel) -> None:
    identity = kernel.identity
    user = await identity.users.create("e@example.com")
    team = await identity.teams.create("data")
    role = await identity.roles.create("bodies", ["audit:read_bodies"])
    await identity.roles.assign(user.id, role.id, team.id)
    document = await identity.roles.export()
    assert document["assignments"] == [{"email": "e@example.com", "role": "bodies", "team": "data"}]

    await identity.roles.delete(role.id)
    counts = await identity.roles.import_(document, identity.user_by_email, identity.team_by_name)
    assert counts == {"roles_created": 1, "roles_updated": 0, "assignments_added": 1}
    assert (await identity.roles.permissions_of(user.id)).allows("audit:read_bodies", team.id)
    again = await identity.roles.import_(document, identity.user_by_email, identity.team_by_name)
    assert again == {"roles_created": 0, "roles_updated": 1, "assignments_added": 0}


async def test_import_rejects_a_foreign_format(kernel: Kernel) -> None:
    identity = kernel.identity
    with pytest.raises(InvalidInput):
        await identity.roles.import_({"format": "other"}, identity.user_by_email, identity.team_by_name)
