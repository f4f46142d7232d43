"""The reference upstream, ``npx @modelcontextprotocol/server-everything``, behind Warden over stdio and over
Streamable HTTP at once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interaction.process import WardenProcess, free_port, served, wait_until
from tests.mcp.conftest import mcp_client
from tests.services import answers

SECRET = "wdn_" + "E" * 43


@pytest.fixture(scope="module")
def everything_http() -> Iterator[str]:
    port = free_port()
    # setsid + killing the group: killing npx alone leaves node running.
    process = subprocess.Popen(["npx", "-y", "@modelcontextprotocol/server-everything", "streamableHttp"],
                               env={**os.environ, "PORT": str(port)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(lambda: answers(("127.0.0.1", port)), 120, 0.2), "server-everything did not start"
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, everything_http: str) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("everything")
    with served(tmp, {
        "mcp_servers": [
            {"name": "evs", "transport": "stdio", "command": "npx",
             "args": ["-y", "@modelcontextprotocol/server-everything"], "timeout_seconds": 30},
            {"name": "evh", "transport": "streamable_http", "url": everything_http, "timeout_seconds": 30},
        ],
        "api_keys": [{"name": "agent", "owner": "agent@example.com", "secret": SECRET, "surfaces": ["mcp"]}],
    }) as process:
        yield process


async def test_both_transports_list_and_call(warden: WardenProcess) -> None:
    async with mcp_client(warden.gateway + "/mcp", SECRET) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"evs__echo", "evh__echo", "evs__get-sum", "evh__get-sum"} <= names
        echoed = await session.call_tool("evs__echo", {"message": "via stdio"})
        summed = await session.call_tool("evh__get-sum", {"a": 2, "b": 3})
    assert "via stdio" in echoed.content[0].text  # type: ignore[union-attr]
    assert "5" in summed.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("prefix", ["evs", "evh"])
async def test_long_running_operation_streams_progress_before_the_result(warden: WardenProcess,
                                                                         prefix: str) -> None:
    stamps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        stamps.append(time.monotonic())

    async with mcp_client(warden.gateway + "/mcp", SECRET) as session:
        result = await session.call_tool(f"{prefix}__trigger-long-running-operation", {"duration": 2, "steps": 4},
                                         progress_callback=on_progress)
        finished = time.monotonic()
    assert not result.is_error
    assert len(stamps) >= 3
    assert stamps[0] < finished - 1.0  # the first step arrived about a second and a half before the end
