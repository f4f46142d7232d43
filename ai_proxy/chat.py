"""The completion surfaces on OpenAI-format providers (OpenAI and OpenAI-compatible endpoints):
``POST /v1/chat/completions`` (OpenAI Chat Completions) and ``POST /v1/embeddings``, passed through, and
``POST /v1/messages`` (Anthropic Messages, converted both ways by ``anthropic_format``).

The pipeline every request goes through: authenticate the key for the ``ai`` surface, check the model against
its ``allowed_models``, admit it by the quota kernel, call the provider, charge what it used (raw and weighted
tokens, USD from the model's prices), and leave one audit event. The body goes upstream as the client sent
it unless Warden must change it; a stream is passed through event by event as it arrives, with usage asked
of the provider (``stream_options.include_usage``) and its extra chunk dropped when the client did not ask
for it. A client that goes away cancels the upstream request, and what was used so far is still recorded.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ai_proxy import anthropic_format, responses_format
from ai_proxy.chat_usage import tokens
from ai_proxy.errors import ProxyError, from_warden, openai_error
from ai_proxy.ratelimit_headers import ratelimit_headers
from ai_proxy.routing import ModelRouter, Provider, Route, UnknownModel
from broker.edge.credentials import presented_key
from broker.kernel.audit.events import AuditEvent
from broker.kernel.audit.ports import AuditSink
from broker.kernel.breaker import CircuitBreaker
from broker.kernel.clock import Clock
from broker.kernel.errors import WardenError
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from broker.kernel.quota.accounting import TokenAccounting
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.models import QuotaRequest, Usage
from broker.kernel.quota.subjects import subjects_for
from broker.outbound import Outbound, OutboundRefused

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 20 * 1024 * 1024
ATTEMPTS = 2  # per peer, before failing over to the next
BACKOFF = 0.1  # seconds before the first retry, doubled for each further one, plus up to as much jitter
CONNECT_TIMEOUT = 10.0  # the connection to a provider opens within this; the answer within its timeout_seconds
_CARRIES_USAGE = re.compile(rb'"usage"\s*:\s*\{')  # a chunk with usage (not the "usage": null of the others)
OPENAI_FORMAT = frozenset({"openai", "openai_compatible"})  # providers that take Chat Completions as they are


@dataclass(frozen=True, slots=True)
class Surface:
    """One client-facing API on the shared pipeline: how its requests are checked and converted to Chat
    Completions, how answers and streams are converted back, and how errors look. ``to_openai`` None means the
    body goes upstream as it is; ``answer``/``stream`` None means the provider's answer is passed on."""

    action: str
    check: Callable[[dict[str, Any]], None]
    error: Callable[[ProxyError], Response]
    stream_error: Callable[[ProxyError], bytes]  # the event that tells a client its stream failed midway
    to_openai: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    answer: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    stream: Callable[[AsyncIterator[dict[str, Any]], str], AsyncIterator[bytes]] | None = None
    path: str = "/chat/completions"  # the provider endpoint (below its base URL)
    streams: bool = True  # whether "stream": true means anything on this surface


