"""Two ``warden serve`` instances sharing PostgreSQL and Redis, with no sticky routing: every HTTP request of
one MCP client goes to the other instance than the one before, and the session, its progress streams,
a resumed stream and an upstream's request to the client all keep working."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import REDIS_URL, eventually
from tests.connections.conftest import console_session, first_admin
from tests.interaction.process import WardenProcess, base_env, shared_secrets
from tests.mcp.conftest import mcp_client, stdio_server

SECRET = "wdn_" + "I" * 43
OTHER = "wdn_" + "J" * 43


@pytest.fixture
def instances(tmp_path: Path, postgres_url: str, http_upstream: str) -> Iterator[tuple[WardenProcess, WardenProcess]]:
    config = tmp_path / "warden.yaml"
    config.write_text(yaml.safe_dump({
        "mcp_servers": [{"name": "web", "transport": "streamable_http", "url": http_upstream}, stdio_server("demo")],
        "api_keys": [{"name": "agent", "owner": "agent@example.com", "secret": SECRET, "surfaces": ["mcp"]},
                     {"name": "other", "owner": "other@example.com", "secret": OTHER, "surfaces": ["mcp"]}],
    }))
    secrets = shared_secrets()
    envs = [base_env(tmp_path / name, postgres_url, WARDEN_REDIS_URL=REDIS_URL, WARDEN_CONFIG=str(config),
                     WARDEN_SERVER_LOG_LEVEL="info", **secrets) for name in ("a", "b")]
    with WardenProcess(envs[0], tmp_path / "a.log") as a, WardenProcess(envs[1], tmp_path / "b.log") as b:
        yield a, b


class Alternating(httpx2.AsyncBaseTransport):
    """A load balancer without stickiness: each request goes to the instance the previous one did not.
    It can also cut the SSE response of one tool call after its first progress event, as a dropped
    connection would, so the client has to resume."""

    def __init__(self, a: WardenProcess, b: WardenProcess) -> None:
        self._ports = [int(a.env["WARDEN_SERVER_GATEWAY_PORT"]), int(b.env["WARDEN_SERVER_GATEWAY_PORT"])]
        self._inner = httpx2.AsyncHTTPTransport()
        self.sent: list[tuple[str, int, bool]] = []  # (method, instance index, resumed)
        self.posted: list[tuple[bytes, int]] = []  # (request body, instance index)
        self.steer: tuple[bytes, int] | None = None  # the next request whose body has these bytes goes there
        self.cut_call: str | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = len(self.sent) % 2
        if self.steer is not None and request.method == "POST" and self.steer[0] in request.content:
            target, self.steer = self.steer[1], None
        self.sent.append((request.method, target, "last-event-id" in request.headers))
        request.url = request.url.copy_with(port=self._ports[target])
        body = request.content if request.method == "POST" else b""
        if body:
            self.posted.append((body, target))
        response = await self._inner.handle_async_request(request)
        if self.cut_call and self.cut_call.encode() in body:
            self.cut_call = None
            return httpx2.Response(response.status_code, headers=response.headers, request=request,
                                   stream=_CutAfterFirstProgress(response))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CutAfterFirstProgress(httpx2.AsyncByteStream):
    def __init__(self, response: httpx2.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = b""
        async for chunk in self._response.aiter_raw():
            seen += chunk
            yield chunk
            if b"notifications/progress" in seen and seen.endswith((b"\n\n", b"\r\n\r\n")):
                break
        await self._response.aclose()


@asynccontextmanager
async def balanced_client(balancer: Alternating, secret: str = SECRET, **callbacks: Any
                          ) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(transport=balancer, headers={"authorization": f"Bearer {secret}"},
                                  timeout=30) as http, \
            streamable_http_client("http://127.0.0.1/mcp", http_client=http) as streams, \
            ClientSession(streams[0], streams[1], **callbacks) as session:
        await session.initialize()
        yield session


async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", model="m",
                                     content=types.TextContent(type="text", text="relayed"))


def progress_recorder() -> tuple[list[float], Any]:
    seen: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    return seen, on_progress


async def test_a_session_works_while_its_requests_alternate_between_instances(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    balancer = Alternating(*instances)
    progress, on_progress = progress_recorder()

    async with balanced_client(balancer) as session:
        names = [t.name for t in (await session.list_tools()).tools]
        echoed = [(await session.call_tool("web__echo", {"text": str(n)})).content[0].text  # type: ignore[union-attr]
                  for n in range(4)]
        await session.call_tool("web__countdown", {"steps": 3}, progress_callback=on_progress)
    assert "web__echo" in names and "demo__echo" in names
    assert echoed == ["0", "1", "2", "3"]
    assert progress == [1, 2, 3]
    posts = [target for method, target, _ in balancer.sent if method == "POST"]
    assert set(posts) == {0, 1}  # both instances served this one session


async def test_a_cut_progress_stream_resumes_on_the_other_instance(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    balancer = Alternating(*instances)
    progress, on_progress = progress_recorder()

    async with balanced_client(balancer) as session:
        balancer.cut_call = '__countdown"'
        result = await session.call_tool("web__countdown", {"steps": 6}, progress_callback=on_progress)
    assert result.content[0].text == "done"  # type: ignore[union-attr]
    assert progress == [1, 2, 3, 4, 5, 6]
    call = next(i for i, (method, _, _) in enumerate(balancer.sent) if method == "POST" and i > 2)
    resumed = [(target, i) for i, (method, target, again) in enumerate(balancer.sent) if method == "GET" and again]
    assert resumed, f"no resumption: {balancer.sent}"
    assert any(target != balancer.sent[call][1] for target, _ in resumed)


async def test_an_upstream_request_is_answered_through_the_other_instance(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    """The call waits on one instance; the client's answer to the sampling request lands on the other."""
    balancer = Alternating(*instances)

    async with balanced_client(balancer, sampling_callback=sample) as session:
        first = await session.call_tool("demo__ask_model", {"question": "q"})
        second = await session.call_tool("demo__ask_model", {"question": "q"})
    assert [first.content[0].text, second.content[0].text] == ["relayed", "relayed"]  # type: ignore[union-attr]


