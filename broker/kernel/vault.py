"""Secrets at rest: values sealed by the secret box, addressed by id, re-sealable on key rotation.

Later issues keep provider API keys and OAuth tokens here and store only the vault id beside them.
"""

from __future__ import annotations

import base64
import uuid

from broker.kernel.clock import Clock
from broker.kernel.crypto import SecretBox
from broker.kernel.errors import NotFound
from broker.kernel.store.ports import Database


class SecretVault:
    """Seal on write, open on read; the purpose is bound into the ciphertext as associated data."""

    def __init__(self, db: Database, box: SecretBox, clock: Clock) -> None:
        self._db = db
        self._box = box
        self._clock = clock

    async def put(self, purpose: str, plaintext: str, secret_id: str | None = None) -> str:
        secret_id = secret_id or uuid.uuid4().hex
        sealed = self._seal(purpose, plaintext)
        now = self._clock.now()
        await self._db.execute(
            "INSERT INTO sealed_secrets (id, purpose, sealed, key_version, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed,"
            " key_version = excluded.key_version, updated_at = excluded.updated_at",
            secret_id, purpose, sealed, self._box.current_version, now, now,
        )
        return secret_id

    async def get(self, secret_id: str) -> str:
        row = await self._db.fetchrow("SELECT purpose, sealed FROM sealed_secrets WHERE id = ?", secret_id)
        if row is None:
            raise NotFound(f"secret {secret_id!r} not found")
        raw = base64.b64decode(row["sealed"])
        return self._box.open(raw, row["purpose"].encode()).decode()

    async def delete(self, secret_id: str) -> None:
        await self._db.execute("DELETE FROM sealed_secrets WHERE id = ?", secret_id)

    async def rotate(self) -> int:
        """Re-seal every secret not yet under the current key version; returns how many changed."""
        rows = await self._db.fetch(
            "SELECT id, purpose, sealed FROM sealed_secrets WHERE key_version <> ?", self._box.current_version
        )
        for row in rows:
            resealed = self._box.reseal(base64.b64decode(row["sealed"]), row["purpose"].encode())
            await self._db.execute(
                "UPDATE sealed_secrets SET sealed = ?, key_version = ?, updated_at = ? WHERE id = ?",
                base64.b64encode(resealed).decode(), self._box.current_version, self._clock.now(), row["id"],
            )
        return len(rows)

    def _seal(self, purpose: str, plaintext: str) -> str:
        return base64.b64encode(self._box.seal(plaintext.encode(), purpose.encode())).decode()
