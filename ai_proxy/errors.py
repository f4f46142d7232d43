"""Errors on the ``/v1`` surfaces, in the shape of the API the client called.

OpenAI clients get ``{"error": {"message", "type", "param", "code"}}``; the status codes follow OpenAI's
(401 invalid key, 403 not allowed, 404 unknown model, 413 too large, 429 limits, 502/504 upstream trouble).
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from broker.kernel.errors import AuthenticationFailed, InvalidInput, PermissionDenied, WardenError
from broker.kernel.quota.errors import LimiterUnavailable, QuotaExceeded


class ProxyError(Exception):
    """A request the proxy answers with an error of its own making."""

    def __init__(self, status: int, kind: str, message: str, param: str | None = None,
                 code: str | None = None, retry_after: int | None = None,
                 details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.details = details or {}  # machine-readable extras (a quota refusal's rule, limit, used)
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param
        self.code = code


def openai_error(error: ProxyError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {**error.details, "message": error.message, "type": error.kind,
                                   "param": error.param, "code": error.code}}, error.status,
                        headers={**error_headers(error), **(headers or {})})


def error_headers(error: ProxyError) -> dict[str, str]:
    """What an error's status calls for: when to retry, how to authenticate."""
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(error.retry_after)
    if error.status == 401:
        headers["www-authenticate"] = 'Bearer realm="warden"'
    return headers


def from_warden(exc: WardenError) -> ProxyError:
    """A kernel refusal (authentication, permission, quota) as the proxy reports it."""
    if isinstance(exc, AuthenticationFailed):
        return ProxyError(401, "authentication_error", exc.message, code="invalid_api_key")
    if isinstance(exc, PermissionDenied):
        return ProxyError(403, "permission_error", exc.message, code="permission_denied")
    if isinstance(exc, QuotaExceeded | LimiterUnavailable):
        return ProxyError(429, "rate_limit_error" if isinstance(exc, QuotaExceeded) else "api_error", exc.message,
                          code=exc.code, retry_after=exc.retry_after, details=exc.details())
    if isinstance(exc, InvalidInput):
        field = exc.fields[0].field if exc.fields else None
        return ProxyError(400, "invalid_request_error", exc.message, param=field)
    return ProxyError(exc.status, "api_error", exc.message, code=exc.code, retry_after=exc.retry_after)
