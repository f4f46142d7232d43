"""Errors raised by the kernel, each carrying what an edge needs to answer on the wire.

WardenError                    base: an HTTP status and a stable machine-readable ``code``
├── AuthenticationFailed  401  no credential, or an unknown, expired, revoked or disabled one
├── PermissionDenied      403  a known principal that lacks a permission or a key surface
├── NotFound              404  the addressed record does not exist (or is soft-deleted)
├── Conflict              409  a unique name is taken, or the state forbids the change (setup done)
├── InvalidInput          422  fields failed validation; ``fields`` names each one
├── TooManyAttempts       429  login lockout; ``retry_after`` seconds
└── DependencyUnavailable 503  the database, Redis or another dependency did not answer in time
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field: a dotted path and what was wrong with it."""

    field: str
    message: str


class WardenError(Exception):
    """Base of every error the kernel raises on purpose."""

    status = 500
    code = "internal_error"
    retry_after: int | None = None  # seconds, sent as Retry-After when set

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, object]:
        """Extra machine-readable fields for the error body."""
        return {}


class AuthenticationFailed(WardenError):
    status = 401
    code = "authentication_failed"


class PermissionDenied(WardenError):
    status = 403
    code = "permission_denied"


class NotFound(WardenError):
    status = 404
    code = "not_found"


class Conflict(WardenError):
    status = 409
    code = "conflict"


class InvalidInput(WardenError):
    status = 422
    code = "invalid_input"

    def __init__(self, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class TooManyAttempts(WardenError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after: int | None = retry_after


JSONRPC_AUDIT_UNAVAILABLE = -32053  # server-defined range (JSON-RPC 2.0 §5.1), after HTTP's 503


class AuditUnavailable(WardenError):
    """Audit is mandatory (``audit.when_full: refuse``) and the audit spool is full: new requests are refused
    until the audit database takes events again (requests already running are still audited)."""

    status = 503
    code = "audit_unavailable"
    retry_after: int | None = 5

    def details(self) -> dict[str, object]:
        return {"retry_after": self.retry_after}

    def jsonrpc_error(self) -> dict[str, object]:
        return {"code": JSONRPC_AUDIT_UNAVAILABLE, "message": self.message,
                "data": {"code": self.code, **self.details()}}


class DependencyUnavailable(WardenError):
    status = 503
    code = "dependency_unavailable"
