"""Audit events exported as OpenTelemetry trace spans, over OTLP/HTTP in protobuf (``POST .../v1/traces``).

Each request on the gateway (an LLM call on ``/v1``, a tool call or a refused request on ``/mcp``) becomes one
span: in the trace the client's ``traceparent`` named (or the one Warden started), a child of the client's span,
and the parent of the spans of the requests Warden made upstream on its behalf (they carry this span's id in
their ``traceparent``). Attributes follow the OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``
``chat``/``embeddings``/``execute_tool``, ``gen_ai.provider.name``, request and response model, token usage,
``gen_ai.tool.name``), with Warden's own under ``warden.*`` (cost, routing decision, team, API key, outcome).
Admin trail and quota alert events are not request telemetry and are not exported.

Spans are built from the audit spool, not on the request path: exporting costs the request nothing, survives
restarts, and a collector that is down only makes the channel fall behind. As OTLP asks, an answer of 400 (the
collector refused the payload as malformed) is not retried: those spans are counted as lost for this channel
(the audit store has the events); any other failure is retried. Spans a collector reports as rejected in a
partial success are counted as lost too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from broker.kernel.audit.forwarder import Undeliverable

log = logging.getLogger(__name__)

# Warden's provider types by the names the GenAI conventions give those providers; an OpenAI-compatible endpoint
# (vLLM, Ollama...) is named by its provider name in Warden, the best knowledge there is of what serves it.
_PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "bedrock": "aws.bedrock",
                   "azure_openai": "azure.ai.openai"}
_FAILED = {"error", "refused", "tool_error"}


class OtlpRefused(Exception):
    """The collector answered with something other than 2xx (retried)."""


class OtlpChannel:
    wants_bodies = False

    def __init__(self, name: str, url: str, headers: Mapping[str, str] | None = None, service_name: str = "warden",
                 service_version: str = "", timeout: float = 10.0) -> None:
        self.name = name
        self._url = url
        self._headers = {**(headers or {}), "content-type": "application/x-protobuf"}
        self._resource = Resource(attributes=_attributes({"service.name": service_name,
                                                          "service.version": service_version or None}))
        self._scope = InstrumentationScope(name="warden.audit", version=service_version)
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def deliver(self, events: Sequence[dict[str, Any]]) -> None:
        spans = [span for event in events if (span := event_span(event)) is not None]
        if not spans:
            return
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource=self._resource, scope_spans=[ScopeSpans(scope=self._scope, spans=spans)])])
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        response = await self._client.post(self._url, content=request.SerializeToString(), headers=self._headers)
        if response.status_code == 400:
            raise Undeliverable(len(spans), f"{self._url} refused {len(spans)} span(s) as malformed (HTTP 400):"
                                             f" {response.text[:200]}")
        if response.status_code >= 300:
            raise OtlpRefused(f"{self._url} answered HTTP {response.status_code}")
        rejected = _rejected_spans(response)
        if rejected:
            raise Undeliverable(rejected, f"{self._url} rejected {rejected} of {len(spans)} span(s)")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def event_span(event: Mapping[str, Any]) -> Span | None:
    """The span of one audit event (as spooled), or None for events that are not requests on the gateway."""
    surface = event["surface"]
    if surface not in ("ai", "mcp"):
        return None
    detail = event.get("detail") or {}
    start = int(event["at"] * 1e9)
    name, attributes = _ai(event, detail) if surface == "ai" else _mcp(event, detail)
    outcome = event["outcome"]
    if outcome in _FAILED:
        attributes["error.type"] = str(event["error_code"]) if event.get("error_code") is not None else outcome
    attributes.update({
        "user.id": event.get("user_id"), "warden.team.id": event.get("team_id"),
        "warden.api_key.id": event.get("api_key_id"), "warden.outcome": outcome,
        "warden.audit.event_id": event["id"], "warden.request_id": event.get("request_id"),
        "client.address": event.get("client_ip"), "user_agent.original": event.get("user_agent"),
    })
    parent = event.get("parent_span_id")
    return Span(
        trace_id=_id(event["trace_id"], 16) or bytes.fromhex(event["id"]),
        # Events spooled before spans had ids: one derived from the event's id (unique in its trace too).
        span_id=_id(event.get("span_id"), 8) or bytes.fromhex(event["id"][-16:]),
        parent_span_id=_id(parent, 8) or b"",
        name=name, kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start,
        end_time_unix_nano=start + int(event["duration_ms"] * 1e6),
        attributes=_attributes(attributes),
        status=Status(code=Status.STATUS_CODE_ERROR, message=attributes["error.type"]) if outcome in _FAILED
        else Status(code=Status.STATUS_CODE_UNSET),
    )


def _ai(event: Mapping[str, Any], detail: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    action = event["action"].split(":", 1)[0]
    operation = {"embeddings": "embeddings", "models.list": "models.list"}.get(action, "chat")
    model = detail.get("requested_model") or detail.get("model")
    provider_type = detail.get("provider_type")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": _PROVIDER_NAMES.get(provider_type or "", detail.get("provider")),
        "gen_ai.request.model": model, "gen_ai.response.model": detail.get("upstream_model"),
        "gen_ai.usage.input_tokens": detail.get("input_tokens"),
        "gen_ai.usage.output_tokens": detail.get("output_tokens"),
        "http.response.status_code": detail.get("status"),
        "warden.api": action, "warden.provider": detail.get("provider"), "warden.routing": detail.get("routing"),
        "warden.fallbacks": [str(f) for f in detail.get("fallbacks") or []] or None,
        "warden.ttft_ms": detail.get("ttft_ms"), "warden.cost.usd": detail.get("usd"),
        "warden.tokens.weighted": detail.get("weighted_tokens"),
    }
    return (f"{operation} {model}" if model else operation), attributes


def _mcp(event: Mapping[str, Any], detail: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    method, _, tool = event["action"].partition(":")
    server = event["target"].removeprefix("mcp_server:")
    attributes: dict[str, Any] = {"mcp.method.name": method, "warden.mcp.server": None if server == "-" else server}
    if method == "tools/call":
        attributes.update({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                           "warden.mcp.progress_events": detail.get("progress_events"),
                           "warden.mcp.account": detail.get("account")})
        return f"execute_tool {tool}", attributes
    return method, attributes


def _id(value: Any, size: int) -> bytes | None:
    """A W3C trace (16 bytes) or span (8 bytes) id from its hex form; None when it is not one."""
    if not isinstance(value, str) or len(value) != size * 2:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if any(raw) else None


def _attributes(values: Mapping[str, Any]) -> list[KeyValue]:
    """OTLP key-values; None values are left out (an attribute is absent rather than empty)."""
    return [KeyValue(key=key, value=_value(value)) for key, value in values.items() if value is not None]


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_value(item) for item in value]))
    return AnyValue(string_value=str(value))


def _rejected_spans(response: httpx.Response) -> int:
    if not response.content:
        return 0
    answer = ExportTraceServiceResponse()
    try:
        answer.ParseFromString(response.content)
    except Exception:  # a collector answering 2xx with something else: delivered all the same
        return 0
    if answer.partial_success.rejected_spans:
        log.warning("OTLP partial success: %s", answer.partial_success.error_message)
    return answer.partial_success.rejected_spans