async def test_a_session_is_refused_to_another_key_and_ends_everywhere_on_delete(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    a, b = instances
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    async with httpx2.AsyncClient(timeout=10) as http:
        opened = await http.post(a.gateway + "/mcp", json=init,
                                 headers={**headers, "authorization": f"Bearer {SECRET}"})
        session = opened.headers["mcp-session-id"]
        mine = {**headers, "authorization": f"Bearer {SECRET}", "mcp-session-id": session}
        await http.post(b.gateway + "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                        headers=mine)
        assert (await http.post(b.gateway + "/mcp", json=ping, headers=mine)).status_code == 200
        theirs = {**mine, "authorization": f"Bearer {OTHER}"}
        assert (await http.post(b.gateway + "/mcp", json=ping, headers=theirs)).status_code == 404
        assert (await http.delete(a.gateway + "/mcp", headers=mine)).status_code == 200
        async def gone_from_b() -> bool:
            try:
                return (await http.post(b.gateway + "/mcp", json=ping, headers=mine)).status_code == 404
            except httpx2.RemoteProtocolError:  # a request in flight when the session ended is cut short
                return False

        assert await eventually(gone_from_b)
        assert (await http.post(a.gateway + "/mcp", json=ping, headers=mine)).status_code == 404


async def test_an_unknown_session_is_404_on_every_instance(instances: tuple[WardenProcess, WardenProcess]) -> None:
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25",
               "authorization": f"Bearer {SECRET}", "mcp-session-id": "0" * 32}
    async with httpx2.AsyncClient(timeout=10) as http:
        for instance in instances:
            response = await http.post(instance.gateway + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                       headers=headers)
            assert response.status_code == 404


async def test_a_sessions_log_level_and_subscriptions_hold_on_every_instance(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    """Each instance has its own upstream session for this client; what the client set through one
    instance is applied by the other too."""
    balancer = Alternating(*instances)
    levels: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        levels.append(params.level)

    async with balanced_client(balancer, logging_callback=on_log) as session:
        for _ in range(2):  # both instances open their own upstream session for this client
            await session.call_tool("demo__chatty", {})
        levels.clear()
        await session.send_request(types.SetLevelRequest(params=types.SetLevelRequestParams(level="warning")),
                                   types.EmptyResult)
        await session.send_request(types.SubscribeRequest(params=types.SubscribeRequestParams(
            uri="demo+demo://readme")), types.EmptyResult)
        touched = [(await session.call_tool("demo__touch", {"uri": "demo://readme"})).structured_content
                   for _ in range(2)]
        for _ in range(2):
            await session.call_tool("demo__chatty", {})
        await session.send_request(types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(
            uri="demo+demo://readme")), types.EmptyResult)
        withdrawn = [(await session.call_tool("demo__touch", {"uri": "demo://readme"})).structured_content
                     for _ in range(2)]
    assert levels == ["warning", "warning"]
    assert touched == [{"result": True}, {"result": True}]
    assert withdrawn == [{"result": False}, {"result": False}]  # withdrawn on both instances
    posts = [target for method, target, _ in balancer.sent if method == "POST"]
    assert set(posts) == {0, 1}


async def test_a_2026_client_retries_input_required_on_the_other_instance(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    """No session at all: the sealed requestState from one instance is honoured by the other."""
    balancer = Alternating(*instances)
    async with httpx2.AsyncClient(transport=balancer, headers={"authorization": f"Bearer {SECRET}"},
                                  timeout=30) as http, \
            streamable_http_client("http://127.0.0.1/mcp", http_client=http) as streams, \
            ClientSession(streams[0], streams[1], sampling_callback=sample) as session:
        await session.discover()
        first = await session.call_tool("demo__ask_model", {"question": "q"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.input_requests
        (key, request), = first.input_requests.items()
        answer = await sample(None, request.params)  # type: ignore[arg-type]
        asked_on = next(target for body, target in reversed(balancer.posted) if b'"tools/call"' in body)
        balancer.steer = (b'"tools/call"', 1 - asked_on)
        final = await session.call_tool("demo__ask_model", {"question": "q"}, allow_input_required=True,
                                        input_responses={key: answer}, request_state=first.request_state)
    assert isinstance(final, types.CallToolResult)
    assert final.content[0].text == "relayed"  # type: ignore[union-attr]
    calls = [target for body, target in balancer.posted if b'"tools/call"' in body]
    assert len(calls) == 2 and calls[0] != calls[1]  # asked on one instance, answered on the other


async def test_a_console_on_one_instance_watches_a_call_on_the_other_as_it_runs(
        instances: tuple[WardenProcess, WardenProcess]) -> None:
    a, b = instances
    first_admin(a, "admin@example.com")
    with console_session(a, "admin@example.com") as console:
        ticket = console.post("/api/mcp/calls/live/tickets").json()
    steps: list[tuple[float, dict[str, Any]]] = []
    returned: list[float] = []
    async with httpx.AsyncClient(timeout=30) as http, \
            http.stream("GET", a.console + ticket["url"]) as stream, anyio.create_task_group() as group:
        assert stream.status_code == 200
        lines = stream.aiter_lines()

        async def read() -> None:
            event = ""
            async for line in lines:
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "step":
                    steps.append((time.monotonic(), json.loads(line.removeprefix("data: "))))
                    if steps[-1][1]["step"]["event"] in ("ok", "error", "tool_error", "refused"):
                        return
                elif line.startswith("data: ") and event == "watching":
                    group.start_soon(call)

        async def call() -> None:
            await anyio.sleep(0.3)  # the watch reaches instance b over Redis
            async with mcp_client(b.gateway + "/mcp", SECRET) as session:
                result = await session.call_tool("demo__countdown", {"steps": 5}, progress_callback=ignore)
                returned.append(time.monotonic())
                assert not result.is_error

        with anyio.fail_after(20):
            await read()
    kinds = [step["step"]["event"] for _, step in steps]
    assert kinds == ["start", "progress", "progress", "progress", "progress", "progress", "ok"], kinds
    assert {(step["server"], step["tool"]) for _, step in steps} == {("demo", "demo__countdown")}
    assert [step["step"]["message"] for _, step in steps[1:6]] == [f"step {n}" for n in range(1, 6)]
    assert len({step["call"] for _, step in steps}) == 1 and steps[0][1]["api_key_id"]
    # As they happen: the first progress was on the console before the call returned (5 steps of 50 ms).
    assert steps[1][0] < returned[0] - 0.1


async def ignore(progress: float, total: float | None, message: str | None) -> None:
    return None
