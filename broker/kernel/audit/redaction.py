"""Redaction of captured bodies, before they are written anywhere: emails, phone numbers, card numbers (only those
passing the Luhn check), API keys and tokens of common formats, bearer credentials, private keys, and the patterns
an admin adds. Each match becomes ``[REDACTED:<kind>]`` and is counted by kind.

The built-in detectors are written for Python's ``re`` without nested repetition (no catastrophic backtracking);
admin patterns are compiled with RE2, whose matching time is linear in the text whatever the pattern, so a
pattern typed into the settings can never stall a request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import re2

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is reported to the admin, not to stderr


class BadPattern(ValueError):
    """An admin pattern RE2 cannot compile."""


@dataclass(frozen=True, slots=True)
class RedactionPattern:
    name: str  # the kind it is counted as: letters, digits, '_' and '-'
    pattern: str


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro): a run
# of digits that passes the Luhn check by chance (one in ten do: timestamps, ids) is rarely also one of these.
_ISSUER = re.compile(r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|6(?:011|5|4[4-9]|2)|3(?:0[0-5]|[689])|35|5[06-9]|6")


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", match.group())
    return 14 <= len(digits) <= 19 and _ISSUER.match(digits) is not None and luhn_valid(digits)


def _phone(match: re.Match[str]) -> bool:
    return 7 <= sum(c.isdigit() for c in match.group()) <= 15


@dataclass(frozen=True, slots=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    keep: int = 0  # leading group to leave in place ("Bearer ", "api_key=")
    accept: Callable[[re.Match[str]], bool] | None = None


# In order: credentials first (a key can contain digit runs a card or phone detector would take apart).
_BUILTIN = (
    _Detector("private_key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )?"
                                        r"PRIVATE KEY-----")),
    _Detector("bearer", re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"), keep=1),
    _Detector("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    _Detector("api_key", re.compile(
        r"\b(?:sk-ant-[A-Za-z0-9_-]{20,}"  # Anthropic
        r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI
        r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
        r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
        r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
        r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
        r"|AIza[0-9A-Za-z_-]{35}"  # Google
        r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
        r"|wdn_[A-Za-z0-9_-]{32,}"  # Warden's own keys
        r")(?![A-Za-z0-9_-])")),
    _Detector("secret_assignment", re.compile(
        r"(?i)((?:api[_-]?key|secret|password|passwd|token|access[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',;&]{8,}"), keep=1),
    _Detector("email", re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
                                  r"\.[A-Za-z]{2,24}\b")),
    _Detector("card", re.compile(r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])"), accept=_card),
    # International (+country), or a bracketed or separated area code: 555-123-4567, (020) 7946 0958.
    _Detector("phone", re.compile(r"(?<![\w+.-])(?:\+\d{7,15}"
                                  r"|\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,4}"
                                  r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]\d{3,4}"
                                  r"|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-]|\.\d)"), accept=_phone),
)


CREDENTIALS = frozenset({"private_key", "bearer", "jwt", "api_key", "secret_assignment"})


class Redactor:
    def __init__(self, patterns: Iterable[RedactionPattern] = (), kinds: frozenset[str] | None = None) -> None:
        """``kinds``: the built-in detectors to run (all when None; CREDENTIALS for secrets only)."""
        self._custom = [(p.name, compile_pattern(p.pattern)) for p in patterns]
        self._builtin = [d for d in _BUILTIN if kinds is None or d.kind in kinds]

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """The text with every finding replaced, and how many of each kind were found."""
        counts: dict[str, int] = {}
        for detector in self._builtin:
            text = detector.pattern.sub(lambda m, d=detector: self._replace(m, d, counts), text)  # type: ignore[misc]
        for name, pattern in self._custom:
            text, found = pattern.subn(f"[REDACTED:{name}]", text)
            if found:
                counts[name] = counts.get(name, 0) + found
        return text, counts

    @staticmethod
    def _replace(match: re.Match[str], detector: _Detector, counts: dict[str, int]) -> str:
        if detector.accept is not None and not detector.accept(match):
            return match.group()
        counts[detector.kind] = counts.get(detector.kind, 0) + 1
        kept = match.group(detector.keep) if detector.keep else ""
        return f"{kept}[REDACTED:{detector.kind}]"


def compile_pattern(pattern: str) -> re2._Regexp:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise BadPattern(reason) from None
