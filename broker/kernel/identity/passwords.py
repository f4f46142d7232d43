"""Password policy and hashing off the event loop (argon2 is deliberately slow)."""

from __future__ import annotations

import anyio

from broker.kernel.crypto import PasswordHashing
from broker.kernel.errors import FieldError, InvalidInput

_COMMON = frozenset({
    "password", "password1", "password123", "123456789012", "qwertyuiop", "letmein", "welcome",
    "administrator", "changeme", "iloveyou", "trustno1", "passw0rd", "correcthorsebatterystaple",
})


class PasswordPolicy:
    """Length first (NIST SP 800-63B), a refusal of the obvious, and at least one non-letter."""

    def __init__(self, min_length: int) -> None:
        self.min_length = min_length

    def check(self, password: str, email: str = "", field: str = "password") -> None:
        problem = self._problem(password, email)
        if problem:
            raise InvalidInput("password does not meet the policy", [FieldError(field, problem)])

    def _problem(self, password: str, email: str) -> str | None:
        if len(password) < self.min_length:
            return f"must be at least {self.min_length} characters"
        if len(password) > 1024:
            return "must be at most 1024 characters"
        lowered = password.lower()
        if lowered in _COMMON or (email and email.lower().split("@")[0] in lowered):
            return "is too easy to guess"
        if password.isalpha():
            return "must contain at least one digit or symbol"
        return None


class Passwords:
    """Hashes and verifies in a worker thread so a login never stalls other requests."""

    def __init__(self, hashing: PasswordHashing, policy: PasswordPolicy, concurrency: int = 4) -> None:
        self._hashing = hashing
        self.policy = policy
        self._dummy: str | None = None
        # Each Argon2 computation holds 64 MiB: a burst of sign-ins must queue, not exhaust memory.
        self._limiter = anyio.CapacityLimiter(concurrency)

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hashing.hash, password, limiter=self._limiter)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Verify; with no stored hash, still spend the same time so timing does not reveal accounts."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash("warden-timing-equaliser-0")
            await anyio.to_thread.run_sync(self._hashing.verify, self._dummy, password, limiter=self._limiter)
            return False
        return await anyio.to_thread.run_sync(self._hashing.verify, stored, password, limiter=self._limiter)