def _check_chat(body: dict[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ProxyError(400, "invalid_request_error", "'model' is required (a string)", param="model")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise ProxyError(400, "invalid_request_error", "'messages' is required (a non-empty array)",
                         param="messages")


def _anthropic_error(error: ProxyError) -> Response:
    headers = {"retry-after": str(error.retry_after)} if error.retry_after is not None else None
    return JSONResponse(anthropic_format.error_body(error), error.status, headers=headers)


def _openai_stream_error(error: ProxyError) -> bytes:
    # The openai SDKs raise on a stream event that carries an "error" object.
    body = {"error": {"message": error.message, "type": error.kind, "param": None, "code": error.code}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _check_embeddings(body: dict[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ProxyError(400, "invalid_request_error", "'model' is required (a string)", param="model")
    if not isinstance(body.get("input"), str | list) or not body["input"]:
        raise ProxyError(400, "invalid_request_error", "'input' is required (a string or an array)", param="input")


OPENAI_CHAT = Surface("chat.completions", _check_chat, openai_error, _openai_stream_error)
OPENAI_RESPONSES = Surface("responses", responses_format.check, openai_error, responses_format.stream_error,
                           responses_format.to_openai, responses_format.from_openai,
                           responses_format.stream_from_openai)
OPENAI_EMBEDDINGS = Surface("embeddings", _check_embeddings, openai_error, _openai_stream_error,
                            path="/embeddings", streams=False)
ANTHROPIC_MESSAGES = Surface("messages", anthropic_format.check, _anthropic_error, anthropic_format.stream_error,
                             anthropic_format.to_openai, anthropic_format.from_openai,
                             anthropic_format.stream_from_openai)


@dataclass
class _Call:
    """What one request did, for accounting and audit."""

    principal: Principal
    model: str
    surface: Surface
    route: Route | None = None
    provider: Provider | None = None  # the peer that answered (the route's choice, or a fallback)
    fallbacks: list[str] = field(default_factory=list)  # peers tried before, and why they were passed over
    started: float = field(default_factory=time.monotonic)
    first_byte: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    status: int = 200
    outcome: str = "ok"


class ChatCompletions:
    def __init__(self, identity: Identity, quotas: QuotaEngine, router: ModelRouter, accounting: TokenAccounting,
                 audit: AuditSink, outbound: Outbound, clock: Clock) -> None:
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}  # per provider, on this instance
        self._identity = identity
        self._quotas = quotas
        self._router = router
        self._accounting = accounting
        self._audit = audit
        self._outbound = outbound
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _session(self) -> aiohttp.ClientSession:
        # One keep-alive pool for all providers, opened on first use (inside the serving event loop).
        if self._http is None:
            self._http = self._outbound.session(limit=1000, timeout=None, auto_decompress=True)
        return self._http

    async def chat_completions(self, request: Request) -> Response:
        return await self._serve(request, OPENAI_CHAT)

    async def messages(self, request: Request) -> Response:
        return await self._serve(request, ANTHROPIC_MESSAGES)

    async def responses(self, request: Request) -> Response:
        return await self._serve(request, OPENAI_RESPONSES)

    async def embeddings(self, request: Request) -> Response:
        return await self._serve(request, OPENAI_EMBEDDINGS)

    async def _serve(self, request: Request, surface: Surface) -> Response:
        try:
            principal = await self._identity.principal_for_key(presented_key(request, allow_x_api_key=True), "ai")
        except WardenError as exc:
            return surface.error(from_warden(exc))
        raw = await request.body()
        call = _Call(principal, "", surface)
        try:
            if len(raw) > MAX_BODY_BYTES:
                raise ProxyError(413, "invalid_request_error", f"the request body is larger than {MAX_BODY_BYTES}"
                                 " bytes")
            body = _parse(raw)
            surface.check(body)
            call.model = body["model"]
            allowed = principal.key.allowed_models if principal.key else None
            if allowed is not None and call.model not in allowed:
                raise ProxyError(403, "permission_error", f"this API key may not use the model {call.model!r}",
                                 param="model", code="model_not_allowed")
            try:
                call.route = self._router.route(call.model)
            except UnknownModel as exc:
                raise ProxyError(404, "invalid_request_error", str(exc), param="model",
                                 code="model_not_found") from exc
            if call.route.provider.type not in OPENAI_FORMAT:
                raise ProxyError(400, "invalid_request_error", f"the model {call.model!r} is served by a"
                                 f" {call.route.provider.type} provider; requests reach OpenAI-format providers"
                                 " only so far", param="model", code="format_not_supported")
            try:
                admission = await self._quotas.admit(QuotaRequest("ai", self._subjects(call)))
            except WardenError as exc:
                raise from_warden(exc) from exc
            headers = ratelimit_headers(admission)
            upstream = surface.to_openai(body) if surface.to_openai else body
            if body.get("stream") and surface.streams:
                return await self._stream(call, upstream, headers)
            payload = raw if surface.to_openai is None else json.dumps(upstream, separators=(",", ":")).encode()
            return await self._complete(call, payload, headers)
        except ProxyError as exc:
            call.status, call.outcome = exc.status, "refused" if exc.status in (401, 403, 404, 413, 429) else "error"
            await self._finish(call)
            return surface.error(exc)

    def _subjects(self, call: _Call) -> Any:
        answered = call.provider or (call.route.provider if call.route else None)
        provider = answered.name if answered else None
        return subjects_for(call.principal, provider=provider, model=call.model)

    async def _send(self, call: _Call, payload: bytes) -> aiohttp.ClientResponse:
        """The first usable answer among the route's peers, nothing having reached the client yet: each peer is
        tried (while its breaker lets it) with retries on connection errors, 429 and 5xx, exponential backoff
        with jitter, then the next peer. A 4xx other than 429 is the client's and is returned at once. When
        every peer failed: the last failure."""
        assert call.route is not None
        failure: ProxyError | aiohttp.ClientResponse | None = None
        for provider in call.route.peers:
            breaker = self._breakers.setdefault(provider.name, CircuitBreaker(self._clock))
            for attempt in range(ATTEMPTS):
                if not breaker.allow():
                    call.fallbacks.append(f"{provider.name}: circuit open")
                    break
                if attempt:
                    await anyio.sleep(BACKOFF * 2 ** (attempt - 1) + random.uniform(0, BACKOFF))  # noqa: S311
                try:
                    response = await self._post(provider, payload, call.surface.path)
                except ProxyError as exc:
                    breaker.failed()
                    call.fallbacks.append(f"{provider.name}: {exc.code}")
                    outcome: ProxyError | aiohttp.ClientResponse = exc
                else:
                    if response.status != 429 and response.status < 500:
                        breaker.succeeded()
                        if isinstance(failure, aiohttp.ClientResponse):
                            failure.release()
                        call.provider = provider
                        return response
                    if response.status >= 500:
                        breaker.failed()
                    call.fallbacks.append(f"{provider.name}: HTTP {response.status}")
                    outcome = response
                if isinstance(failure, aiohttp.ClientResponse):
                    failure.release()
                failure = outcome
        if isinstance(failure, aiohttp.ClientResponse):
            return failure
        raise failure or ProxyError(503, "api_error", f"every provider of {call.model!r} is failing; retry later",
                                    code="upstream_unavailable", retry_after=30)

    async def _post(self, provider: Provider, payload: bytes, path: str) -> aiohttp.ClientResponse:
        headers = {"content-type": "application/json"}
        if provider.api_key:
            headers["authorization"] = f"Bearer {provider.api_key}"
        try:
            return await self._session().post(
                f"{provider.base_url}{path}", data=payload, headers=headers,
                timeout=aiohttp.ClientTimeout(total=provider.timeout_seconds, sock_connect=CONNECT_TIMEOUT))
        except OutboundRefused as exc:
            raise ProxyError(502, "api_error", f"provider {provider.name}: {exc}", code="upstream_refused") from exc
        except TimeoutError as exc:
            raise ProxyError(504, "api_error", f"provider {provider.name} did not answer in time",
                             code="upstream_timeout") from exc
        except aiohttp.ClientError as exc:
            raise ProxyError(502, "api_error", f"provider {provider.name} could not be reached",
                             code="upstream_unavailable") from exc

    async def _complete(self, call: _Call, payload: bytes, headers: dict[str, str]) -> Response:
        response = await self._send(call, payload)
        if response.status != 200:
            return await self._refused_upstream(call, response, headers)
        try:
            content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProxyError(502, "api_error", "the provider's answer broke off", code="upstream_error") from exc
        finally:
            response.release()
        call.first_byte = time.monotonic()
        answer = _json_object(content)
        call.input_tokens, call.output_tokens = tokens(answer.get("usage") or {})
        await self._finish(call)
        if call.surface.answer is not None:
            content = json.dumps(call.surface.answer(answer, call.model), separators=(",", ":")).encode()
        return Response(content, 200, headers=headers, media_type="application/json")

    async def _stream(self, call: _Call, body: dict[str, Any], headers: dict[str, str]) -> Response:
        options = body.get("stream_options") or {}
        wants_usage = bool(options.get("include_usage")) and call.surface.stream is None
        # Usage is what quotas and cost are counted from: ask for it, and drop it on the way back unless asked.
        body = {**body, "stream_options": {**options, "include_usage": True}}
        response = await self._send(call, json.dumps(body, separators=(",", ":")).encode())
        if response.status != 200:
            return await self._refused_upstream(call, response, headers)

        async def chunks() -> AsyncIterator[tuple[bytes, dict[str, Any] | None]]:
            """Each provider event with its parsed chunk (None for ``[DONE]``), usage noted on the way."""
            async for event in _sse_events(response):
                if call.first_byte is None:
                    call.first_byte = time.monotonic()
                data = _data_of(event)
                if data is None or data == b"[DONE]":
                    chunk = None
                elif call.surface.stream is None and not _CARRIES_USAGE.search(data):
                    yield event, None  # passed on as it is, and nothing in it to count: not decoded
                    continue
                else:
                    chunk = _json_object(data)
                if chunk is not None and chunk.get("usage"):
                    call.input_tokens, call.output_tokens = tokens(chunk["usage"])
                    if not wants_usage and not chunk.get("choices") and call.surface.stream is None:
                        continue
                yield event, chunk

        async def passed_on() -> AsyncIterator[bytes]:
            async for event, _ in chunks():
                yield event

        async def converted() -> AsyncIterator[bytes]:
            async def parsed() -> AsyncIterator[dict[str, Any]]:
                async for _, chunk in chunks():
                    if chunk is not None:
                        yield chunk

            assert call.surface.stream is not None
            async for event in call.surface.stream(parsed(), call.model):
                yield event

        async def events() -> AsyncIterator[bytes]:
            try:
                async for event in (converted() if call.surface.stream is not None else passed_on()):
                    yield event
            except (aiohttp.ClientError, TimeoutError):
                call.outcome, call.status = "error", 502
                log.warning("provider stream for %s broke off", call.model)
                # Never retried once bytes reached the client: it is told the stream failed instead.
                yield call.surface.stream_error(ProxyError(502, "api_error", "the provider's stream broke off",
                                                           code="upstream_error"))
            except anyio.get_cancelled_exc_class():
                call.outcome = "cancelled"  # the client went away; the upstream request is dropped with it
                raise
            finally:
                response.close()
                with anyio.CancelScope(shield=True):
                    await self._finish(call)

        return StreamingResponse(events(), 200, headers={**headers, "cache-control": "no-cache"},
                                 media_type="text/event-stream")

    async def _refused_upstream(self, call: _Call, response: aiohttp.ClientResponse,
                                headers: dict[str, str]) -> Response:
        """The provider said no: its own 4xx error is passed on (in the client's format), a 5xx is 502."""
        try:
            content = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            content = b""
        finally:
            response.release()
        call.status, call.outcome = (502 if response.status >= 500 else response.status), "error"
        await self._finish(call)
        error = _json_object(content).get("error")
        if response.status < 500 and isinstance(error, dict) and call.surface.answer is None:
            return Response(content, call.status, headers=headers, media_type="application/json")
        message = str(error.get("message")) if response.status < 500 and isinstance(error, dict) \
            else f"the provider answered {response.status}"
        failure = ProxyError(call.status, "invalid_request_error" if call.status < 500 else "api_error", message,
                             param=error.get("param") if isinstance(error, dict) else None, code="upstream_error")
        answer = call.surface.error(failure)
        answer.headers.update(headers)
        return answer

    async def _finish(self, call: _Call) -> None:
        """Charge what was used and leave the audit event (both even when the client went away)."""
        usage = self._accounting.usage(call.model, call.input_tokens, call.output_tokens) if call.model \
            else Usage()
        if call.route is not None and (call.input_tokens or call.output_tokens):
            try:
                await self._quotas.charge("ai", self._subjects(call), usage)
            except WardenError as exc:  # charging must not turn a served answer into an error
                log.warning("usage of %s not charged: %s", call.model, exc)
        now = time.monotonic()
        principal = call.principal
        answered = call.provider or (call.route.provider if call.route else None)
        await self._audit.record(AuditEvent(
            id=os.urandom(16).hex(), at=time.time(), trace_id=os.urandom(16).hex(), surface="ai",
            user_id=principal.user.id if principal.user else None, team_id=principal.team_id,
            api_key_id=principal.key.id if principal.key else None,
            target=f"provider:{answered.name if answered else '-'}",
            action=f"{call.surface.action}:{call.model or '-'}", outcome=call.outcome,
            error_code=call.status if call.status != 200 else None, duration_ms=(now - call.started) * 1000,
            detail={"model": call.model, "provider": answered.name if answered else None,
                    "routing": call.route.reason if call.route else None, "fallbacks": call.fallbacks,
                    "ttft_ms": (call.first_byte - call.started) * 1000 if call.first_byte else None,
                    "input_tokens": call.input_tokens, "output_tokens": call.output_tokens,
                    "weighted_tokens": usage.weighted_tokens, "usd": usage.usd, "status": call.status}))


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ProxyError(400, "invalid_request_error", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ProxyError(400, "invalid_request_error", "the body must be a JSON object")
    return body


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The provider's SSE stream, one complete event (ending in a blank line) at a time, as it arrives."""
    pending = b""
    async for chunk in response.content.iter_any():
        pending += chunk
        while True:
            end = _event_end(pending)
            if end < 0:
                break
            yield pending[:end]
            pending = pending[end:]
    if pending.strip():
        yield pending if pending.endswith(b"\n\n") else pending.rstrip(b"\r\n") + b"\n\n"


def _event_end(buffer: bytes) -> int:
    """Where the first complete event ends (after its blank line), or -1."""
    ends = [found + len(separator) for separator in (b"\n\n", b"\r\n\r\n")
            if (found := buffer.find(separator)) >= 0]
    return min(ends) if ends else -1


def _data_of(event: bytes) -> bytes | None:
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None
