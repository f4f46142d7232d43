"""The OTLP audit channel: requests exported as OpenTelemetry spans with the GenAI semantic conventions, to a real
OTLP/HTTP receiver; one trace from the client through Warden to the upstream, across ``/v1`` and ``/mcp``;
retried while the collector fails, not retried when it refuses the payload (400), rejected spans counted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import openai
import pytest

from broker.kernel.audit.channels.otlp import OtlpChannel
from broker.kernel.audit.events import AuditEvent
from broker.kernel.audit.spool import AuditSpool
from tests.ai.fake_providers import launched
from tests.interaction.process import WardenProcess, served
from tests.kernel.audit.otlp_collector import Collector, collector
from tests.kernel.audit.test_forwarding import forward
from tests.mcp.conftest import mcp_client, served_plain_upstream

__all__ = ["collector"]  # the fixture
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
KEY = "wdn_" + "o" * 43


def ai_event(**changes: object) -> AuditEvent:
    values: dict[str, object] = dict(
        id=uuid.uuid4().hex, at=1_800_000_000.5, trace_id=TRACE, surface="ai", user_id="u1", team_id="t1",
        api_key_id="k1", target="provider:claude-main", action="chat.completions:sonnet", outcome="ok",
        error_code=None, duration_ms=250.0, request_id="run-1/turn-2", client_ip="10.0.0.7", user_agent="agent/1",
        span_id="a1a2a3a4a5a6a7a8", parent_span_id=CLIENT_SPAN,
        detail={"model": "sonnet", "requested_model": "sonnet", "upstream_model": "claude-sonnet-4-5",
                "provider": "claude-main", "provider_type": "anthropic", "routing": "registered model, peer by weight",
                "fallbacks": ["bedrock-east"], "ttft_ms": 120.5, "input_tokens": 21, "output_tokens": 6,
                "weighted_tokens": 27.0, "usd": 0.00012, "status": 200, "usage_estimated": False})
    values.update(changes)
    return AuditEvent(**values)  # type: ignore[arg-type]


def mcp_event(**changes: object) -> AuditEvent:
    values: dict[str, object] = dict(
        id=uuid.uuid4().hex, at=1_800_000_001.0, trace_id=TRACE, surface="mcp", user_id="u1", team_id=None,
        api_key_id="k1", target="mcp_server:github", action="tools/call:github__create_issue", outcome="tool_error",
        error_code=None, duration_ms=80.0, span_id="b1b2b3b4b5b6b7b8", parent_span_id=CLIENT_SPAN,
        detail={"tool": "github__create_issue", "progress_events": 3, "account": "work"})
    values.update(changes)
    return AuditEvent(**values)  # type: ignore[arg-type]


async def test_requests_become_spans_with_the_genai_conventions(tmp_path: Path, collector: Collector) -> None:
    spool = AuditSpool(tmp_path, 1 << 20, ["traces"])
    admin = ai_event(surface="admin", action="PUT /api/settings/audit", target="console:/api/settings/audit")
    for item in (ai_event(), mcp_event(), admin, ai_event(action="embeddings:small", span_id=None,
                                                          parent_span_id=None, outcome="error", error_code=502,
                                                          detail={"provider": "vllm",
                                                                  "provider_type": "openai_compatible",
                                                                  "requested_model": "small"})):
        spool.append(item)
    channel = OtlpChannel("traces", collector.url, {"authorization": "Bearer collector-token"}, "warden-test", "1.2")

    async def exported() -> bool:
        return spool.forwarded("traces") == spool.position

    await forward(spool, channel, exported)
    chat, tool, embeddings = collector.spans  # the admin trail is not request telemetry: not exported
    assert chat["resource"] == {"service.name": "warden-test", "service.version": "1.2"}
    assert chat["scope"] == "warden.audit"
    assert (chat["trace_id"], chat["span_id"], chat["parent_span_id"]) == (TRACE, "a1a2a3a4a5a6a7a8", CLIENT_SPAN)
    assert chat["name"] == "chat sonnet" and chat["kind"] == 2  # SPAN_KIND_SERVER
    assert (chat["start"], chat["end"]) == (1_800_000_000_500_000_000, 1_800_000_000_750_000_000)
    assert chat["status"] == 0  # unset: a success
    assert chat["attributes"] == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "sonnet",
        "gen_ai.response.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 21,
        "gen_ai.usage.output_tokens": 6, "http.response.status_code": 200, "warden.api": "chat.completions",
        "warden.provider": "claude-main", "warden.routing": "registered model, peer by weight",
        "warden.fallbacks": ["bedrock-east"], "warden.ttft_ms": 120.5, "warden.cost.usd": 0.00012,
        "warden.tokens.weighted": 27.0, "user.id": "u1", "warden.team.id": "t1", "warden.api_key.id": "k1",
        "warden.outcome": "ok", "warden.audit.event_id": chat["attributes"]["warden.audit.event_id"],
        "warden.request_id": "run-1/turn-2", "client.address": "10.0.0.7", "user_agent.original": "agent/1"}

    assert tool["name"] == "execute_tool github__create_issue" and tool["parent_span_id"] == CLIENT_SPAN
    assert {k: tool["attributes"].get(k) for k in ("gen_ai.operation.name", "gen_ai.tool.name", "mcp.method.name",
                                                   "warden.mcp.server", "warden.mcp.progress_events",
                                                   "warden.mcp.account", "error.type")} == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "github__create_issue",
        "mcp.method.name": "tools/call", "warden.mcp.server": "github", "warden.mcp.progress_events": 3,
        "warden.mcp.account": "work", "error.type": "tool_error"}
    assert tool["status"] == 2 and tool["status_message"] == "tool_error"  # STATUS_CODE_ERROR
    assert "warden.team.id" not in tool["attributes"]  # absent, not empty

    # An OpenAI-compatible endpoint is named by its provider name; a span id is derived for older events.
    assert embeddings["name"] == "embeddings small"
    assert embeddings["attributes"]["gen_ai.provider.name"] == "vllm"
    assert embeddings["attributes"]["error.type"] == "502" and embeddings["status"] == 2
    assert len(embeddings["span_id"]) == 16 and embeddings["parent_span_id"] == ""


async def test_a_failing_collector_is_retried_and_a_refused_payload_is_not(tmp_path: Path,
                                                                           collector: Collector) -> None:
    spool = AuditSpool(tmp_path, 1 << 20, ["traces"])
    channel = OtlpChannel("traces", collector.url)

    async def exported() -> bool:
        return spool.forwarded("traces") == spool.position

    collector.statuses = [503, 502]  # down for two attempts: the same spans are sent again
    spool.append(ai_event(request_id="first"))
    metrics = await forward(spool, channel, exported)
    assert [s["attributes"]["warden.request_id"] for s in collector.spans] == ["first"]
    assert metrics.failures.labels("traces")._value.get() == 2

    collector.statuses = [400]  # malformed, says the collector: OTLP forbids sending it again
    spool.append(ai_event(request_id="refused"))
    requests = collector.requests
    metrics = await forward(spool, channel, exported)
    await anyio.sleep(0.5)
    assert collector.requests == requests + 1
    assert metrics.lost.labels("traces")._value.get() == 1
    assert metrics.delivered.labels("traces")._value.get() == 0

    collector.reject = 1  # a partial success: one of the two spans rejected
    spool.append(ai_event(request_id="second"))
    spool.append(ai_event(request_id="third"))
    metrics = await forward(spool, channel, exported)
    assert [s["attributes"]["warden.request_id"] for s in collector.spans] == ["first", "second", "third"]
    assert metrics.lost.labels("traces")._value.get() == 1
    assert metrics.delivered.labels("traces")._value.get() == 1


@pytest.fixture
def upstreams() -> Iterator[tuple[str, str]]:
    with launched() as provider, served_plain_upstream() as mcp:
        yield provider, mcp


async def test_one_trace_runs_from_the_client_through_warden_to_the_upstreams_on_both_surfaces(
        tmp_path: Path, collector: Collector, upstreams: tuple[str, str]) -> None:
    provider, mcp = upstreams
    config = {
        "providers": [{"name": "fake", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"}],
        "mcp_servers": [{"name": "plain", "transport": "streamable_http", "url": mcp, "timeout_seconds": 5}],
        "api_keys": [{"name": "agent", "owner": "ada@example.com", "secret": KEY, "surfaces": ["ai", "mcp"]}],
        "audit": {"forward": [{"kind": "otlp", "name": "traces", "url": collector.url}]},
    }
    traceparent = f"00-{TRACE}-{CLIENT_SPAN}-01"
    with served(tmp_path, config) as warden:
        await _agent_turn(warden, traceparent)
        assert await anyio.to_thread.run_sync(collector.wait_for, 2), collector.spans
    chat = next(s for s in collector.spans if s["attributes"].get("gen_ai.operation.name") == "chat")
    tool = next(s for s in collector.spans if s["attributes"].get("gen_ai.operation.name") == "execute_tool")
    assert chat["trace_id"] == tool["trace_id"] == TRACE
    assert chat["parent_span_id"] == tool["parent_span_id"] == CLIENT_SPAN and chat["span_id"] != tool["span_id"]
    assert chat["name"] == "chat gpt-4o-mini" and chat["attributes"]["gen_ai.provider.name"] == "openai"
    assert chat["attributes"]["gen_ai.usage.input_tokens"] > 0
    assert tool["name"] == "execute_tool plain__echo" and tool["attributes"]["warden.mcp.server"] == "plain"
    # The provider's request is a child of Warden's span for the LLM turn.
    async with httpx.AsyncClient() as plain:
        sent = (await plain.get(provider + "/record")).json()["traceparents"][-1]
    assert sent == f"00-{TRACE}-{chat['span_id']}-01"
    assert chat["start"] < chat["end"] and chat["end"] - chat["start"] < 30 * 10**9


async def _agent_turn(warden: WardenProcess, traceparent: str) -> None:
    """An agent run's LLM turn (the OpenAI SDK) and its tool call (the MCP SDK, the trace in ``_meta``)."""
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0,
                                  default_headers={"traceparent": traceparent}) as sdk:
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    async with mcp_client(warden.gateway + "/mcp", KEY) as session:
        await session.call_tool("plain__echo", {"text": "x"},
                                meta={"traceparent": traceparent})  # type: ignore[typeddict-unknown-key]
