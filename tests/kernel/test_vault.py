from __future__ import annotations

import pytest

from broker.app import Kernel
from broker.kernel.clock import SystemClock
from broker.kernel.crypto import KeyRing, SecretBox
from broker.kernel.errors import NotFound
from broker.kernel.vault import SecretVault


async def test_secrets_are_sealed_at_rest(kernel: Kernel) -> None:
    secret_id = await kernel.vault.put("provider:openai", "sk-live-123456")
    assert await kernel.vault.get(secret_id) == "sk-live-123456"
    rows = await kernel.db.fetch("SELECT * FROM sealed_secrets")
    assert "sk-live-123456" not in repr(rows)
    await kernel.vault.delete(secret_id)
    with pytest.raises(NotFound):
        await kernel.vault.get(secret_id)


async def test_rotation_reseals_every_secret_under_the_new_version(kernel: Kernel) -> None:
    old_ring = KeyRing.parse(kernel.config.security.secret_key or "")
    old = SecretVault(kernel.db, SecretBox(old_ring), SystemClock())
    ids = [await old.put("oauth:token", f"token-{i}") for i in range(3)]
    new_ring = KeyRing({**old_ring.keys, **KeyRing.parse(KeyRing.generate_entry(2)).keys})
    rotated = SecretVault(kernel.db, SecretBox(new_ring), SystemClock())
    assert await rotated.rotate() == 3
    assert await rotated.rotate() == 0
    only_new = SecretVault(kernel.db, SecretBox(KeyRing({2: new_ring.keys[2]})), SystemClock())
    assert [await only_new.get(i) for i in ids] == ["token-0", "token-1", "token-2"]
