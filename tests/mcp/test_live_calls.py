"""Live tool-call steps: published only while a console watches, each naming its call and caller (the stream
across two instances is in test_instances.py)."""

from __future__ import annotations

import anyio

from broker.kernel.bus.memory import LocalBroadcast
from broker.kernel.identity.models import Permissions, Principal
from broker.mcp.live_calls import LiveCalls

CALLER = Principal(None, "team-1", None, Permissions(), "api_key")


async def test_nothing_is_published_until_a_console_watches() -> None:
    live = LiveCalls(LocalBroadcast())
    assert live.start(CALLER, "demo", "demo__echo", "t" * 32) is None
    async with live.watch() as steps:
        call = live.start(CALLER, "demo", "demo__echo", "t" * 32)
        assert call is not None
        await call.step("start")
        await call.step("progress", progress=1, total=2, message="half")
        await call.step("ok", error_code=None)
        with anyio.fail_after(1):
            received = [await steps.receive() for _ in range(3)]
    assert [r["step"]["event"] for r in received] == ["start", "progress", "ok"]
    assert received[1]["step"]["message"] == "half" and received[0]["team_id"] == "team-1"
    assert received[2]["step"]["t_ms"] >= received[0]["step"]["t_ms"]
