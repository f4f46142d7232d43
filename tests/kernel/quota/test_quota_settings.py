"""The quota fail mode and budget alert thresholds changed in the console: refused input names its field and
changes nothing, a change reaches every instance without a restart, and a starting instance reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.app import create_app
from tests.conftest import STRONG_PASSWORD, FakeClock, asgi_client, eventually, make_config
from tests.console.conftest import sign_in, two_instances


async def test_bad_settings_are_refused_naming_the_field_and_nothing_changes(tmp_path: Path, clock: FakeClock) -> None:
    config = make_config(tmp_path, "", quotas={"fail_mode": "open", "alert_thresholds": [80]})
    async with create_app(config, clock) as app, asgi_client(app.console, "http://console.test") as console:
        assert (await console.post("/api/setup", json={"email": "admin@example.com",
                                                       "password": STRONG_PASSWORD})).status_code == 201
        await sign_in(console, "admin@example.com")
        assert (await console.get("/api/settings/quotas")).json() == {"fail_mode": "open", "alert_thresholds": [80.0]}
        for body, field in (({"fail_mode": "sideways"}, "fail_mode"), ({"alert_thresholds": [0]}, "alert_thresholds"),
                            ({"alert_thresholds": [50, 2000]}, "alert_thresholds")):
            refused = await console.put("/api/settings/quotas", json=body)
            assert refused.status_code == 422 and refused.json()["error"]["fields"][0]["field"] == field, refused.text
        assert app.kernel.quotas.policy.fail_mode == "open" and app.kernel.quotas.policy.alert_thresholds == (80.0,)
        changed = await console.put("/api/settings/quotas", json={"fail_mode": "closed", "alert_thresholds": [90, 25]})
        assert changed.json() == {"fail_mode": "closed", "alert_thresholds": [25.0, 90.0]}
        assert app.kernel.quotas.policy.fail_mode == "closed"


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_change_applies_on_every_instance_and_survives_a_restart(tmp_path: Path, postgres_url: str,
                                                                          clock: FakeClock) -> None:
    async with two_instances(tmp_path, postgres_url, clock) as (_, other, console):
        restart = other.kernel.config
        assert other.kernel.quotas.policy.fail_mode == "open"
        answer = await console.put("/api/settings/quotas", json={"fail_mode": "closed", "alert_thresholds": [75]})
        assert answer.status_code == 200, answer.text

        async def applied() -> bool:
            policy = other.kernel.quotas.policy
            return policy.fail_mode == "closed" and policy.alert_thresholds == (75.0,)

        assert await eventually(applied)
    async with create_app(restart, clock) as restarted:
        assert restarted.kernel.quotas.policy.fail_mode == "closed"
