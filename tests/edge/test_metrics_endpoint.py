"""``GET /metrics`` on the gateway: absent unless a scrape token is configured, and only for that token."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.app import create_app
from broker.config import ConfigError, load_config
from tests.conftest import FakeClock, asgi_client, eventually, make_config
from tests.mcp.conftest import stdio_server

TOKEN = "scrape-token-" + "x" * 20


async def test_without_a_scrape_token_there_is_no_metrics_endpoint(tmp_path: Path, clock: FakeClock) -> None:
    async with create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'w.db'}"), clock) as warden, \
            asgi_client(warden.gateway, "http://gateway.test") as gateway:
        answer = await gateway.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


async def test_metrics_answer_only_the_scrape_token_and_parse(tmp_path: Path, clock: FakeClock) -> None:
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'w.db'}", security={"metrics_token": TOKEN})
    async with create_app(config, clock) as warden, asgi_client(warden.gateway, "http://gateway.test") as gateway:
        assert (await gateway.get("/health/live")).status_code == 200
        missing = await gateway.get("/metrics")
        wrong = await gateway.get("/metrics", headers={"authorization": "Bearer " + "y" * 33})
        basic = await gateway.get("/metrics", headers={"authorization": f"Basic {TOKEN}"})
        right = await gateway.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in refused.text
    assert right.status_code == 200
    names = {family.name for family in text_string_to_metric_families(right.text)}
    assert {"warden_http_requests", "warden_http_request_duration_seconds", "quota_rejections",
            "quota_fail_open", "warden_ai_time_to_first_token_seconds", "warden_ai_tokens", "warden_ai_cost_usd",
            "warden_ai_provider_circuit_state"} <= names


def test_the_scrape_token_comes_from_the_environment_and_is_never_echoed() -> None:
    assert load_config(environ={"WARDEN_METRICS_TOKEN": TOKEN}).security.metrics_token == TOKEN
    assert load_config(environ={"WARDEN_METRICS_TOKEN": ""}).security.metrics_token is None
    with pytest.raises(ConfigError) as short:
        load_config(environ={"WARDEN_METRICS_TOKEN": "short-secret"})
    assert "short-secret" not in str(short.value)


async def test_upstream_health_breakers_and_the_audit_spool_are_exported(tmp_path: Path, clock: FakeClock) -> None:
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'w.db'}", security={"metrics_token": TOKEN},
                         mcp_servers=[stdio_server("demo")])
    async with create_app(config, clock) as warden, asgi_client(warden.gateway, "http://gateway.test") as gateway:
        async def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            text = (await gateway.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})).text
            return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                    for family in text_string_to_metric_families(text) for sample in family.samples}

        async def healthy() -> bool:
            return (await scraped()).get(("warden_mcp_upstream_health",
                                          (("server", "demo"), ("state", "healthy")))) == 1.0

        assert await eventually(healthy, within=20)
        samples = await scraped()
    assert samples[("warden_mcp_upstream_health", (("server", "demo"), ("state", "down")))] == 0.0
    assert samples[("warden_mcp_upstream_circuit_state", (("server", "demo"),))] == 0.0
    assert ("warden_audit_spool_bytes", ()) in samples and ("warden_audit_spool_oldest_age_seconds", ()) in samples
