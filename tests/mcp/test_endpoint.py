"""``/mcp`` through the official SDK client, with a stdio upstream and a Streamable HTTP upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import eventually
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client, modern_client, stdio_server

SECRET = "wdn_" + "M" * 43
AI_ONLY = "wdn_" + "A" * 43
OPS = "wdn_" + "O" * 43
SESSIONS_PER_SERVER = 8


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, upstream_url: str) -> Iterator[WardenProcess]:
    tmp = tmp_path_factory.mktemp("mcp")
    demo = stdio_server("demo")
    demo["timeout_seconds"] = 2
    with served(tmp, {
        "mcp_servers": [demo, {"name": "web", "transport": "streamable_http", "url": upstream_url}],
        "api_keys": [{"name": "agent", "owner": "agent@example.com", "secret": SECRET, "surfaces": ["mcp"]},
                     {"name": "llm", "owner": "agent@example.com", "secret": AI_ONLY, "surfaces": ["ai"]},
                     {"name": "ops", "owner": "agent@example.com", "secret": OPS, "surfaces": ["management"]}],
        "quotas": {"rules": [{"subject": "tool:web__add", "metric": "requests", "window": "1m", "limit": 2,
                              "surface": "mcp"}]},
        "mcp": {"allowed_origins": ["https://console.example"], "sessions_per_server": SESSIONS_PER_SERVER},
    }) as process:
        setup = httpx.post(process.console + "/api/setup", json={"email": "agent@example.com",
                                                                  "password": "correct horse 9 battery"})
        assert setup.status_code == 201  # the keys' owner becomes the super admin
        yield process


def url(warden: WardenProcess) -> str:
    return warden.gateway + "/mcp"


async def test_tools_of_both_upstreams_are_listed_with_prefixes_in_order(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        names = [t.name for t in (await session.list_tools()).tools]
    assert names == sorted(names)
    for tool in ("echo", "add", "countdown"):
        assert f"demo__{tool}" in names and f"web__{tool}" in names


async def test_tools_of_both_upstreams_can_be_called(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        echoed = await session.call_tool("demo__echo", {"text": "hello"})
        summed = await session.call_tool("web__echo", {"text": "over http"})
    assert echoed.content[0].text == "hello"  # type: ignore[union-attr]
    assert summed.content[0].text == "over http"  # type: ignore[union-attr]


@pytest.mark.parametrize("tool", ["demo__countdown", "web__countdown"])
async def test_progress_arrives_before_the_result(warden: WardenProcess, tool: str) -> None:
    seen: list[tuple[float, float]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), progress))

    async with mcp_client(url(warden), SECRET) as session:
        result = await session.call_tool(tool, {"steps": 4}, progress_callback=on_progress)
        finished = time.monotonic()
    assert [p for _, p in seen] == [1, 2, 3, 4]
    assert result.content[0].text == "done"  # type: ignore[union-attr]
    assert seen[0][0] < finished - 0.1  # the first step came while the call still had ~150 ms to run


async def test_unknown_tool_is_invalid_params_naming_it(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        with pytest.raises(MCPError) as caught:
            await session.call_tool("demo__nope", {})
    assert caught.value.code == -32602
    assert caught.value.data == {"tool": "demo__nope"}


async def test_a_failing_tool_is_a_result_not_an_outage(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        for _ in range(6):  # more than the breaker threshold: tool errors never open it
            failed = await session.call_tool("demo__explode", {})
            assert failed.is_error
        assert (await session.call_tool("demo__echo", {"text": "still fine"})).is_error is False


async def test_a_hanging_upstream_times_out_within_its_bound(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        started = time.monotonic()
        with pytest.raises(MCPError) as caught:
            await session.call_tool("demo__hang", {})
        took = time.monotonic() - started
    # The server's 2-second bound ends the call (not at once, not never); the slack is for a loaded CI machine.
    assert 1.9 < took < 2 + 5, took
    assert caught.value.code == -32002


async def test_an_upstream_that_dies_mid_call_errors_then_is_restarted(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        before = (await session.call_tool("demo__whoami", {})).structured_content
        with pytest.raises(MCPError) as caught:
            await session.call_tool("demo__die", {})
        assert caught.value.code in (-32001, -32002)
        assert (await session.call_tool("web__echo", {"text": "unaffected"})).is_error is False
        after = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                after = (await session.call_tool("demo__whoami", {})).structured_content
                break
            except MCPError as exc:
                assert exc.code == -32001  # still reconnecting
    assert after is not None and after != before


async def test_quota_rule_on_a_tool_refuses_with_its_data(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        for _ in range(2):
            await session.call_tool("web__add", {"a": 1, "b": 2})
        with pytest.raises(MCPError) as caught:
            await session.call_tool("web__add", {"a": 1, "b": 2})
    assert caught.value.code == -32029
    assert caught.value.data["rule"] == "tool:requests/1m"
    assert caught.value.data["code"] == "rate_limited"


def test_missing_or_wrong_key_is_401_with_www_authenticate(warden: WardenProcess) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    missing = httpx.post(url(warden), json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(url(warden), json=body, headers={"authorization": "Bearer wdn_" + "x" * 43})
    assert wrong.status_code == 401
    no_surface = httpx.post(url(warden), json=body, headers={"authorization": f"Bearer {AI_ONLY}"})
    assert no_surface.status_code == 403


def test_unknown_session_is_404(warden: WardenProcess) -> None:
    headers = {"authorization": f"Bearer {SECRET}", "mcp-session-id": "not-a-session",
               "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    response = httpx.post(url(warden), json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
    assert response.status_code == 404


async def test_two_hundred_stdio_sessions_leave_no_child_process_behind(warden: WardenProcess) -> None:
    """Each client session gets its own stdio process (so the upstream's requests reach only that client);
    their number is bounded while open, and every one is reaped when its session ends."""
    import psutil

    assert warden.process is not None

    def children() -> int:
        return len(psutil.Process(warden.process.pid).children(recursive=True))  # type: ignore[union-attr]

    baseline = children()
    peak = 0

    async def one_session() -> None:
        nonlocal peak
        async with mcp_client(url(warden), SECRET) as session:
            assert (await session.call_tool("demo__echo", {"text": "x"})).is_error is False
            peak = max(peak, children())

    for _ in range(10):
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(one_session)
    assert baseline < peak <= baseline + SESSIONS_PER_SERVER
    async def all_reaped() -> bool:
        # At most the baseline: a child that was still ending when the baseline was taken (from an earlier
        # test's session) may be gone by now, which once left the count one below it for good.
        return children() <= baseline

    # Generous: 200 processes end one by one on a loaded two-core CI machine.
    assert await eventually(all_reaped, within=45), f"{children() - baseline} children left"


async def test_a_2026_07_28_client_and_a_2025_11_25_client_share_the_upstreams(warden: WardenProcess) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with modern_client(url(warden), SECRET) as modern, mcp_client(url(warden), SECRET) as legacy:
        modern_tools = [t.name for t in (await modern.list_tools()).tools]
        legacy_tools = [t.name for t in (await legacy.list_tools()).tools]
        assert modern_tools == legacy_tools
        result = await modern.call_tool("demo__countdown", {"steps": 3}, progress_callback=on_progress)
        assert result.content[0].text == "done"  # type: ignore[union-attr]
        assert (await legacy.call_tool("web__echo", {"text": "old"})).content[0].text == "old"  # type: ignore[union-attr]
    assert seen == [1, 2, 3]


HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}


def raw_session(warden: WardenProcess) -> dict[str, str]:
    headers = {**HEADERS, "authorization": f"Bearer {SECRET}"}
    response = httpx.post(url(warden), json=INITIALIZE, headers=headers)
    assert response.status_code == 200
    headers.update({"mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"})
    httpx.post(url(warden), json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


def test_malformed_json_is_a_parse_error(warden: WardenProcess) -> None:
    response = httpx.post(url(warden), content=b"{not json", headers={**HEADERS,
                                                                     "authorization": f"Bearer {SECRET}"})
    assert response.status_code == 400 and response.json()["error"]["code"] == -32700


def test_unknown_method_is_method_not_found(warden: WardenProcess) -> None:
    response = httpx.post(url(warden), json={"jsonrpc": "2.0", "id": 2, "method": "no/such"},
                          headers=raw_session(warden))
    assert '"code":-32601' in response.text.replace(" ", "")


def test_wrong_protocol_version_is_400(warden: WardenProcess) -> None:
    headers = {**raw_session(warden), "mcp-protocol-version": "1999-01-01"}
    response = httpx.post(url(warden), json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=headers)
    assert response.status_code == 400


def test_delete_ends_the_session(warden: WardenProcess) -> None:
    headers = raw_session(warden)
    assert httpx.delete(url(warden), headers=headers).status_code == 200
    after = httpx.post(url(warden), json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, headers=headers)
    assert after.status_code == 404


async def test_prompts_are_namespaced_and_forwarded(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        names = [p.name for p in (await session.list_prompts()).prompts]
        assert {"demo__review", "web__review"} <= set(names) and names == sorted(names)
        prompt = await session.get_prompt("web__review", {"language": "rust"})
        with pytest.raises(MCPError) as caught:
            await session.get_prompt("web__nope", {})
    assert "rust" in prompt.messages[0].content.text  # type: ignore[union-attr]
    assert caught.value.code == -32602


async def test_resources_and_templates_get_the_server_in_their_scheme(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), SECRET) as session:
        uris = [str(r.uri) for r in (await session.list_resources()).resources]
        templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
        readme = await session.read_resource("demo+demo://readme")
        item = await session.read_resource("web+demo://items/42")
        with pytest.raises(MCPError):
            await session.read_resource("nowhere+demo://readme")
    assert {"demo+demo://readme", "web+demo://readme"} <= set(uris)
    assert {"demo+demo://items/{item_id}", "web+demo://items/{item_id}"} <= set(templates)
    assert readme.contents[0].text == "demo readme"  # type: ignore[union-attr]
    assert str(readme.contents[0].uri) == "demo+demo://readme"
    assert item.contents[0].text == "item 42"  # type: ignore[union-attr]


async def test_completion_is_forwarded_for_prompts(warden: WardenProcess) -> None:
    import mcp_types as types

    async with mcp_client(url(warden), SECRET) as session:
        result = await session.complete(types.PromptReference(type="ref/prompt", name="demo__review"),
                                        {"name": "language", "value": "p"})
    assert result.completion.values == ["python", "perl"]


async def test_a_call_s_meta_traceparent_joins_its_trace_and_the_request_id_is_echoed(warden: WardenProcess) -> None:
    trace = "5bf92f3577b34da6a3ce929d0e0e4737"
    async with mcp_client(url(warden), SECRET, {"x-request-id": "agent-run-7", "user-agent": "agent/2"}) as session:
        await session.call_tool("demo__countdown", {"steps": 1},
                                meta={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})  # type: ignore[typeddict-unknown-key]
    async with httpx.AsyncClient(base_url=warden.console, headers={"authorization": f"Bearer {OPS}"}) as ops:
        async def traced() -> list[dict[str, Any]]:
            return [c for c in (await ops.get("/api/mcp/calls")).json()["items"] if c["trace_id"] == trace]

        async def found() -> bool:
            return len(await traced()) == 1

        assert await eventually(found)
        call = (await traced())[0]
    assert (call["request_id"], call["client_ip"], call["user_agent"]) == ("agent-run-7", "127.0.0.1", "agent/2")
    async with httpx.AsyncClient() as plain:
        answer = await plain.post(url(warden), headers={"x-request-id": "echo-me"}, json={})
    assert answer.headers["x-request-id"] == "echo-me"


async def test_every_call_is_audited_with_its_timeline(warden: WardenProcess) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with mcp_client(url(warden), SECRET, {"traceparent": traceparent}) as session:
        await session.call_tool("demo__countdown", {"steps": 2})
        await session.call_tool("demo__explode", {})
        with pytest.raises(MCPError):
            await session.call_tool("demo__missing", {})
    async with httpx.AsyncClient(base_url=warden.console, headers={"authorization": f"Bearer {OPS}"}) as ops:
        async def audited() -> list[dict[str, Any]]:
            items = (await ops.get("/api/mcp/calls")).json()["items"]
            return [c for c in items if c["trace_id"] == "0af7651916cd43dd8448eb211c80319c"]

        async def all_three() -> bool:
            return len(await audited()) == 3

        assert await eventually(all_three)  # the writer works off the request path
        calls = await audited()
        one = await ops.get(f"/api/mcp/calls/{calls[0]['id']}")
    assert one.status_code == 200 and one.json()["duration_ms"] > 0
    by_action = {c["action"]: c for c in calls}
    countdown = by_action["tools/call:demo__countdown"]
    assert countdown["outcome"] == "ok" and countdown["target"] == "mcp_server:demo"
    assert countdown["detail"]["progress_events"] == 2
    events = [e["event"] for e in countdown["detail"]["timeline"]]
    assert events == ["start", "progress", "progress", "ok"]
    assert by_action["tools/call:demo__explode"]["outcome"] == "tool_error"
    assert by_action["tools/call:demo__missing"]["outcome"] == "refused"
    assert by_action["tools/call:demo__missing"]["error_code"] == -32602


async def test_a_per_server_endpoint_serves_one_upstream_unprefixed(warden: WardenProcess) -> None:
    async with mcp_client(url(warden) + "/web", SECRET) as session:
        tools = [t.name for t in (await session.list_tools()).tools]
        echoed = await session.call_tool("echo", {"text": "direct"})
        prompt = await session.get_prompt("review", {"language": "go"})
        readme = await session.read_resource("demo://readme")
        templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
        with pytest.raises(MCPError) as caught:
            await session.call_tool("web__echo", {"text": "prefixed names do not exist here"})
    assert "echo" in tools and not any("__" in name for name in tools)
    assert echoed.content[0].text == "direct"  # type: ignore[union-attr]
    assert "go" in prompt.messages[0].content.text  # type: ignore[union-attr]
    assert str(readme.contents[0].uri) == "demo://readme"
    assert "demo://items/{item_id}" in templates
    assert caught.value.code == -32602


def test_a_per_server_endpoint_for_an_unknown_server_is_404(warden: WardenProcess) -> None:
    response = httpx.post(url(warden) + "/nowhere", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          headers={**HEADERS, "authorization": f"Bearer {SECRET}"})
    assert response.status_code == 404


async def test_connected_clients_hear_that_the_tool_list_changed(warden: WardenProcess) -> None:
    import mcp_types as types

    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with mcp_client(url(warden), SECRET, message_handler=on_message) as session:
        assert session.server_capabilities.tools.list_changed  # type: ignore[union-attr]
        await session.list_tools()
        async with httpx.AsyncClient(base_url=warden.console, headers={"authorization": f"Bearer {OPS}"}) as ops:
            added = await ops.post("/api/mcp/servers", json=stdio_server("late"))
            assert added.status_code == 201
            with anyio.fail_after(20):
                await changed.wait()
            assert any(t.name.startswith("late__") for t in (await session.list_tools()).tools)
            assert (await ops.delete("/api/mcp/servers/late")).status_code == 204


async def test_a_2026_07_28_client_hears_list_changes_on_a_listen_stream(warden: WardenProcess) -> None:
    from mcp.client.subscriptions import listen

    async with modern_client(url(warden), SECRET) as session:
        listed = await session.list_tools()
        assert listed.cache_scope == "private" and listed.ttl_ms == 30_000  # per-caller catalog, briefly cacheable
        async with listen(session, tools_list_changed=True) as subscription, \
                httpx.AsyncClient(base_url=warden.console, headers={"authorization": f"Bearer {OPS}"}) as ops:
            assert subscription.honored.tools_list_changed
            assert (await ops.post("/api/mcp/servers", json=stdio_server("later"))).status_code == 201
            with anyio.fail_after(20):
                event = await subscription.__anext__()
            assert type(event).__name__ == "ToolsListChanged"
            assert (await ops.delete("/api/mcp/servers/later")).status_code == 204


def test_a_foreign_origin_is_refused_before_authentication(warden: WardenProcess) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {**HEADERS, "authorization": f"Bearer {SECRET}", "origin": "http://evil.example"}
    refused = httpx.post(url(warden), json=body, headers=headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    anonymous = httpx.post(url(warden) + "/web", json=body, headers={**HEADERS, "origin": "http://evil.example"})
    assert anonymous.status_code == 403
    allowed = httpx.post(url(warden), json=INITIALIZE, headers={**headers, "origin": "https://console.example"})
    assert allowed.status_code == 200


async def test_an_upstreams_sampling_request_goes_to_the_client_that_made_the_call(warden: WardenProcess) -> None:
    """Two clients call the same tool at once; each upstream request is answered by its own caller only."""
    answers: dict[str, str] = {}

    async def client(label: str) -> None:
        async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
            await anyio.sleep(0.05)
            return types.CreateMessageResult(role="assistant", model=label,
                                             content=types.TextContent(type="text", text=f"from {label}"))

        async with mcp_client(url(warden), SECRET, sampling_callback=sample) as session:
            result = await session.call_tool("demo__ask_model", {"question": "who are you?"})
            answers[label] = result.content[0].text  # type: ignore[union-attr]

    async with anyio.create_task_group() as group:
        for label in ("alice", "bob", "carol"):
            group.start_soon(client, label)
    assert answers == {"alice": "from alice", "bob": "from bob", "carol": "from carol"}


async def test_a_request_id_reused_while_in_flight_is_refused_not_left_hanging(warden: WardenProcess) -> None:
    headers = raw_session(warden)
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "demo__countdown", "arguments": {"steps": 4}}}
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=10) as http:
        async def post() -> None:
            statuses.append((await http.post(url(warden), json=call, headers=headers)).status_code)

        async with anyio.create_task_group() as group:
            group.start_soon(post)
            await anyio.sleep(0.1)
            group.start_soon(post)
        again = await http.post(url(warden), json=call, headers=headers)  # free again once answered
    assert sorted(statuses) == [200, 409]
    assert again.status_code == 200 and '"done"' in again.text


async def test_requests_refused_before_any_call_are_audited_too(warden: WardenProcess) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "demo__countdown"}}
    async with httpx.AsyncClient() as client:
        for request_id, headers in (("no-key", {}), ("bad-key", {"authorization": "Bearer wdn_" + "q" * 43}),
                                    ("foreign", {"authorization": f"Bearer {SECRET}", "origin": "http://evil.example"})):
            sent = {**HEADERS, **headers, "x-request-id": request_id}
            answer = await client.post(url(warden), json=call, headers=sent)
            assert answer.status_code in (401, 403)
    async with httpx.AsyncClient(base_url=warden.console, headers={"authorization": f"Bearer {OPS}"}) as ops:
        async def refused() -> dict[str, dict[str, Any]]:
            items = (await ops.get("/api/audit/events", params={"surface": "mcp", "outcome": "refused"})).json()
            return {e["request_id"]: e for e in items["items"]}

        async def all_three() -> bool:
            return {"no-key", "bad-key", "foreign"} <= (await refused()).keys()

        assert await eventually(all_three)
        events = await refused()
    assert events["no-key"]["error_code"] == 401 and events["no-key"]["action"] == "tools/call:demo__countdown"
    assert events["bad-key"]["user_id"] is None and events["foreign"]["error_code"] == 403
    assert events["foreign"]["detail"]["code"] == "origin_not_allowed"
