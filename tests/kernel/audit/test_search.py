"""Searching the audit log through the console API, on SQLite and PostgreSQL: filters, LIKE patterns that match
only what they say, full-text search over captured bodies (FTS5 / tsvector) that never reads a caller's words as
query syntax, one trace across both surfaces with its cost, usage and cost aggregates, pages, and permissions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from broker.app import Warden
from broker.kernel.audit.adapters.store import SEARCHED_CHARS
from broker.kernel.audit.adapters.store_search import AuditFilter
from broker.kernel.audit.capture import CapturedBody
from broker.kernel.audit.events import AuditEvent, with_bodies
from tests.conftest import STRONG_PASSWORD, asgi_client, eventually
from tests.console.conftest import sign_in

DAY1 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
DAY2 = DAY1 + 86_400


def ai(event_id: str, at: float, user: str, team: str, model: str, provider: str, usd: float, trace: str = "t" * 32,
       outcome: str = "ok", code: int | None = None) -> AuditEvent:
    return AuditEvent(event_id, at, trace, "ai", user, team, f"key-{user}", f"provider:{provider}",
                      f"chat.completions:{model}", outcome, code, 120.0,
                      {"model": model, "provider": provider, "input_tokens": 100, "output_tokens": 50,
                       "weighted_tokens": 150.0, "usd": usd})


def mcp(event_id: str, at: float, user: str, server: str, tool: str, trace: str = "t" * 32) -> AuditEvent:
    return AuditEvent(event_id, at, trace, "mcp", user, None, f"key-{user}", f"mcp_server:{server}",
                      f"tools/call:{server}__{tool}", "ok", None, 30.0, {"tool": f"{server}__{tool}"})


def body(text: str) -> dict[str, CapturedBody]:
    return {"request": CapturedBody(text, len(text), {}, False)}


@pytest.fixture
async def audit_log(warden: Warden) -> AsyncIterator[httpx.AsyncClient]:
    trace = "a" * 32
    events = [
        with_bodies(ai("e1", DAY1, "u1", "t1", "gpt-4o", "openai", 0.5, trace), body("hello, the secret plan alpha")),
        mcp("e2", DAY1 + 1, "u1", "github", "create_issue", trace),
        with_bodies(ai("e3", DAY2, "u2", "t2", "claude-x", "anthropic", 1.25, outcome="refused", code=403),
                    body('a quote " and NEAR( and * stars')),
        mcp("e4", DAY2 + 1, "u2", "odd", "a%b_c"),
        mcp("e5", DAY2 + 2, "u2", "odd", "axxbyc"),
        ai("e6", DAY2 + 3, "u1", "t1", "gpt-4o", "openai", 0.25),
    ]
    for event in events:
        await warden.kernel.audit.record(event)

    async def stored() -> bool:  # as the search sees them (the store, or ClickHouse)
        return len(await warden.kernel.search.events(AuditFilter(), 100)) == len(events)

    assert await eventually(stored)
    async with asgi_client(warden.console, "http://console.test") as console:
        assert (await console.post("/api/setup", json={"email": "admin@example.com",
                                                       "password": STRONG_PASSWORD})).status_code == 201
        await sign_in(console, "admin@example.com")
        yield console


async def ids(console: httpx.AsyncClient, **query: Any) -> list[str]:
    # From DAY1 on: the corpus (in 2027), not the console's own sign-in on the admin trail (today).
    answer = await console.get("/api/audit/events", params={"since": DAY1, **query})
    assert answer.status_code == 200, answer.text
    return [e["id"] for e in answer.json()["items"]]


async def test_filters(audit_log: httpx.AsyncClient) -> None:
    assert await ids(audit_log) == ["e6", "e5", "e4", "e3", "e2", "e1"]
    assert await ids(audit_log, surface="ai") == ["e6", "e3", "e1"]
    assert await ids(audit_log, user_id="u1", surface="mcp") == ["e2"]
    assert await ids(audit_log, team_id="t1") == ["e6", "e1"]
    assert await ids(audit_log, api_key_id="key-u2") == ["e5", "e4", "e3"]
    assert await ids(audit_log, model="gpt-4o") == ["e6", "e1"]
    assert await ids(audit_log, provider="anthropic") == ["e3"]
    assert await ids(audit_log, server="github") == ["e2"]
    assert await ids(audit_log, tool="github__create_issue") == ["e2"]
    assert await ids(audit_log, outcome="refused") == ["e3"] == await ids(audit_log, status=403)
    assert await ids(audit_log, status=200, surface="ai") == ["e6", "e1"]
    assert await ids(audit_log, since=DAY2, until=DAY2 + 2) == ["e4", "e3"]
    assert await ids(audit_log, since="2027-01-16T08:00:00Z", until="2027-01-16T08:00:01+00:00") == ["e3"]
    assert await ids(audit_log, trace_id="a" * 32) == ["e2", "e1"]


async def test_tool_patterns_match_only_what_they_say(audit_log: httpx.AsyncClient) -> None:
    assert await ids(audit_log, tool="odd__a%b_c") == ["e4"]  # exact: % and _ are themselves
    assert await ids(audit_log, tool="odd__a%b*") == ["e4"]  # not "axxbyc", as LIKE's own % and _ would match
    assert await ids(audit_log, tool="odd__*") == ["e5", "e4"]
    assert await ids(audit_log, tool="*") == ["e5", "e4", "e2"]


async def test_full_text_search_over_bodies_takes_words_never_query_syntax(audit_log: httpx.AsyncClient) -> None:
    assert await ids(audit_log, q="alpha") == ["e1"]
    assert await ids(audit_log, q="PLAN secret") == ["e1"]  # every word, any order, any case
    assert await ids(audit_log, q="plan missing") == []
    assert await ids(audit_log, q='quote " NEAR( *') == ["e3"]  # FTS5 syntax characters are just punctuation
    assert await ids(audit_log, q='alpha" OR "stars') == []  # not an OR: all of alpha, OR, stars
    assert await ids(audit_log, q="alpha", user_id="u2") == []


async def test_offloaded_bodies_are_found_by_the_start_of_their_text(warden: Warden,
                                                                     audit_log: httpx.AsyncClient) -> None:
    """A body offloaded past body_max_bytes is searched by its first SEARCHED_CHARS characters, kept for that
    alone; purged, it leaves the index as well."""
    text = "zeppelin " + "filler " * (SEARCHED_CHARS // 7) + "tailword"
    offloaded = {"response": CapturedBody(text, len(text), {}, True)}
    await warden.kernel.audit.record(with_bodies(ai("e7", DAY2 + 4, "u3", "t3", "gpt-4o", "openai", 0.1), offloaded))
    assert await eventually(lambda: _found(audit_log, "zeppelin", ["e7"]))
    row = await warden.kernel.db.fetchrow("SELECT content, offload_key, search_text FROM audit_bodies"
                                          " WHERE event_id = 'e7'")
    assert row is not None and row["content"] is None and row["offload_key"] is not None
    assert row["search_text"] == text[:SEARCHED_CHARS]
    assert await ids(audit_log, q="tailword") == []  # beyond what is kept for search
    assert await ids(audit_log, q="zeppelin alpha") == []  # all words in one body, not across bodies
    assert await ids(audit_log, q="alpha") == ["e1"]  # bodies kept whole are found as before
    await warden.kernel.db.execute("DELETE FROM audit_bodies WHERE event_id = 'e7'")  # as retention does
    assert await ids(audit_log, q="zeppelin") == []
    if warden.kernel.db.dialect == "sqlite":  # the index agrees with the table it indexes
        await warden.kernel.db.execute("INSERT INTO audit_bodies_offloaded_fts (audit_bodies_offloaded_fts)"
                                       " VALUES ('integrity-check')")


async def _found(console: httpx.AsyncClient, q: str, expected: list[str]) -> bool:
    return await ids(console, q=q) == expected


async def test_pages_follow_the_cursor_to_the_end(audit_log: httpx.AsyncClient) -> None:
    seen, cursor = [], None
    while True:
        page = (await audit_log.get("/api/audit/events", params={
            "limit": 4, "since": DAY1, **({"cursor": cursor} if cursor else {})})).json()
        seen += [e["id"] for e in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == ["e6", "e5", "e4", "e3", "e2", "e1"]


async def test_one_trace_across_both_surfaces_with_its_cost(audit_log: httpx.AsyncClient) -> None:
    trace = (await audit_log.get(f"/api/audit/traces/{'a' * 32}")).json()
    assert [e["id"] for e in trace["events"]] == ["e1", "e2"]  # the LLM turn, then the tool call it asked for
    assert (trace["llm_calls"], trace["tool_calls"], trace["usd"], trace["input_tokens"]) == (1, 1, 0.5, 100)
    assert trace["duration_ms"] == pytest.approx(1030.0)
    assert (await audit_log.get(f"/api/audit/traces/{'b' * 32}")).status_code == 404


async def test_usage_and_cost_aggregates(audit_log: httpx.AsyncClient) -> None:
    async def usage(**query: Any) -> list[dict[str, Any]]:
        answer = await audit_log.get("/api/audit/usage", params={"since": DAY1, **query})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    by_model = await usage(group_by="model", surface="ai")
    assert by_model[0] == {"model": "claude-x", "requests": 1, "errors": 1, "input_tokens": 100,
                           "output_tokens": 50, "weighted_tokens": 150.0, "usd": 1.25, "avg_duration_ms": 120.0}
    assert by_model[1]["model"] == "gpt-4o" and by_model[1]["usd"] == 0.75 and by_model[1]["requests"] == 2
    per_day = await usage(group_by="team", period="day", surface="ai")
    assert [(r["period"], r["team"], r["usd"]) for r in per_day] == [
        ("2027-01-15", "t1", 0.5), ("2027-01-16", "t2", 1.25), ("2027-01-16", "t1", 0.25)]
    assert {r["tool"]: r["requests"] for r in await usage(group_by="tool", surface="mcp")} == {
        "github__create_issue": 1, "odd__a%b_c": 1, "odd__axxbyc": 1}
    by_minute = await usage(group_by="surface", period="minute", until=DAY1 + 60)
    assert {(r["period"], r["surface"], r["requests"]) for r in by_minute} == {
        ("2027-01-15T08:00Z", "ai", 1), ("2027-01-15T08:00Z", "mcp", 1)}
    monthly = await usage(group_by="user", period="month")
    assert {(r["period"], r["user"], r["requests"]) for r in monthly} == {("2027-01", "u1", 3), ("2027-01", "u2", 3)}
    # u1: two AI requests of 120 ms and a tool call of 30 ms; u2: one AI request and two tool calls.
    assert {r["user"]: r["avg_duration_ms"] for r in monthly} == {"u1": 90.0, "u2": 60.0}


async def test_bad_queries_are_refused_naming_the_parameter(audit_log: httpx.AsyncClient) -> None:
    for path, query, field in [("/api/audit/events", {"since": "yesterday"}, "query.since"),
                               ("/api/audit/events", {"limit": "0"}, "query.limit"),
                               ("/api/audit/events", {"cursor": "x"}, "query.cursor"),
                               ("/api/audit/events", {"q": "  ,; "}, "query.q"),
                               ("/api/audit/events", {"status": "ok"}, "query.status"),
                               ("/api/audit/usage", {"group_by": "colour"}, "query.group_by"),
                               ("/api/audit/usage", {"period": "week"}, "query.period")]:
        answer = await audit_log.get(path, params=query)
        assert answer.status_code == 422 and field in answer.text, (query, answer.text)


async def test_a_viewer_reads_the_log_but_searches_bodies_only_with_read_bodies(
        warden: Warden, audit_log: httpx.AsyncClient) -> None:
    assert (await audit_log.post("/api/users", json={"email": "view@example.com", "password": STRONG_PASSWORD,
                                                     "roles": ["viewer"]})).status_code == 201
    async with asgi_client(warden.console, "http://console.test") as viewer:
        await sign_in(viewer, "view@example.com")
        assert (await viewer.get("/api/audit/events")).status_code == 200
        assert (await viewer.get("/api/audit/usage")).status_code == 200
        assert (await viewer.get("/api/audit/events", params={"q": "alpha"})).status_code == 403
        await sign_in(viewer, "view@example.com")
    async with asgi_client(warden.console, "http://console.test") as anonymous:
        assert (await anonymous.get("/api/audit/events")).status_code == 401


async def test_a_team_auditor_reads_its_team_s_events_bodies_and_part_of_a_trace(
        warden: Warden, audit_log: httpx.AsyncClient) -> None:
    team = (await audit_log.post("/api/teams", json={"name": "ml"})).json()
    role = (await audit_log.post("/api/roles", json={"name": "team auditor",
                                                     "permissions": ["audit:read", "audit:read_bodies"]})).json()
    user = (await audit_log.post("/api/users", json={"email": "aud@example.com", "password": STRONG_PASSWORD})).json()
    assigned = await audit_log.post(f"/api/users/{user['id']}/roles",
                                    json={"role_id": role["id"], "team_id": team["id"]})
    assert assigned.status_code == 201, assigned.text
    trace = "c" * 32
    for event in (with_bodies(ai("own", DAY2 + 10, "u3", team["id"], "gpt-4o", "openai", 0.125, trace), body("ours")),
                  with_bodies(ai("theirs", DAY2 + 11, "u4", "t2", "gpt-4o", "openai", 0.5, trace), body("theirs"))):
        await warden.kernel.audit.record(event)

    async def stored() -> bool:
        return len(await warden.kernel.search.events(AuditFilter(trace_id=trace), 10)) == 2

    assert await eventually(stored)
    async with asgi_client(warden.console, "http://console.test") as auditor:
        await sign_in(auditor, "aud@example.com")
        assert (await auditor.get("/api/audit/events/own")).status_code == 200
        assert (await auditor.get("/api/audit/events/theirs")).status_code == 403
        assert (await auditor.get("/api/audit/events/own/bodies")).json()["bodies"]["request"]["text"] == "ours"
        assert (await auditor.get("/api/audit/events/theirs/bodies")).status_code == 403
        run = (await auditor.get(f"/api/audit/traces/{trace}")).json()
        assert [e["id"] for e in run["events"]] == ["own"] and run["usd"] == 0.125 and run["count"] == 1
        assert (await auditor.get("/api/audit/events", params={"trace_id": trace})).status_code == 403
        mine = await auditor.get("/api/audit/events", params={"trace_id": trace, "team_id": team["id"]})
        assert [e["id"] for e in mine.json()["items"]] == ["own"]
    full = (await audit_log.get(f"/api/audit/traces/{trace}")).json()  # a global auditor sees the whole run
    assert full["count"] == 2 and full["usd"] == 0.625
