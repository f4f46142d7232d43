"""The one place where errors become HTTP responses, for both listeners.

Every body is ``{"error": {"code", "message", "fields"?}}``; nothing from a stack trace ever leaves.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from broker.kernel.errors import AuthenticationFailed, InvalidInput, WardenError
from broker.kernel.store.errors import StoreUnavailable, UnstorableText

log = logging.getLogger(__name__)

_HTTP_CODES = {401: "authentication_failed", 404: "not_found", 405: "method_not_allowed", 400: "bad_request",
               413: "payload_too_large"}


def error_body(code: str, message: str, fields: list[dict[str, str]] | None = None,
               details: dict[str, object] | None = None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message, **(details or {})}
    if fields is not None:
        error["fields"] = fields
    return {"error": error}


async def warden_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WardenError)
    fields = [{"field": f.field, "message": f.message} for f in exc.fields] if isinstance(exc, InvalidInput) \
        else None
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="warden"'
    return JSONResponse(error_body(exc.code, exc.message, fields, exc.details()), exc.status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)


async def store_unavailable(request: Request, exc: Exception) -> Response:
    log.error("database unavailable while serving %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(error_body("dependency_unavailable", "the database is unavailable; retry shortly"), 503,
                        headers={"Retry-After": "1"})


async def unstorable_text(request: Request, exc: Exception) -> Response:
    """A client's text the database cannot take (a NUL in a query parameter, say): the request's fault."""
    return JSONResponse(error_body("invalid_input", "a text in the request holds a character that cannot be stored:"
                                   " NUL (\\u0000) or a lone surrogate"), 422)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error serving %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal error"), 500)


EXCEPTION_HANDLERS = {
    WardenError: warden_error,
    HTTPException: http_error,
    StoreUnavailable: store_unavailable,
    UnstorableText: unstorable_text,
    Exception: unexpected_error,
}
