"""The request context: trace ids from W3C traceparent, x-request-id kept (or made up) and echoed."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from broker.edge.request_context import RequestContexts, context_of, traceparent_ids

TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(("value", "expected"), [
    (f"00-{TRACE}-b7ad6b7169203331-01", (TRACE, "b7ad6b7169203331")),
    (f"00-{TRACE.upper()}-B7AD6B7169203331-01".encode(), (TRACE, "b7ad6b7169203331")),
    (f"  00-{TRACE}-b7ad6b7169203331-00 ", (TRACE, "b7ad6b7169203331")),
    (f"00-{'0' * 32}-b7ad6b7169203331-01", None),  # all-zero trace id: invalid
    (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent id: invalid
    (f"00-{TRACE[:-1]}-b7ad6b7169203331-01", None),
    (f"00-{TRACE}-b7ad6b7169203331", None),
    ("garbage", None), (None, None), (42, None),
])
def test_trace_and_parent_ids_come_only_from_valid_traceparents(value: object,
                                                                expected: tuple[str, str] | None) -> None:
    assert traceparent_ids(value) == expected


async def test_the_middleware_keeps_a_valid_request_id_replaces_a_bad_one_and_echoes_it() -> None:
    seen = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(context_of(scope))
        await send({"type": "http.response.start", "status": 204, "headers": [(b"x-other", b"1")]})
        await send({"type": "http.response.body", "body": b""})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(RequestContexts(app)), base_url="http://g") as client:
        kept = await client.get("/", headers={"x-request-id": "abc-123", "traceparent":
                                              f"00-{TRACE}-b7ad6b7169203331-01", "user-agent": "u" * 600})
        replaced = await client.get("/", headers={"x-request-id": "has space"})
        missing = await client.get("/")
    assert kept.headers["x-request-id"] == "abc-123" and kept.headers["x-other"] == "1"
    assert seen[0].trace_id == TRACE and seen[0].request_id == "abc-123" and len(seen[0].user_agent or "") == 512
    assert replaced.headers["x-request-id"] == seen[1].request_id != "has space"
    assert missing.headers["x-request-id"] == seen[2].request_id
    assert len({seen[1].trace_id, seen[2].trace_id, TRACE}) == 3  # a new trace for each untraced request
    # Each request is a span of its own, a child of the client's; upstream requests made for it are its children.
    assert seen[0].parent_span_id == "b7ad6b7169203331" and seen[1].parent_span_id is None
    assert len({c.span_id for c in seen} | {"b7ad6b7169203331"}) == 4
    assert seen[0].traceparent() == f"00-{TRACE}-{seen[0].span_id}-01"
