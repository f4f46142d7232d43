from __future__ import annotations

import pytest

from broker.app import Kernel
from broker.kernel.errors import Conflict, InvalidInput, NotFound
from tests.conftest import STRONG_PASSWORD


async def test_user_is_created_with_normalised_email_and_hashed_password(kernel: Kernel) -> None:
    user = await kernel.identity.users.create(" Dev@Example.COM ", "Dev", STRONG_PASSWORD)
    assert user.email == "dev@example.com" and user.has_password
    row = await kernel.db.fetchrow("SELECT password_hash FROM users WHERE id = ?", user.id)
    assert row is not None and row["password_hash"].startswith("$argon2id$")
    assert STRONG_PASSWORD not in row["password_hash"]


async def test_duplicate_email_is_a_conflict_until_the_user_is_deleted(kernel: Kernel) -> None:
    users = kernel.identity.users
    user = await users.create("a@example.com")
    with pytest.raises(Conflict):
        await users.create("A@example.com")
    await kernel.identity.delete_user(user.id)
    with pytest.raises(NotFound):
        await users.get(user.id)
    assert (await users.create("a@example.com")).id != user.id


@pytest.mark.parametrize("password", ["short1!", "abcdefghijklmnop", "password123", "alice-is-great-1"])
async def test_weak_password_is_refused_naming_the_field(kernel: Kernel, password: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await kernel.identity.users.create("alice@example.com", password=password)
    assert caught.value.fields[0].field == "password"


async def test_user_update_changes_only_given_fields(kernel: Kernel) -> None:
    user = await kernel.identity.users.create("b@example.com", "Bee")
    updated = await kernel.identity.update_user(user.id, {"disabled": True})
    assert updated.disabled and updated.name == "Bee"


async def test_team_membership(kernel: Kernel) -> None:
    teams, users = kernel.identity.teams, kernel.identity.users
    team = await teams.create("platform", "Platform team")
    user = await users.create("c@example.com")
    await teams.add_member(team.id, user.id)
    await teams.add_member(team.id, user.id)  # idempotent
    assert [u.id for u in await teams.members(team.id)] == [user.id]
    assert [t.id for t in await teams.of_user(user.id)] == [team.id]
    await teams.remove_member(team.id, user.id)
    with pytest.raises(NotFound):
        await teams.remove_member(team.id, user.id)
    with pytest.raises(NotFound):
        await teams.add_member(team.id, "no-such-user")


async def test_team_names_are_unique_among_live_teams(kernel: Kernel) -> None:
    teams = kernel.identity.teams
    team = await teams.create("ml")
    with pytest.raises(Conflict):
        await teams.create("ml")
    await kernel.identity.delete_team(team.id)
    await teams.create("ml")
