"""The live feed: a server-sent event stream of audit events and per-minute stats, opened with a one-shot ticket
(never a long-lived credential in the URL), read from a running Warden over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD
from tests.interaction.process import WardenProcess, served


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenProcess]:
    with served(tmp_path_factory.mktemp("live"), {}) as process:
        yield process


@pytest.fixture(scope="module")
def admin(warden: WardenProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=warden.console, timeout=10) as client:
        body = {"email": "admin@example.com", "password": STRONG_PASSWORD}
        assert client.post("/api/setup", json=body).status_code == 201
        client.headers["x-csrf-token"] = client.post("/api/auth/login", json=body).json()["csrf_token"]
        yield client


def ticket(admin: httpx.Client) -> str:
    answer = admin.post("/api/audit/live/tickets")
    assert answer.status_code == 201, answer.text
    assert answer.json()["expires_in"] == 30
    return str(answer.json()["ticket"])


def read_until(warden: WardenProcess, ticket: str, wanted: Any, within: float = 15) -> list[tuple[str, Any]]:
    """Read the stream until ``wanted(events)`` holds; returns the (event, data) pairs read."""
    seen: list[tuple[str, Any]] = []
    deadline = time.monotonic() + within
    with httpx.Client(timeout=within) as client, \
            client.stream("GET", warden.console + "/api/audit/live", params={"ticket": ticket}) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind:
                seen.append((kind, json.loads(line.split(":", 1)[1])))
                if wanted(seen):
                    return seen
            assert time.monotonic() < deadline, f"not seen in time: {seen[-5:]}"
    return seen


def test_events_arrive_live_with_stats(warden: WardenProcess, admin: httpx.Client) -> None:
    marker = f"live-{time.time_ns()}"
    opened = ticket(admin)
    # An audited request while the stream is open: a /v1 call with a key that does not exist.
    httpx.get(warden.gateway + "/v1/models", headers={"authorization": "Bearer wdn_nope", "x-request-id": marker})

    def arrived(seen: list[tuple[str, Any]]) -> int | None:
        return next((i for i, (kind, data) in enumerate(seen) if kind == "audit" and data["request_id"] == marker),
                    None)

    def got_it(seen: list[tuple[str, Any]]) -> bool:  # the event, then stats that count it
        at = arrived(seen)
        return at is not None and any(kind == "stats" for kind, _ in seen[at:])

    seen = read_until(warden, opened, got_it)
    at = arrived(seen)
    assert at is not None
    event = seen[at][1]
    assert event["surface"] == "ai" and event["outcome"] == "refused"
    stats = next(data for kind, data in seen[at:] if kind == "stats")
    assert {"minutes", "last_minute"} <= stats.keys() and stats["last_minute"]["requests"] >= 1


def test_a_ticket_opens_one_stream_and_nothing_else_opens_one(warden: WardenProcess, admin: httpx.Client) -> None:
    opened = ticket(admin)
    read_until(warden, opened, lambda seen: bool(seen))
    for params in ({"ticket": opened}, {"ticket": "made-up"}, {}):
        answer = httpx.get(warden.console + "/api/audit/live", params=params)
        assert answer.status_code == 401 and "ticket" in answer.json()["error"]["message"]
    with httpx.Client(base_url=warden.console) as stranger:  # no session: no ticket either
        assert stranger.post("/api/audit/live/tickets").status_code == 401
