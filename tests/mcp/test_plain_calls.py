"""Plain calls — no progress asked, a client that can be asked nothing, an upstream that declares no logging:
answered with one JSON body, and sent upstream over the direct lane (not the SDK client's machinery), with the
same results and errors as the SDK path and cancellation reaching the upstream."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.interaction.process import WardenProcess, free_port, helper, served, stop_process, wait_until
from tests.mcp.conftest import PYTHON, REPO, mcp_client
from tests.services import answers

SECRET = "wdn_" + "P" * 43
NARROW = "wdn_" + "N" * 43
MODES = ("json", "sse")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    """The plain upstream twice: answering with JSON bodies, and with SSE streams (as SDK servers do)."""
    ports = {mode: free_port() for mode in MODES}
    processes = [helper(subprocess.Popen([PYTHON, "-m", "tests.mcp.plain_upstream", str(port), mode], cwd=REPO,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                 for mode, port in ports.items()]
    try:
        assert all(wait_until(lambda p=port: answers(("127.0.0.1", p)), 20) for port in ports.values())
        yield {mode: f"http://127.0.0.1:{port}" for mode, port in ports.items()}
    finally:
        for process in processes:
            stop_process(process)


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, str], upstream_url: str
           ) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("plain")
    with served(tmp, {
        "mcp_servers": [*({"name": mode, "transport": "streamable_http", "url": url + "/mcp", "timeout_seconds": 3}
                          for mode, url in upstreams.items()),
                        {"name": "web", "transport": "streamable_http", "url": upstream_url}],
        "api_keys": [{"name": "agent", "owner": "agent@example.com", "secret": SECRET, "surfaces": ["mcp"]},
                     {"name": "narrow", "owner": "narrow@example.com", "secret": NARROW, "surfaces": ["mcp"]}],
        "mcp": {"access_rules": [{"subject": "user:narrow@example.com", "pattern": "json__echo"}]},
    }) as process:
        yield process


def seen_by(upstream: str) -> dict[str, list[str]]:
    return httpx.get(upstream + "/record").json()  # type: ignore[no-any-return]


async def never_asked(context: Any, params: Any) -> Any:
    raise AssertionError("not asked")


@pytest.mark.parametrize("mode", MODES)
async def test_plain_calls_take_the_direct_lane_with_the_sdk_paths_results(
        warden: WardenProcess, upstreams: dict[str, str], mode: str) -> None:
    url = warden.gateway + "/mcp"
    async with mcp_client(url, SECRET) as plain, mcp_client(url, SECRET, sampling_callback=never_asked) as able:
        # The lane learns a session from the SDK's first request on it after the handshake; until then the
        # SDK's session carries the call.
        await plain.call_tool(f"{mode}__echo", {"text": "first"})
        before = len(seen_by(upstreams[mode])["ids"])
        for tool, arguments in (("echo", {"text": "same"}), ("weather", {}), ("picture", {}), ("fail", {})):
            direct = await plain.call_tool(f"{mode}__{tool}", arguments)
            through_sdk = await able.call_tool(f"{mode}__{tool}", arguments)
            assert direct.model_dump(exclude={"meta"}) == through_sdk.model_dump(exclude={"meta"}), tool
    ids = seen_by(upstreams[mode])["ids"][before:]
    # Each tool once per client: the plain client's calls came over the lane (its ids), the other's through
    # the SDK's session (integer ids), since a client that may be asked to sample needs the SDK's back-channel.
    assert sorted(i.startswith("warden-") for i in ids) == [False] * 4 + [True] * 4, ids


@pytest.mark.parametrize("mode", MODES)
async def test_errors_are_the_same_on_both_lanes(warden: WardenProcess, mode: str) -> None:
    url = warden.gateway + "/mcp"
    outcomes: list[tuple[int, str]] = []
    async with mcp_client(url, SECRET) as plain, mcp_client(url, SECRET, sampling_callback=never_asked) as able:
        for session in (plain, able):
            for tool in ("refuse", "bad_weather"):
                with pytest.raises(MCPError) as raised:
                    await session.call_tool(f"{mode}__{tool}", {})
                outcomes.append((raised.value.error.code, raised.value.error.message))
    assert outcomes[:2] == outcomes[2:]
    assert outcomes[0] == (types.INVALID_PARAMS, "refuse refuses")
    assert "structured content" in outcomes[1][1]


@pytest.mark.parametrize("mode", MODES)
async def test_a_cancelled_call_is_cancelled_upstream(warden: WardenProcess, upstreams: dict[str, str],
                                                      mode: str) -> None:
    async with mcp_client(warden.gateway + "/mcp", SECRET) as session:
        await session.call_tool(f"{mode}__echo", {"text": "first"})  # the lane learns the session
        with anyio.move_on_after(0.5):
            await session.call_tool(f"{mode}__sleep", {"seconds": 2.5})

        for _ in range(50):
            record = seen_by(upstreams[mode])
            if record["ids"][-1] in record["cancelled"]:
                break
            await anyio.sleep(0.1)
    assert record["ids"][-1] in record["cancelled"] and record["ids"][-1].startswith("warden-")


async def test_a_hanging_call_times_out_within_the_bound(warden: WardenProcess) -> None:
    async with mcp_client(warden.gateway + "/mcp", SECRET) as session:
        await session.call_tool("json__echo", {"text": "first"})  # the lane learns the session
        started = anyio.current_time()
        with pytest.raises(MCPError) as raised:
            await session.call_tool("json__sleep", {"seconds": 10})
    assert raised.value.error.code == -32002 and anyio.current_time() - started < 5


def open_raw(warden: WardenProcess, capabilities: dict[str, Any]) -> dict[str, str]:
    headers = {"authorization": f"Bearer {SECRET}", "accept": "application/json, text/event-stream"}
    init = httpx.post(warden.gateway + "/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": capabilities,
            "clientInfo": {"name": "t", "version": "1"}}})
    headers.update({"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"})
    httpx.post(warden.gateway + "/mcp", headers=headers,
               json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return headers


def reply_type(warden: WardenProcess, headers: dict[str, str], request: dict[str, Any]) -> str:
    response = httpx.post(warden.gateway + "/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 7, **request})
    assert response.status_code == 200 and '"result"' in response.text
    return response.headers["content-type"].split(";")[0]


def test_a_reply_is_one_json_body_only_when_nothing_else_can_be_sent(warden: WardenProcess) -> None:
    plain, able = open_raw(warden, {}), open_raw(warden, {"sampling": {}})
    echo = {"method": "tools/call", "params": {"name": "json__echo", "arguments": {"text": "x"}}}
    with_progress = {"method": "tools/call", "params": {"name": "json__echo", "arguments": {"text": "x"},
                                                        "_meta": {"progressToken": "p"}}}
    logging_upstream = {"method": "tools/call", "params": {"name": "web__echo", "arguments": {"text": "x"}}}
    assert reply_type(warden, plain, echo) == "application/json"
    assert reply_type(warden, plain, {"method": "tools/list"}) == "application/json"
    assert reply_type(warden, plain, with_progress) == "text/event-stream"
    assert reply_type(warden, plain, logging_upstream) == "text/event-stream"  # its log lines ride the stream
    assert reply_type(warden, able, echo) == "text/event-stream"  # the upstream might ask it something


def modern_call(warden: WardenProcess, secret: str, tool: str, arguments: dict[str, Any],
                headers: dict[str, str]) -> httpx.Response:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}
    return httpx.post(warden.gateway + "/mcp", headers={
        "authorization": f"Bearer {secret}", "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool, **headers,
    }, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": tool, "arguments": arguments, "_meta": meta}})


def test_mcp_param_headers_of_a_2026_07_28_call_are_checked_against_the_callers_schema(
        warden: WardenProcess) -> None:
    agreeing = modern_call(warden, SECRET, "json__region", {"region": "eu"}, {"mcp-param-region": "eu"})
    disagreeing = modern_call(warden, SECRET, "json__region", {"region": "eu"}, {"mcp-param-region": "us"})
    hidden = modern_call(warden, NARROW, "json__region", {"region": "eu"}, {"mcp-param-region": "us"})
    assert agreeing.status_code == 200 and agreeing.json()["result"]["content"][0]["text"] == "eu"
    assert disagreeing.status_code == 400 and "Mcp-Param-Region" in disagreeing.json()["error"]["message"]
    # A tool the caller may not use has no schema for it: the answer is the unknown tool, not a header check.
    error = hidden.json()["error"]
    assert error["code"] == types.INVALID_PARAMS and "json__region" in error["message"]
