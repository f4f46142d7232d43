"""Secret box (AES-256-GCM under a versioned master key), API-key hashing and password hashing.

The master key ring is written ``v1:<base64 32 bytes>,v2:<...>``: the highest version encrypts,
every listed version decrypts, so rotation is "add a version, re-encrypt, drop the old one".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_BOX_MAGIC = b"WB"  # lets a reader tell a sealed value from plaintext or another format


class SecretKeyError(Exception):
    """The master key ring is malformed."""


class SealedValueError(Exception):
    """A sealed value is corrupt, tampered with, or sealed under a key version no longer held."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Master key versions; the highest one seals new values."""

    keys: dict[int, bytes]

    @property
    def current_version(self) -> int:
        return max(self.keys)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        keys: dict[int, bytes] = {}
        for part in (p.strip() for p in text.split(",")):
            version, sep, encoded = part.partition(":")
            if not sep or not version.startswith("v") or not version[1:].isdigit():
                raise SecretKeyError("each entry must look like v<N>:<base64 of 32 bytes>")
            try:
                key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except ValueError as exc:
                raise SecretKeyError(f"{version}: not base64") from exc
            if len(key) != 32:
                raise SecretKeyError(f"{version}: key must be 32 bytes, got {len(key)}")
            number = int(version[1:])
            if not 1 <= number <= 255:
                raise SecretKeyError(f"{version}: version must be between 1 and 255")
            keys[number] = key
        return cls(keys)

    @staticmethod
    def generate_entry(version: int = 1) -> str:
        return f"v{version}:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


class SecretBox:
    """Seals and opens secrets at rest with AES-256-GCM; ``context`` binds a value to its use."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._ciphers = {version: AESGCM(key) for version, key in ring.keys.items()}

    @property
    def current_version(self) -> int:
        return self._ring.current_version

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        version = self._ring.current_version
        nonce = os.urandom(_NONCE_BYTES)
        header = _BOX_MAGIC + bytes([version])
        return header + nonce + self._ciphers[version].encrypt(nonce, plaintext, header + context)

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        if len(sealed) < 3 + _NONCE_BYTES + 16 or sealed[:2] != _BOX_MAGIC:
            raise SealedValueError("not a sealed value")
        header, nonce, body = sealed[:3], sealed[3 : 3 + _NONCE_BYTES], sealed[3 + _NONCE_BYTES :]
        cipher = self._ciphers.get(sealed[2])
        if cipher is None:
            raise SealedValueError(f"sealed under key version {sealed[2]}, which is not in the key ring")
        try:
            return cipher.decrypt(nonce, body, header + context)
        except InvalidTag as exc:
            raise SealedValueError("sealed value failed authentication") from exc

    def version_of(self, sealed: bytes) -> int:
        return sealed[2]

    def reseal(self, sealed: bytes, context: bytes = b"") -> bytes:
        """Re-encrypt under the current key version (rotation)."""
        return self.seal(self.open(sealed, context), context)


class KeyHasher:
    """Keyed hash of API keys: HMAC-SHA256 under the server secret, so a stolen table is useless alone."""

    def __init__(self, server_secret: bytes) -> None:
        self._secret = hashlib.sha256(b"warden/api-key-hash/v1" + server_secret).digest()

    def digest(self, value: str) -> str:
        return hmac.digest(self._secret, value.encode(), "sha256").hex()  # one-shot: no HMAC object built

    def matches(self, value: str, expected_hex: str) -> bool:
        return hmac.compare_digest(self.digest(value), expected_hex)

    @staticmethod
    def matches_digest(digest: str, expected_hex: str) -> bool:
        return hmac.compare_digest(digest, expected_hex)


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    """Unkeyed digest for high-entropy random tokens (session ids), where a key adds nothing."""
    return hashlib.sha256(value.encode()).hexdigest()


class PasswordHashing:
    """Argon2id (memory-hard) password hashes; the parameters are recorded in each hash."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)
