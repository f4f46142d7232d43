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


async def _imported_state(kernel: Kernel) -> tuple[list[str], list[tuple[str, str]], int]:
    """Custom role names, (user id, role id) assignments and the number of history entries."""
    roles = kernel.identity.roles
    users = [user.id for user in await kernel.identity.users.page(1000)]
    return (sorted(r.name for r in await roles.all() if not r.builtin),
            sorted([(a.user_id, a.role_id) for user_id in users for a in await roles.assignments_of(user_id)]),
            len(await roles.history()))


@pytest.mark.parametrize(("bad", "field"), [
    ({"email": "nobody@example.com", "role": "bodies"}, "assignments[1]"),  # an unknown user
    ({"email": "e@example.com", "role": "bodies", "team": "no-such-team"}, "assignments[1]"),
    ({"email": "e@example.com", "role": "no-such-role"}, "assignments[1].role"),
    ({"email": "e@example.com"}, "assignments[1]"),  # no role
])
async def test_an_import_with_a_bad_entry_writes_nothing(kernel: Kernel, bad: dict[str, str], field: str) -> None:
    """All or nothing: the roles and the assignments before the bad entry are not written either."""
    identity = kernel.identity
    await identity.users.create("e@example.com")
    await identity.roles.create("readers", ["audit:read"])
    before = await _imported_state(kernel)
    document = {"format": "warden.roles/v1",
                "roles": [{"name": "bodies", "permissions": ["audit:read_bodies"]},
                          {"name": "readers", "permissions": ["audit:read", "audit:read_bodies"]}],
                "assignments": [{"email": "e@example.com", "role": "readers", "team": None}, bad]}
    with pytest.raises(InvalidInput) as raised:
        await identity.roles.import_(document, identity.user_by_email, identity.team_by_name)
    assert [f.field for f in raised.value.fields] == [field]
    assert await _imported_state(kernel) == before
    assert (await identity.roles.find_by_name("readers")).permissions == {"audit:read"}  # type: ignore[union-attr]


async def test_a_malformed_import_names_every_bad_entry_and_writes_nothing(kernel: Kernel) -> None:
    identity = kernel.identity
    before = await _imported_state(kernel)
    document = {"format": "warden.roles/v1",
                "roles": [{"name": "ok", "permissions": ["audit:read"]}, {"name": "no-permissions"},
                          {"name": "ok", "permissions": []}, {"name": "bad", "permissions": ["no:such"]}],
                "assignments": ["e@example.com"]}
    with pytest.raises(InvalidInput) as raised:
        await identity.roles.import_(document, identity.user_by_email, identity.team_by_name)
    assert [f.field for f in raised.value.fields] == ["roles[1]", "roles[2].name", "roles[3].permissions[0]",
                                                      "assignments[0]"]
    assert await _imported_state(kernel) == before


async def test_an_import_granting_super_admin_by_an_admin_is_refused_whole(kernel: Kernel) -> None:
    identity = kernel.identity
    admin = await identity.users.create("admin@example.com")
    await identity.roles.assign(admin.id, "admin")
    await identity.users.create("e@example.com")
    before = await _imported_state(kernel)
    document = {"format": "warden.roles/v1", "roles": [{"name": "bodies", "permissions": ["audit:read_bodies"]}],
                "assignments": [{"email": "e@example.com", "role": "bodies"},
                                {"email": "e@example.com", "role": "super_admin"}]}
    with pytest.raises(PermissionDenied):
        await identity.roles.import_(document, identity.user_by_email, identity.team_by_name,
                                     await identity.roles.permissions_of(admin.id), admin.id)
    assert await _imported_state(kernel) == before
    counts = await identity.roles.import_({**document, "assignments": document["assignments"][:1] * 2},
                                          identity.user_by_email, identity.team_by_name,
                                          await identity.roles.permissions_of(admin.id), admin.id)
    assert counts == {"roles_created": 1, "roles_updated": 0, "assignments_added": 1}  # the repeat added once
    assert [h["actor_id"] for h in await identity.roles.history()][:2] == [admin.id, admin.id]
