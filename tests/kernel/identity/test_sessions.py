from __future__ import annotations

import pytest

from broker.app import Kernel
from broker.kernel.errors import AuthenticationFailed, TooManyAttempts
from tests.conftest import STRONG_PASSWORD, FakeClock


async def test_login_opens_a_session_stored_by_hash(kernel: Kernel) -> None:
    await kernel.identity.users.create("u@example.com", password=STRONG_PASSWORD)
    session = await kernel.identity.sessions.login("U@example.com", STRONG_PASSWORD, "10.0.0.1")
    rows = await kernel.db.fetch("SELECT * FROM console_sessions")
    assert session.token not in repr(rows)
    resolved = await kernel.identity.sessions.resolve(session.token, "10.0.0.2")
    assert resolved.user.email == "u@example.com" and resolved.csrf_token == session.csrf_token
    await kernel.identity.sessions.logout(session.token)
    with pytest.raises(AuthenticationFailed):
        await kernel.identity.sessions.resolve(session.token, None)


async def test_wrong_password_and_unknown_user_fail_alike(kernel: Kernel) -> None:
    await kernel.identity.users.create("u@example.com", password=STRONG_PASSWORD)
    with pytest.raises(AuthenticationFailed):
        await kernel.identity.sessions.login("u@example.com", "wrong", None)
    with pytest.raises(AuthenticationFailed):
        await kernel.identity.sessions.login("nobody@example.com", STRONG_PASSWORD, None)


async def test_repeated_failures_lock_the_account_then_the_lock_expires(kernel: Kernel, clock: FakeClock) -> None:
    await kernel.identity.users.create("u@example.com", password=STRONG_PASSWORD)
    sessions = kernel.identity.sessions
    for _ in range(kernel.config.security.login_max_failures):
        with pytest.raises(AuthenticationFailed):
            await sessions.login("u@example.com", "wrong", None)
    with pytest.raises(TooManyAttempts) as caught:
        await sessions.login("u@example.com", STRONG_PASSWORD, None)
    assert caught.value.retry_after > 0
    clock.advance(kernel.config.security.lockout_minutes * 60 + 1)
    await sessions.login("u@example.com", STRONG_PASSWORD, None)


async def test_session_expires(kernel: Kernel, clock: FakeClock) -> None:
    await kernel.identity.users.create("u@example.com", password=STRONG_PASSWORD)
    session = await kernel.identity.sessions.login("u@example.com", STRONG_PASSWORD, None)
    clock.advance(kernel.config.security.session_ttl_hours * 3600 + 1)
    with pytest.raises(AuthenticationFailed):
        await kernel.identity.sessions.resolve(session.token, None)
    assert await kernel.identity.sessions.purge_expired() == 1


async def test_disabled_user_cannot_sign_in(kernel: Kernel) -> None:
    user = await kernel.identity.users.create("u@example.com", password=STRONG_PASSWORD)
    session = await kernel.identity.sessions.login("u@example.com", STRONG_PASSWORD, None)
    await kernel.identity.update_user(user.id, {"disabled": True})
    with pytest.raises(AuthenticationFailed):
        await kernel.identity.sessions.resolve(session.token, None)
    with pytest.raises(AuthenticationFailed):
        await kernel.identity.sessions.login("u@example.com", STRONG_PASSWORD, None)

