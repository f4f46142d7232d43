"""tools/call through Warden's ``/mcp`` beside the same call sent straight to the upstream, in one run.

Starts the shared kit's mock upstream (its ``/mcp`` has an ``echo`` tool) on CPU 0, Warden on CPU 1 with that
upstream registered, opens an MCP session, then runs bounded wrk loads (CPU 0) at each concurrency level
against both and prints added latency and throughput. Needs ``wrk`` (``apt-get install wrk``).

    .venv/bin/python bench/mcp_call.py [--seconds 8] [--concurrency 1 16 64]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interaction.process import WardenProcess, base_env, free_port, wait_until  # noqa: E402

KIT = ROOT.parent / "shared" / "perf"
KEY = "wdn_" + "B" * 43
LUA = Path(__file__).with_name("mcp_call.lua")


def open_session(url: str) -> str:
    headers = {"authorization": f"Bearer {KEY}", "accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
    response = httpx.post(url, json=init, headers=headers)
    session = response.headers["mcp-session-id"]
    httpx.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
               headers={**headers, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"})
    return session


def wrk(url: str, tool: str, session: str, connections: int, seconds: int) -> tuple[float, float]:
    env = {"BENCH_KEY": KEY, "BENCH_TOOL": tool, "BENCH_SESSION": session, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(LUA), url], capture_output=True, text=True, env=env, check=True,
                         timeout=seconds + 30).stdout
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if p50 is None or rps is None or errors is not None:
        raise SystemExit(f"wrk failed or saw errors:\n{out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return float(p50.group(1)) * scale, float(rps.group(1))


def main(seconds: int, levels: list[int]) -> None:
    port = free_port()
    mock = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(KIT / "mock_upstream.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _up(port), 10)
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "warden.yaml"
            config.write_text(
                f"server: {{log_level: warning}}\n"
                f"api_keys: [{{name: bench, owner: bench@example.com, secret: '{KEY}', surfaces: [mcp]}}]\n"
                f"mcp_servers: [{{name: mock, transport: streamable_http, url: 'http://127.0.0.1:{port}/mcp'}}]\n"
            )
            env = base_env(Path(tmp) / "data", "", WARDEN_CONFIG=str(config))
            del env["WARDEN_DATABASE_URL"]
            warden = WardenProcess(env, Path(tmp) / "warden.log", ("--config", str(config)))
            warden.start()
            try:
                assert warden.process is not None
                subprocess.run(["taskset", "-p", "-c", "1", str(warden.process.pid)], check=True,
                               capture_output=True)
                direct, through = f"http://127.0.0.1:{port}/mcp", warden.gateway + "/mcp"
                session = open_session(through)
                print("| concurrency | direct p50 | Warden p50 | added p50 | direct RPS | Warden RPS |")
                print("|---|---|---|---|---|---|")
                for level in levels:
                    d50, drps = wrk(direct, "echo", "", level, seconds)
                    w50, wrps = wrk(through, "mock__echo", session, level, seconds)
                    print(f"| {level} | {d50:.2f} ms | {w50:.2f} ms | {w50 - d50:.2f} ms | {drps:.0f} | {wrps:.0f} |")
            finally:
                warden.stop()
    finally:
        mock.terminate()
        mock.wait(10)


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()
    main(args.seconds, args.concurrency)
