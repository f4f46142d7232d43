"""Declaring management API routes once: the route table builds the Starlette routes and the OpenAPI document.

Each handler receives a ``Call`` whose body is already validated and whose principal is already
authenticated (session cookie + CSRF header, or an API key with the ``management`` surface).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.edge.credentials import client_ip, presented_key
from broker.kernel.errors import AuthenticationFailed, FieldError, InvalidInput, PermissionDenied, WardenError
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from console.admin_trail import AdminTrail

SESSION_COOKIE = "warden_session"
CSRF_COOKIE = "warden_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Call:
    """One management API call after authentication and validation."""

    request: Request
    principal: Principal | None
    body: Any

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    @property
    def actor(self) -> Principal:
        if self.principal is None:
            raise AuthenticationFailed("sign in first")
        return self.principal

    @property
    def user_id(self) -> str:
        if self.actor.user is None:
            raise AuthenticationFailed("this credential does not act as a user")
        return self.actor.user.id


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """A management API operation: where it lives, what it takes, who may call it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    status: int = 200
    public: bool = False


class Authenticator:
    """Resolves the principal of a console request."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    async def principal(self, request: Request) -> Principal:
        if "authorization" in request.headers:
            return await self._identity.principal_for_key(presented_key(request), "management")
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise AuthenticationFailed("sign in, or send an API key with the management surface")
        principal, session = await self._identity.principal_for_session(token, client_ip(request))
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise PermissionDenied(f"missing or wrong {CSRF_HEADER} header")
        return principal


def to_starlette(route: ApiRoute, auth: Authenticator, trail: AdminTrail | None = None,
                 reader: Handler | None = None) -> Route:
    """``trail``: where changes (every method but GET) are recorded; ``reader``: the GET handler of the same
    path, read before and after a change so the trail shows both."""
    operation = f"{route.method} {route.path}"

    async def endpoint(request: Request) -> Response:
        principal = None if route.public else await auth.principal(request)
        body = await _parse_body(request, route.body) if route.body else None
        return _response(await route.handler(Call(request, principal, body)), route.status)

    async def recorded(request: Request) -> Response:
        assert trail is not None
        started, principal, before = time.monotonic(), None, None
        try:
            principal = None if route.public else await auth.principal(request)
            body = await _parse_body(request, route.body) if route.body else None
            call = Call(request, principal, body)
            if reader is not None:
                before = await _read(reader, call)
            result = await route.handler(call)
        except WardenError as exc:
            await trail.record(request, operation, principal, exc.status, started, await _sent(request), before,
                               None)
            raise
        except Exception:  # a failure of our own is on the trail too (the client gets a 500)
            await trail.record(request, operation, principal, 500, started, await _sent(request), before, None)
            raise
        after = None if isinstance(result, Response) or route.method == "DELETE" else result
        if reader is not None and route.method != "DELETE":
            after = await _read(reader, call) or after  # the resource as it now reads, where it can be read
        response = _response(result, route.status)
        await trail.record(request, operation, principal, response.status_code, started, await _sent(request),
                           before, after)
        return response

    handler = recorded if trail is not None and route.method != "GET" else endpoint
    return Route(route.path, handler, methods=[route.method], name=operation)


def _response(result: Any, status: int) -> Response:
    """A handler's answer as a response: its own, 204 for None, else its JSON with the route's status."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    return JSONResponse(result, status)


def query_integer(call: Call, name: str, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` as an integer from ``low`` to ``high`` (``default`` when absent)."""
    raw = call.request.query_params.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput("invalid query", [FieldError(f"query.{name}", f"an integer from {low} to {high}")])
    return int(raw)


async def _read(reader: Handler, call: Call) -> Any:
    """The resource as its GET handler shows it, or None when it cannot (gone, or not the caller's to read)."""
    try:
        result = await reader(call)
    except WardenError:
        return None
    return None if isinstance(result, Response) else result


async def _sent(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return {"unparsed_bytes": len(raw)}


async def _parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput("request body too large", [FieldError("body", f"at most {MAX_BODY_BYTES} bytes")])
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # Requiring JSON also blocks cross-site HTML form posts, which cannot send this content type.
    if raw and content_type != "application/json":
        raise InvalidInput("request body must be JSON",
                           [FieldError("content-type", "must be application/json")])
    try:
        data = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise InvalidInput("malformed JSON", [FieldError("body", f"not valid JSON: {exc}")]) from None
    if unstorable := unstorable_texts(data):
        raise InvalidInput("texts that cannot be stored", unstorable)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_fields(exc) from None


def unstorable_texts(value: Any, path: str = "") -> list[FieldError]:
    """The places in a parsed JSON body where a text (or a key) holds NUL or a lone surrogate: no store keeps
    either (PostgreSQL's text cannot hold NUL; neither is UTF-8 a surrogate alone), so they are refused here with
    their place named, whichever store is configured."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return [FieldError(path or "body", "holds a lone surrogate (not UTF-8)")]
        return [FieldError(path or "body", "holds NUL (\\u0000)")] if "\x00" in value else []
    if isinstance(value, dict):
        places = {key: f"{path}.{_shown(key)}" if path else _shown(key) for key in value}
        return [error for key, item in value.items()
                for error in [*unstorable_texts(key, places[key]), *unstorable_texts(item, places[key])]]
    if isinstance(value, list):
        return [error for index, item in enumerate(value)
                for error in unstorable_texts(item, f"{path}.{index}" if path else str(index))]
    return []


def _shown(key: str) -> str:
    """A key as it can be named in an answer: a surrogate or NUL in it escaped."""
    return key.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def invalid_fields(exc: ValidationError) -> InvalidInput:
    fields = [
        FieldError(".".join(str(p) for p in err["loc"]) or "body", str(err["msg"]).removeprefix("Value error, "))
        for err in exc.errors(include_url=False)
    ]
    return InvalidInput("invalid fields: " + ", ".join(f.field for f in fields), fields)
