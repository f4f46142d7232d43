"""The pipeline every ``/v1`` completion request goes through, whatever API the client called and whatever
provider serves it: authenticate the key for the ``ai`` surface, check the model against its
``allowed_models``, route it, admit it by the quota kernel (with a pre-call estimate of its cost), call the
provider (retries, failover, circuit breakers), charge what it used (raw and weighted tokens, USD from the
model's prices), and leave one audit event.

When the provider speaks the client's API the body goes upstream as the client sent it, and the answer or
stream comes back as the provider sent it; otherwise the surface converts the request to Chat Completions, the
provider's dialect converts that to the provider's request, and answers and stream events are converted back
the same way, event by event as they arrive. A client that goes away cancels the upstream request, and what
was used so far is still recorded.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ai_proxy.chat_usage import tokens
from ai_proxy.errors import ProxyError, from_warden
from ai_proxy.metrics import AiMetrics
from ai_proxy.provider_http import ProviderHttp, ProviderResponse, UpstreamError
from ai_proxy.providers.base import Dialect, Outgoing, StreamFailed, json_bytes
from ai_proxy.providers.registry import DIALECTS
from ai_proxy.ratelimit_headers import ratelimit_headers
from ai_proxy.routing import ModelDisabled, ModelRouter, Provider, Route, UnknownModel
from ai_proxy.sse import json_object
from ai_proxy.surfaces import (
    ANTHROPIC_COUNT,
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
    Surface,
)
from broker.edge.credentials import presented_key
from broker.edge.request_context import RequestContext, context_of
from broker.kernel.audit.capture import BodyCapture
from broker.kernel.audit.events import with_bodies
from broker.kernel.audit.ports import AuditSink
from broker.kernel.breaker import BreakerState, CircuitBreaker
from broker.kernel.clock import Clock
from broker.kernel.errors import WardenError
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.models import Admission, QuotaRequest, Subject, Usage
from broker.kernel.quota.subjects import subjects_for
from broker.outbound import Outbound, OutboundRefused

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 20 * 1024 * 1024
ATTEMPTS = 2  # per peer, before failing over to the next
BACKOFF = 0.1  # seconds before the first retry, doubled for each further one, plus up to as much jitter
CONNECT_TIMEOUT = 10.0  # the connection to a provider opens within this; the answer within its timeout_seconds
BYTES_PER_TOKEN = 4  # the pre-call estimate's rough measure of a prompt


@dataclass
class _Call:
    """What one request did, for accounting and audit."""

    principal: Principal | None  # None until the key is authenticated
    model: str
    surface: Surface
    context: RequestContext
    route: Route | None = None
    provider: Provider | None = None  # the peer that answered (the route's choice, or a fallback)
    fallbacks: list[str] = field(default_factory=list)  # peers tried before, and why they were passed over
    started: float = field(default_factory=time.monotonic)
    first_byte: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    status: int = 200
    outcome: str = "ok"
    prompt_estimate: int = 0  # the request's size in tokens, roughly
    events_passed: int = 0  # stream events that reached the client
    subjects: tuple[str | None, tuple[Subject, ...]] | None = None  # (provider, subjects) once worked out
    requested_model: str | None = None  # as the client named it (an alias, say)
    request_body: bytes | None = None  # kept when bodies are captured
    response_body: bytes | None = None
    response_events: list[bytes] | None = None  # a stream's events, when its body is captured

    def note(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens, self.output_tokens = input_tokens, output_tokens


class ChatCompletions:
    def __init__(self, identity: Identity, quotas: QuotaEngine, router: ModelRouter, audit: AuditSink,
                 outbound: Outbound, clock: Clock, metrics: AiMetrics, capture: BodyCapture) -> None:
        self._clock = clock
        self._capture = capture
        self._metrics = metrics
        self._breakers: dict[str, CircuitBreaker] = {}  # per provider, on this instance
        self._identity = identity
        self._quotas = quotas
        self._router = router
        self._audit = audit
        self._http = ProviderHttp(outbound, CONNECT_TIMEOUT)

    async def close(self) -> None:
        await self._http.close()

    def circuit_states(self) -> dict[str, BreakerState]:
        """Each provider's breaker on this instance (providers never called yet have none)."""
        return {name: breaker.state for name, breaker in self._breakers.items()}

    async def chat_completions(self, request: Request) -> Response:
        return await self._serve(request, OPENAI_CHAT)

    async def messages(self, request: Request) -> Response:
        return await self._serve(request, ANTHROPIC_MESSAGES)

    async def responses(self, request: Request) -> Response:
        return await self._serve(request, OPENAI_RESPONSES)

    async def embeddings(self, request: Request) -> Response:
        return await self._serve(request, OPENAI_EMBEDDINGS)

    async def count_tokens(self, request: Request) -> Response:
        """``POST /v1/messages/count_tokens``: counted by the provider where it can count (Anthropic, Gemini,
        Bedrock), else estimated from the request's size. Counted as a request by the quota kernel; no tokens
        are charged."""
        call = _Call(None, "", ANTHROPIC_COUNT, context_of(request.scope))
        try:
            raw, body, admission = await self._admit(request, call)
            headers = ratelimit_headers(admission)
            assert call.route is not None
            provider = call.provider = call.route.provider
            dialect, model = DIALECTS[provider.type], call.route.model_at(provider)
            hub = {} if dialect.format == ANTHROPIC_COUNT.native else ANTHROPIC_COUNT.to_hub(body)
            outgoing = dialect.count_request(provider, hub, model) if hub \
                else dialect.native(provider, ANTHROPIC_COUNT.endpoint, body, raw, model, False)
            if outgoing is None:
                counted = len(json_bytes([hub["messages"], hub.get("tools")])) // BYTES_PER_TOKEN
            else:
                response = await self._post(provider, outgoing, call.context)
                if response.status != 200:
                    return await self._refused_upstream(call, response, headers)
                try:
                    answer = json_object(await response.read())
                except (UpstreamError, TimeoutError) as exc:
                    raise ProxyError(502, "api_error", "the provider's answer broke off",
                                     code="upstream_error") from exc
                finally:
                    response.release()
                counted = dialect.counted(answer)
            await self._finish(call)
            return JSONResponse({"input_tokens": counted}, headers=headers)
        except ProxyError as exc:
            return await self._refuse(call, exc)

    async def _serve(self, request: Request, surface: Surface) -> Response:
        call = _Call(None, "", surface, context_of(request.scope))
        try:
            raw, body, admission = await self._admit(request, call)
            stream = bool(body.get("stream")) and surface.streams
            converted: dict[str, Any] = {}

            def outgoing(provider: Provider) -> Outgoing:
                dialect, model = DIALECTS[provider.type], call.route.model_at(provider)  # type: ignore[union-attr]
                if dialect.format == surface.native:
                    return dialect.native(provider, surface.endpoint, body, raw, model, stream)
                if not surface.converts:
                    raise ProxyError(400, "invalid_request_error", f"the model {call.model!r} is served by a"
                                     f" {provider.type} provider, which does not offer this API", param="model",
                                     code="format_not_supported")
                if not converted:
                    converted.update(surface.to_hub(body))
                return dialect.convert(provider, converted, model, stream)

            response = await self._send(call, outgoing)
            headers = ratelimit_headers(admission)  # worked out once the request is on its way, not before
            if response.status != 200:
                return await self._refused_upstream(call, response, headers)
            if stream:
                return self._stream(call, response, body, headers)
            return await self._complete(call, response, body, headers)
        except ProxyError as exc:
            return await self._refuse(call, exc)

    async def _admit(self, request: Request, call: _Call) -> tuple[bytes, dict[str, Any], Admission]:
        """What every request goes through before a provider is called: the key, the body, the model (known,
        allowed, routed), the quotas. Returns the raw body, the parsed one and the quota admission."""
        try:
            call.principal = await self._identity.principal_for_key(presented_key(request, allow_x_api_key=True),
                                                                    "ai")
            self._audit.admit()
        except WardenError as exc:
            raise from_warden(exc) from exc
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise ProxyError(413, "invalid_request_error", f"the request body is larger than {MAX_BODY_BYTES} bytes")
        if self._capture.wants("request"):
            call.request_body = raw
        body = _parse(raw)
        call.surface.check(body)
        call.model = call.requested_model = body["model"]
        try:
            call.route = self._router.route(call.model)
        except UnknownModel as exc:
            self._check_allowed(call.principal, call.model)
            raise ProxyError(404, "invalid_request_error", str(exc), param="model", code="model_not_found") from exc
        except ModelDisabled as exc:
            self._check_allowed(call.principal, call.model)
            raise ProxyError(503, "api_error", str(exc), param="model", code="model_disabled") from exc
        call.model = call.route.model  # the registered name when the client used an alias
        self._check_allowed(call.principal, body["model"], call.model)
        call.prompt_estimate = len(raw) // BYTES_PER_TOKEN
        estimate = None if call.surface is ANTHROPIC_COUNT else call.route.rates_at(call.route.provider).estimate(
            call.prompt_estimate, _max_tokens(body))
        try:
            admission = await self._quotas.admit(QuotaRequest("ai", self._subjects(call), estimate))
        except WardenError as exc:
            raise from_warden(exc) from exc
        return raw, body, admission

    async def _refuse(self, call: _Call, error: ProxyError) -> Response:
        refused = error.status in (401, 403, 404, 413, 429) or error.code == "model_disabled"
        call.status, call.outcome = error.status, "refused" if refused else "error"
        if error.code != "audit_unavailable":  # that refusal's event could not be kept: counted instead
            await self._finish(call)  # refusals too, unauthenticated ones included (no user, no key)
        return call.surface.error(error)

    @staticmethod
    def _check_allowed(principal: Principal | None, *names: str) -> None:
        allowed = principal.key.allowed_models if principal and principal.key else None
        if allowed is not None and not any(name in allowed for name in names):
            raise ProxyError(403, "permission_error", f"this API key may not use the model {names[0]!r}",
                             param="model", code="model_not_allowed")

    @staticmethod
    def _subjects(call: _Call) -> tuple[Subject, ...]:
        """Who and what the call counts against (worked out again only when a fallback peer answered)."""
        assert call.principal is not None
        answered = call.provider or (call.route.provider if call.route else None)
        provider = answered.name if answered else None
        if call.subjects is None or call.subjects[0] != provider:
            call.subjects = (provider, subjects_for(call.principal, provider=provider, model=call.model))
        return call.subjects[1]

    def _dialect(self, call: _Call) -> tuple[Dialect, bool]:
        """The answering provider's dialect, and whether it spoke the client's API (nothing to convert)."""
        assert call.provider is not None
        dialect = DIALECTS[call.provider.type]
        return dialect, dialect.format == call.surface.native

    async def _send(self, call: _Call, outgoing: Callable[[Provider], Outgoing]) -> ProviderResponse:
        """The first usable answer among the route's peers, nothing having reached the client yet: each peer is
        tried (while its breaker lets it) with retries on connection errors, 429 and 5xx, exponential backoff
        with jitter, then the next peer. A 4xx other than 429 is the client's and is returned at once. When
        every peer failed: the last failure."""
        assert call.route is not None
        failure: ProxyError | ProviderResponse | None = None
        for provider in call.route.peers:
            breaker = self._breakers.get(provider.name) or self._breakers.setdefault(provider.name,
                                                                                   CircuitBreaker(self._clock))
            request = outgoing(provider)
            for attempt in range(ATTEMPTS):
                if not breaker.allow():
                    call.fallbacks.append(f"{provider.name}: circuit open")
                    break
                if attempt:
                    await anyio.sleep(BACKOFF * 2 ** (attempt - 1) + random.uniform(0, BACKOFF))  # noqa: S311
                try:
                    response = await self._post(provider, request, call.context)
                except ProxyError as exc:
                    breaker.failed()
                    call.fallbacks.append(f"{provider.name}: {exc.code}")
                    outcome: ProxyError | ProviderResponse = exc
                else:
                    if response.status != 429 and response.status < 500:
                        breaker.succeeded()
                        if isinstance(failure, ProviderResponse):
                            failure.release()
                        call.provider = provider
                        return response
                    if response.status >= 500:
                        breaker.failed()
                    call.fallbacks.append(f"{provider.name}: HTTP {response.status}")
                    call.provider = provider
                    outcome = response
                if isinstance(failure, ProviderResponse):
                    failure.release()
                failure = outcome
        if isinstance(failure, ProviderResponse):
            return failure
        raise failure or ProxyError(503, "api_error", f"every provider of {call.model!r} is failing; retry later",
                                    code="upstream_unavailable", retry_after=30)

    async def _post(self, provider: Provider, request: Outgoing, context: RequestContext) -> ProviderResponse:
        headers = {**request.headers, "traceparent": context.traceparent()}  # the provider's span of the trace
        try:
            return await self._http.post(request.url, request.body, headers, provider.timeout_seconds)
        except OutboundRefused as exc:
            raise ProxyError(502, "api_error", f"provider {provider.name}: {exc}", code="upstream_refused") from exc
        except TimeoutError as exc:
            raise ProxyError(504, "api_error", f"provider {provider.name} did not answer in time",
                             code="upstream_timeout") from exc
        except UpstreamError as exc:
            raise ProxyError(502, "api_error", f"provider {provider.name} could not be reached",
                             code="upstream_unavailable") from exc

    async def _complete(self, call: _Call, response: ProviderResponse, body: dict[str, Any],
                        headers: dict[str, str]) -> Response:
        try:
            content = await response.read()
        except (UpstreamError, TimeoutError) as exc:
            raise ProxyError(502, "api_error", "the provider's answer broke off", code="upstream_error") from exc
        finally:
            response.release()
        call.first_byte = time.monotonic()
        answer = json_object(content)
        dialect, native = self._dialect(call)
        if native:
            call.note(*dialect.native_usage(answer))
        else:
            converted = dialect.answer(answer, body["model"])
            call.note(*tokens(converted.get("usage") or {}))
            content = json_bytes(call.surface.answer(converted, body))
        if self._capture.wants("response"):
            call.response_body = content
        await self._finish(call)
        return Response(content, 200, headers=headers, media_type="application/json")

    def _stream(self, call: _Call, response: ProviderResponse, body: dict[str, Any],
                headers: dict[str, str]) -> Response:
        dialect, native = self._dialect(call)

        async def counted(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
            async for chunk in chunks:
                if chunk.get("usage"):
                    call.note(*tokens(chunk["usage"]))
                yield chunk

        async def events() -> AsyncIterator[bytes]:
            source = dialect.native_stream(response, body, call.note) if native \
                else call.surface.stream(counted(dialect.chunks(response, body["model"])), body)
            kept = call.response_events = [] if self._capture.wants("response") else None
            try:
                async for event in source:
                    if call.first_byte is None:
                        call.first_byte = time.monotonic()
                    call.events_passed += 1
                    if kept is not None:
                        kept.append(event)
                    yield event
            except (UpstreamError, TimeoutError, StreamFailed) as exc:
                call.outcome, call.status = "error", 502
                log.warning("provider stream for %s broke off: %s", call.model, exc)
                # Never retried once bytes reached the client: it is told the stream failed instead.
                message = str(exc) if isinstance(exc, StreamFailed) else "the provider's stream broke off"
                yield call.surface.stream_error(ProxyError(502, "api_error", message, code="upstream_error"))
            except anyio.get_cancelled_exc_class():
                call.outcome = "cancelled"  # the client went away; the upstream request is dropped with it
                raise
            finally:
                response.close()
                with anyio.CancelScope(shield=True):
                    await self._finish(call)

        return StreamingResponse(events(), 200, headers={**headers, "cache-control": "no-cache"},
                                 media_type="text/event-stream")

    async def _refused_upstream(self, call: _Call, response: ProviderResponse,
                                headers: dict[str, str]) -> Response:
        """The provider said no: its own 4xx error is passed on (converted to the client's format when the
        provider speaks another API), a 5xx is 502."""
        try:
            content = await response.read()
        except (UpstreamError, TimeoutError):
            content = b""
        finally:
            response.release()
        call.status, call.outcome = (502 if response.status >= 500 else response.status), "error"
        if self._capture.wants("response"):
            call.response_body = content
        await self._finish(call)
        dialect, native = self._dialect(call)
        answer = json_object(content)
        said = dialect.error_message(answer) if response.status < 500 else None
        if said is not None and native:
            return Response(content, call.status, headers=headers, media_type="application/json")
        error = answer.get("error")
        error = error if isinstance(error, dict) else {}
        failure = ProxyError(call.status, "invalid_request_error" if call.status < 500 else "api_error",
                             said or f"the provider answered {response.status}", param=error.get("param"),
                             code="upstream_error")
        refusal = call.surface.error(failure)
        refusal.headers.update(headers)
        return refusal

    async def _finish(self, call: _Call) -> None:
        """Charge what was used and leave the audit event (both even when the client went away)."""
        estimated = call.events_passed > 0 and not (call.input_tokens or call.output_tokens)
        if estimated:
            # The stream ended before the provider reported usage (the client went away, or the provider broke
            # off): the prompt by its size, the output at a token an event (providers stream about one).
            call.input_tokens, call.output_tokens = call.prompt_estimate, call.events_passed
        answered = call.provider or (call.route.provider if call.route else None)
        usage = call.route.rates_at(answered).usage(call.input_tokens, call.output_tokens) \
            if call.route is not None and answered is not None else Usage()
        ttft = call.first_byte - call.started if call.first_byte is not None else None
        if call.status == 200 and answered is not None and ttft is not None:
            self._router.observe(answered.name, call.model, ttft)
        if answered is not None:
            self._metrics.record(answered.name, call.model, ttft, call.input_tokens, call.output_tokens, usage.usd)
        if call.route is not None and (call.input_tokens or call.output_tokens):
            try:
                await self._quotas.charge("ai", self._subjects(call), usage)
            except WardenError as exc:  # charging must not turn a served answer into an error
                log.warning("usage of %s not charged: %s", call.model, exc)
        now = time.monotonic()
        principal, context = call.principal, call.context
        if call.response_events is not None:
            call.response_body = b"".join(call.response_events)
        bodies = await self._capture.bodies(request=call.request_body, response=call.response_body) \
            if call.request_body is not None or call.response_body is not None else None
        await self._audit.record(with_bodies(context.audit_event(
            principal, surface="ai", target=f"provider:{answered.name if answered else '-'}",
            action=f"{call.surface.action}:{call.model or '-'}", outcome=call.outcome,
            error_code=call.status if call.status != 200 else None, duration_ms=(now - call.started) * 1000,
            at=time.time() - (now - call.started),  # when the request came, as for tool calls
            detail={"model": call.model, "requested_model": call.requested_model,
                    "upstream_model": call.route.model_at(answered) if call.route and answered else None,
                    "provider": answered.name if answered else None,
                    "provider_type": answered.type if answered else None,
                    "routing": call.route.reason if call.route else None, "fallbacks": call.fallbacks,
                    "ttft_ms": ttft * 1000 if ttft is not None else None,
                    "input_tokens": call.input_tokens, "output_tokens": call.output_tokens,
                    "weighted_tokens": usage.weighted_tokens, "usd": usage.usd, "status": call.status,
                    "usage_estimated": estimated}), bodies))


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except ValueError as exc:
        raise ProxyError(400, "invalid_request_error", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ProxyError(400, "invalid_request_error", "the body must be a JSON object")
    return body


def _max_tokens(body: dict[str, Any]) -> int:
    """The most output the client allows itself, for the pre-call estimate (0 when it sets no limit)."""
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        if isinstance(body.get(name), int):
            return int(body[name])
    return 0
