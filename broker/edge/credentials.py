"""Reading the presented API key from a request."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from broker.kernel.errors import AuthenticationFailed


def presented_key(conn: HTTPConnection, allow_x_api_key: bool = False) -> str:
    """The bearer token (or Anthropic-style ``x-api-key`` where allowed); 401 when none is present."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("Authorization header must be 'Bearer <key>'")
        return token.strip()
    if allow_x_api_key and (key := conn.headers.get("x-api-key")):
        return key.strip()
    raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")


def client_ip(conn: HTTPConnection) -> str | None:
    return conn.client.host if conn.client else None
