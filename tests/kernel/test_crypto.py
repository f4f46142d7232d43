from __future__ import annotations

import pytest

from broker.kernel.crypto import KeyHasher, KeyRing, PasswordHashing, SealedValueError, SecretBox, SecretKeyError


def ring(*versions: int) -> KeyRing:
    return KeyRing.parse(",".join(KeyRing.generate_entry(v) for v in versions))


def test_sealed_value_opens_and_hides_the_plaintext() -> None:
    box = SecretBox(ring(1))
    sealed = box.seal(b"sk-provider-key", b"provider:openai")
    assert b"sk-provider-key" not in sealed
    assert box.open(sealed, b"provider:openai") == b"sk-provider-key"


def test_tampered_or_misused_value_is_refused() -> None:
    box = SecretBox(ring(1))
    sealed = bytearray(box.seal(b"secret", b"ctx"))
    with pytest.raises(SealedValueError):
        box.open(bytes(sealed), b"other-context")
    sealed[-1] ^= 1
    with pytest.raises(SealedValueError):
        box.open(bytes(sealed), b"ctx")


def test_rotation_reseals_under_the_newest_version_and_old_versions_still_open() -> None:
    old = ring(1)
    sealed = SecretBox(old).seal(b"token")
    both = KeyRing({**old.keys, **ring(2).keys})
    box = SecretBox(both)
    assert box.open(sealed) == b"token"
    resealed = box.reseal(sealed)
    assert box.version_of(resealed) == 2
    assert SecretBox(KeyRing({2: both.keys[2]})).open(resealed) == b"token"
    with pytest.raises(SealedValueError):
        SecretBox(KeyRing({2: both.keys[2]})).open(sealed)


@pytest.mark.parametrize("text", ["", "v1", "v1:abc", "x1:" + "A" * 43, "v0:" + "A" * 43])
def test_malformed_key_ring_is_rejected(text: str) -> None:
    with pytest.raises(SecretKeyError):
        KeyRing.parse(text)


def test_key_hash_is_keyed_by_the_server_secret() -> None:
    a, b = KeyHasher(b"secret-a"), KeyHasher(b"secret-b")
    assert a.digest("wdn_x") != b.digest("wdn_x")
    assert a.matches("wdn_x", a.digest("wdn_x"))
    assert not a.matches("wdn_y", a.digest("wdn_x"))


def test_password_hash_is_argon2id_and_verifies() -> None:
    hashing = PasswordHashing(time_cost=1, memory_kib=8192, parallelism=1)
    stored = hashing.hash("correct horse 9")
    assert stored.startswith("$argon2id$")
    assert hashing.verify(stored, "correct horse 9")
    assert not hashing.verify(stored, "wrong")
    assert not hashing.verify("not-a-hash", "x")
