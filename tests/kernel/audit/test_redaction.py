"""Redaction at capture: a corpus of what must go (each counted by kind) and of near-misses that must stay."""

from __future__ import annotations

import time

import pytest

from broker.kernel.audit.redaction import BadPattern, RedactionPattern, Redactor, luhn_valid

POSITIVES = [
    ("write to jane.doe+billing@example.co.uk today", "email"),
    ("ops@sub.example.io", "email"),
    ("visa 4111 1111 1111 1111 ok", "card"),
    ("mc 5555-5555-5555-4444", "card"),
    ("amex 378282246310005", "card"),
    ("discover 6011111111111117", "card"),
    ("call +1 415-555-2671", "phone"),
    ("+44 20 7946 0958", "phone"),
    ("ring (020) 7946 0958 later", "phone"),
    ("us 555-123-4567", "phone"),
    ("+8613800138000", "phone"),
    ("Authorization: Bearer eyJhbGciOi.abc-def_ghi", "bearer"),
    ("authorization: bearer 0123456789abcdef", "bearer"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
    ("openai sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "api_key"),
    ("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx_yz-0123456789", "api_key"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789AB", "api_key"),
    ("aws AKIAIOSFODNN7EXAMPLE", "api_key"),
    ("xoxb-123456789012-abcdefghij", "api_key"),
    ("AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "api_key"),
    ("stripe sk_live_abcdefghijklmnop1234", "api_key"),
    ("glpat-abcdefghijklmnopqrst", "api_key"),
    ("wdn_" + "Q" * 43, "api_key"),
    ('{"password": "hunter2-correct-horse"}', "secret_assignment"),
    ("API_KEY=abcd1234efgh5678", "secret_assignment"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbC=\n-----END RSA PRIVATE KEY-----", "private_key"),
]

NEAR_MISSES = [
    "visa 4111 1111 1111 1112",  # fails the Luhn check
    "1795727572123",  # a millisecond timestamp
    "1234567812345670",  # passes Luhn, but no card network issues numbers starting 1
    "order 12345678",
    "released 2026-11-26 at 10:15",
    "host 127.0.0.1 and 10.0.0.254",
    "version 1.2.3 and 10.4.22.1001",
    "id 550e8400-e29b-41d4-a716-446655440000",
    "not an email: user@localhost or @handle",
    "sk-short",  # too short for a key
    "the task-list is ghp_short",
    "Bearer me",  # too short for a credential
    '{"max_tokens": 1024, "input_tokens": 12345678, "total_tokens": 99999999}',
    '{"token": "short"}',
    "price 1,234,567.89 USD",
    "page 12 of 345",
    "isbn 978-3-16-148410-0",
]


@pytest.mark.parametrize(("text", "kind"), POSITIVES)
def test_each_kind_of_secret_or_personal_data_is_replaced_and_counted(text: str, kind: str) -> None:
    redacted, counts = Redactor().redact(text)
    assert counts == {kind: 1}, (redacted, counts)
    assert f"[REDACTED:{kind}]" in redacted


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_stay_as_they_are(text: str) -> None:
    assert Redactor().redact(text) == (text, {})


def test_the_kept_part_of_a_credential_stays_and_everything_in_one_body_is_counted() -> None:
    body = ('{"messages": [{"role": "user", "content": "I am ann@example.com, card 4111-1111-1111-1111, '
            'key sk-abcdefghijklmnopqrstuvwx, and bob@example.org"}], "headers": "Bearer abcdefghijkl"}')
    redacted, counts = Redactor().redact(body)
    assert counts == {"email": 2, "card": 1, "api_key": 1, "bearer": 1}
    assert '"headers": "Bearer [REDACTED:bearer]"' in redacted
    assert "example" not in redacted and "4111" not in redacted and "sk-" not in redacted


def test_admin_patterns_are_applied_and_counted_under_their_name() -> None:
    redactor = Redactor([RedactionPattern("order_id", r"ORD-\d{6}"), RedactionPattern("codename", "(?i)bluebird")])
    redacted, counts = redactor.redact("ORD-123456 and ORD-654321 for BlueBird")
    assert redacted == "[REDACTED:order_id] and [REDACTED:order_id] for [REDACTED:codename]"
    assert counts == {"order_id": 2, "codename": 1}


def test_an_admin_pattern_re2_cannot_compile_is_refused_with_the_reason() -> None:
    with pytest.raises(BadPattern, match="escape"):
        Redactor([RedactionPattern("bad", r"(a)\1")])


def test_a_pathological_admin_pattern_still_runs_in_linear_time() -> None:
    redactor = Redactor([RedactionPattern("evil", r"(a+)+$")])  # exponential in a backtracking engine
    started = time.perf_counter()
    redactor.redact("a" * 50_000 + "b")
    assert time.perf_counter() - started < 5  # a backtracking engine would not finish


def test_luhn() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
