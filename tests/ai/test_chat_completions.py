"""``/v1/chat/completions`` driven by the official ``openai`` SDK (3.x, on httpx2) against a fake provider that
speaks OpenAI's wire format: text, streaming, tool calls; usage charged and audited; the errors."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ai.fake_providers import launched
from tests.conftest import eventually
from tests.connections.conftest import first_admin
from tests.interaction.process import WardenProcess, served

KEY = "wdn_" + "o" * 43
LIMITED = "wdn_" + "l" * 43  # may use gpt-4o-mini only
MCP_ONLY = "wdn_" + "m" * 43
TIGHT = "wdn_" + "t" * 43  # one request a minute
METRICS_TOKEN = "scrape-" + "s" * 24
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "The weather in a city",
                                           "parameters": {"type": "object", "properties": {
                                               "city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with launched() as url:
        yield url


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("chat")
    with served(tmp, {
        "providers": [{"name": "fake", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"},
                      {"name": "impatient", "type": "openai_compatible", "base_url": provider + "/v1",
                       "api_key": "sk-fake", "timeout_seconds": 1},
                      {"name": "failing", "type": "openai_compatible", "base_url": provider + "/fail/v1"},
                      {"name": "dead", "type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}],
        "models": [{"name": "house-model", "routes": [{"provider": "fake"}], "input_price_per_million": 1000,
                    "output_price_per_million": 2000},
                   {"name": "gpt-slow", "routes": [{"provider": "impatient"}]},
                   {"name": "duo", "routes": [{"provider": "failing", "weight": 1000}, {"provider": "fake"}]},
                   {"name": "lazarus", "routes": [{"provider": "dead", "weight": 1000}, {"provider": "fake"}]}],
        "api_keys": [
            {"name": "all", "owner": "ada@example.com", "secret": KEY, "surfaces": ["ai"]},
            {"name": "limited", "owner": "ada@example.com", "secret": LIMITED, "surfaces": ["ai"],
             "allowed_models": ["gpt-4o-mini"]},
            {"name": "mcp", "owner": "ada@example.com", "secret": MCP_ONLY, "surfaces": ["mcp"]},
            {"name": "tight", "owner": "tight@example.com", "secret": TIGHT, "surfaces": ["ai"]},
        ],
        "quotas": {"rules": [{"subject": "user:tight@example.com", "metric": "requests", "window": "1m",
                              "limit": 1, "surface": "ai"}]},
    }, WARDEN_METRICS_TOKEN=METRICS_TOKEN) as process:
        first_admin(process, "ada@example.com")
        yield process


@pytest.fixture
async def client(warden: WardenProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


def recorded(provider: str) -> dict[str, Any]:
    return dict(httpx.get(provider + "/record").json())


def received(provider: str) -> list[dict[str, Any]]:
    return list(recorded(provider)["received"])


async def test_a_completion_goes_through_as_sent(client: openai.AsyncOpenAI, provider: str) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], temperature=0.2)
    assert completion.choices[0].message.content == "Hello from the fake provider."
    assert completion.usage is not None and completion.usage.total_tokens == 27
    sent = received(provider)[-1]
    assert sent == {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."},
                                                         {"role": "user", "content": "Hi"}], "temperature": 0.2}


async def test_a_stream_arrives_chunk_by_chunk_and_usage_is_asked_for_but_not_shown(
        client: openai.AsyncOpenAI, provider: str) -> None:
    stream = await client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                  messages=[{"role": "user", "content": "Hi"}])
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake provider."
    assert all(c.choices for c in chunks)  # the usage-only chunk Warden asked for is not passed on
    assert received(provider)[-1]["stream_options"] == {"include_usage": True}


async def test_a_stream_keeps_usage_when_the_client_asks(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                  stream_options={"include_usage": True},
                                                  messages=[{"role": "user", "content": "Hi"}])
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


async def test_tool_calls_round_trip_streaming_and_not(client: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS,
                                                  stream=True)
    arguments = "".join([tc.function.arguments or "" async for chunk in stream for tc in
                         (chunk.choices[0].delta.tool_calls or []) if tc.function])
    assert json.loads(arguments) == {"city": "Paris"}

    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"}]
    final = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Hello from the fake provider."


async def test_usage_is_charged_at_the_models_prices_and_audited(client: openai.AsyncOpenAI,
                                                                warden: WardenProcess) -> None:
    await client.chat.completions.create(model="house-model", messages=[{"role": "user", "content": "Hi"}])

    def house_calls() -> list[dict[str, Any]]:
        # No API reads AI audit events yet (the audit issue adds search): read the store.
        with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
            rows = db.execute("SELECT detail FROM audit_events WHERE surface = 'ai'").fetchall()
        return [{"detail": d} for (raw,) in rows if (d := json.loads(raw)).get("model") == "house-model"]

    async def audited() -> bool:
        return bool(house_calls())

    assert await eventually(audited)
    detail = house_calls()[0]["detail"]
    assert (detail["input_tokens"], detail["output_tokens"], detail["provider"]) == (21, 6, "fake")
    assert detail["usd"] == pytest.approx((21 * 1000 + 6 * 2000) / 1_000_000)
    assert "registered model" in detail["routing"]

    stream = await client.chat.completions.create(model="house-model", stream=True,
                                                  messages=[{"role": "user", "content": "Hi"}])
    assert [chunk async for chunk in stream]

    async def stream_charged() -> bool:  # usage read from the stream's usage chunk, which the client never saw
        calls = house_calls()
        return len(calls) == 2 and all(c["detail"]["output_tokens"] == 6 for c in calls)

    assert await eventually(stream_charged)


async def test_refusals_in_openai_shape(warden: WardenProcess) -> None:
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=LIMITED, max_retries=0) as limited:
        with pytest.raises(openai.PermissionDeniedError) as forbidden:
            await limited.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert forbidden.value.status_code == 403 and forbidden.value.code == "model_not_allowed"
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0) as sdk:
        with pytest.raises(openai.NotFoundError) as unknown:
            await sdk.chat.completions.create(model="llama-none", messages=[{"role": "user", "content": "x"}])
        assert unknown.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as passed_on:
            await sdk.chat.completions.create(model="gpt-refuse", messages=[{"role": "user", "content": "x"}])
        assert passed_on.value.body["param"] == "max_tokens"  # type: ignore[index]
        with pytest.raises(openai.InternalServerError) as failed:
            await sdk.chat.completions.create(model="gpt-fail", messages=[{"role": "user", "content": "x"}])
        assert failed.value.status_code == 502
        with pytest.raises(openai.APIStatusError) as slow:  # the provider's timeout, not a hang
            await sdk.chat.completions.create(model="gpt-slow", messages=[{"role": "user", "content": "x"}])
        assert slow.value.status_code == 504
    for secret, status in (("wdn_" + "x" * 43, 401), (MCP_ONLY, 403)):
        async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=secret, max_retries=0) as sdk:
            with pytest.raises(openai.APIStatusError) as refused:
                await sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
            assert refused.value.status_code == status


def test_malformed_and_oversized_bodies(warden: WardenProcess) -> None:
    url, auth = warden.gateway + "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}
    broken = httpx.post(url, headers=auth, content=b"{not json")
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    no_messages = httpx.post(url, headers=auth, json={"model": "gpt-4o-mini"})
    assert no_messages.status_code == 400 and no_messages.json()["error"]["param"] == "messages"
    huge = httpx.post(url, headers=auth, content=b"x" * (21 * 1024 * 1024), timeout=60)
    assert huge.status_code == 413
    no_input = httpx.post(warden.gateway + "/v1/embeddings", headers=auth, json={"model": "gpt-4o-mini"})
    assert no_input.status_code == 400 and no_input.json()["error"]["param"] == "input"


async def test_a_client_that_goes_away_ends_the_upstream_stream(warden: WardenProcess, provider: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http, http.stream(
            "POST", warden.gateway + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
            json={"model": "gpt-endless", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break  # one event, then the client hangs up

    async def upstream_ended() -> bool:
        async with httpx.AsyncClient() as http:
            return "gpt-endless" in (await http.get(provider + "/record")).json()["abandoned"]

    assert await eventually(upstream_ended)

    async def charged_by_estimate() -> bool:  # the provider never reported usage: what was streamed counts
        return any(d["usage_estimated"] and d["output_tokens"] >= 1 and d["input_tokens"] > 0
                   for d in audited(warden, "gpt-endless"))

    assert await eventually(charged_by_estimate)


async def test_a_limit_reached_is_429_with_retry_after(warden: WardenProcess) -> None:
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=TIGHT, max_retries=0) as sdk:
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError) as limited:
            await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert int(limited.value.response.headers["retry-after"]) >= 1


def audited(warden: WardenProcess, model: str) -> list[dict[str, Any]]:
    with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
        rows = db.execute("SELECT detail FROM audit_events WHERE surface = 'ai' ORDER BY at").fetchall()
    return [d for (raw,) in rows if (d := json.loads(raw)).get("model") == model]


async def test_a_failing_peer_fails_over_with_no_client_visible_error_and_its_breaker_opens(
        client: openai.AsyncOpenAI, warden: WardenProcess, provider: str) -> None:
    for _ in range(8):
        answer = await client.chat.completions.create(model="duo", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content == "Hello from the fake provider."
    # Two attempts per request until five failures open its breaker; then it is passed over untried.
    assert recorded(provider)["failing_calls"] == 5

    async def all_audited() -> bool:
        return len(audited(warden, "duo")) == 8

    assert await eventually(all_audited)
    events = audited(warden, "duo")
    assert all(e["provider"] == "fake" for e in events)
    # By weight (1000 to 1) the failing peer is tried first on nearly every request; the rare request routed
    # to the healthy peer first has no fallbacks, so only requests that did fall back tell the story.
    fell_back = [e["fallbacks"] for e in events if e["fallbacks"]]
    assert fell_back[0] == ["failing: HTTP 500", "failing: HTTP 500"]
    assert fell_back[-1] == ["failing: circuit open"]


async def test_an_unreachable_peer_fails_over(client: openai.AsyncOpenAI, warden: WardenProcess) -> None:
    # By weight (1000 to 1) the dead peer is tried first on nearly every request, not on all: the rare request
    # routed to the healthy peer first has nothing to fall over from, so a few are sent.
    for sent in range(1, 4):
        answer = await client.chat.completions.create(model="lazarus", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content == "Hello from the fake provider."

        async def stored(count: int = sent) -> bool:
            return len(audited(warden, "lazarus")) == count

        assert await eventually(stored)
        tried_dead_first = [e for e in audited(warden, "lazarus") if "peer dead" in e["routing"]]
        if tried_dead_first:
            break
    assert tried_dead_first[0]["fallbacks"][0] == "dead: upstream_unavailable"
    assert tried_dead_first[0]["provider"] == "fake"


async def test_no_retry_after_the_first_streamed_byte(warden: WardenProcess, provider: str) -> None:
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(model="gpt-breaks", stream=True,
                                                   messages=[{"role": "user", "content": "x"}])
        text = ""
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "half an answer"
    assert [b["model"] for b in received(provider)].count("gpt-breaks") == 1


async def test_embeddings_go_through_and_are_charged(client: openai.AsyncOpenAI, warden: WardenProcess,
                                                     provider: str) -> None:
    answer = await client.embeddings.create(model="house-model", input=["one", "two"])
    assert [d.embedding for d in answer.data] == [[0.25, -0.5, 0.125, 1.0]] * 2
    assert answer.usage.prompt_tokens == 10
    assert received(provider)[-1]["input"] == ["one", "two"]

    async def charged() -> bool:
        with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
            rows = db.execute("SELECT action, detail FROM audit_events WHERE surface = 'ai'").fetchall()
        return any(action == "embeddings:house-model" and json.loads(detail)["usd"] == pytest.approx(0.01)
                   for action, detail in rows)

    assert await eventually(charged)


def scraped(warden: WardenProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(warden.gateway + "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_metrics_count_tokens_cost_ttft_quota_refusals_and_circuit_states(
        client: openai.AsyncOpenAI, warden: WardenProcess) -> None:
    # Runs after the failover tests of this module (pytest keeps file order): it opens the dead peer's breaker.
    before = scraped(warden)
    await client.chat.completions.create(model="house-model", messages=[{"role": "user", "content": "x"}])
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=TIGHT, max_retries=0) as sdk:
        for _ in range(2):  # the rule allows one a minute: at least one of these is refused
            with contextlib.suppress(openai.RateLimitError):
                await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    for _ in range(3):  # two failed attempts each: five failures open the dead peer's breaker
        await client.chat.completions.create(model="lazarus", messages=[{"role": "user", "content": "x"}])
    after = scraped(warden)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    house = {"provider": "fake", "model": "house-model"}
    assert grew("warden_ai_tokens_total", kind="input", **house) == 21
    assert grew("warden_ai_tokens_total", kind="output", **house) == 6
    assert grew("warden_ai_cost_usd_total", **house) == pytest.approx((21 * 1000 + 6 * 2000) / 1e6)
    assert grew("warden_ai_time_to_first_token_seconds_count", **house) == 1
    assert grew("quota_rejections_total", surface="ai") >= 1
    assert after[("warden_ai_provider_circuit_state", (("provider", "dead"),))] == 2  # open
    assert after[("warden_ai_provider_circuit_state", (("provider", "fake"),))] == 0  # closed


async def test_the_trace_and_request_id_are_kept_propagated_and_audited(warden: WardenProcess, provider: str) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01", "x-request-id": "run-42/turn-1",
               "user-agent": "agent-under-test/1.0"}
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0,
                                  default_headers=headers) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-request-id"] == "run-42/turn-1"
    sent = recorded(provider)["traceparents"][-1]
    assert sent.startswith(f"00-{trace}-") and sent != headers["traceparent"]  # same trace, Warden's own span
    async with httpx.AsyncClient() as plain:
        unnamed = await plain.post(warden.gateway + "/v1/chat/completions", headers={
            "authorization": f"Bearer {KEY}"}, json={"model": "gpt-4o-mini", "messages": [{"role": "user",
                                                                                            "content": "x"}]})
    assert len(unnamed.headers["x-request-id"]) >= 16  # one is made up when the client sent none

    async def traced() -> list[dict[str, Any]]:
        with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM audit_events WHERE trace_id = ?", (trace,))]

    async def one_event() -> bool:
        return len(await traced()) == 1

    assert await eventually(one_event)
    event = (await traced())[0]
    assert (event["request_id"], event["client_ip"], event["user_agent"]) == (
        "run-42/turn-1", "127.0.0.1", "agent-under-test/1.0")
    assert json.loads(event["detail"])["requested_model"] == "gpt-4o-mini"


async def test_requests_with_an_unknown_key_are_refused_and_audited(warden: WardenProcess) -> None:
    async with httpx.AsyncClient() as plain:
        answer = await plain.post(warden.gateway + "/v1/chat/completions",
                                  headers={"authorization": "Bearer wdn_" + "u" * 43, "x-request-id": "who-is-this"},
                                  json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert answer.status_code == 401

    async def refused() -> bool:
        with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
            rows = db.execute("SELECT outcome, error_code, user_id, api_key_id FROM audit_events"
                              " WHERE request_id = 'who-is-this'").fetchall()
        return rows == [("refused", 401, None, None)]

    assert await eventually(refused)
