"""tools/call through Warden's ``/mcp`` beside the same call sent straight to the upstream and through
LiteLLM's ``/mcp/``, in one run, following the shared kit's protocol (``../shared/perf``).

Warden is measured twice: a 2025-11-25 client on a session (``mcp_call.lua``), and a 2026-07-28 client without
one (``mcp_call_2026.lua``). The kit's mock upstream (its ``/mcp`` has an ``echo`` tool) and the load generator
run on CPU 0; the gateway under test runs alone on CPU 1, one target under load at a time, interleaved per
concurrency level. The kit's ``run_wrk.py`` measures latency, throughput, CPU per request and peak RSS; this
script prints added latency (target minus direct, same run) and the Warden/LiteLLM ratios.

    .venv/bin/python bench/mcp_call.py [--seconds 8] [--concurrency 1 16 64] [--litellm /path/to/litellm]

Needs ``wrk`` (``apt-get install wrk``); LiteLLM is optional (a venv with ``pip install 'litellm[proxy]'``).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interaction.process import WardenProcess, base_env, free_port, wait_until  # noqa: E402

KIT = ROOT.parent / "shared" / "perf"
KEY = "wdn_" + "B" * 43
LITELLM_KEY = "sk-bench-master"
SESSION_LUA = Path(__file__).with_name("mcp_call.lua")  # the kit's script plus the Mcp-Session-Id header
MODERN_LUA = Path(__file__).with_name("mcp_call_2026.lua")  # the same call in the 2026-07-28 revision


def open_session(url: str) -> str:
    headers = {"authorization": f"Bearer {KEY}", "accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
    response = httpx.post(url, json=init, headers=headers)
    session = response.headers["mcp-session-id"]
    httpx.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
               headers={**headers, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"})
    return session


def measure(name: str, url: str, pid: int, level: int, seconds: int, out: Path, script: Path,
            **env: str) -> dict[str, str]:
    """One bounded run of the kit's run_wrk.py; returns its CSV row."""
    subprocess.run([sys.executable, str(KIT / "run_wrk.py"), "--name", name, "--url", url, "--pid", str(pid),
                    "--conc", str(level), "--duration", str(seconds), "--warmup", "2", "--wrk-cpu", "0",
                    "--script", str(script), "--out", str(out), "--tag", "mcp"],
                   env={**os.environ, **env}, check=True, timeout=seconds + 120, stdout=subprocess.DEVNULL)
    with out.open() as rows:
        return list(csv.DictReader(rows))[-1]


def start_litellm(binary: str, mock_port: int, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    config = tmp / "litellm.yaml"
    config.write_text(
        f"mcp_servers:\n  mock_mcp: {{url: 'http://127.0.0.1:{mock_port}/mcp', transport: http}}\n"
        "litellm_settings: {callbacks: [], num_retries: 0, request_timeout: 30}\n"
        f"general_settings: {{master_key: {LITELLM_KEY}}}\n")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    process = subprocess.Popen(["taskset", "-c", "1", binary, "--config", str(config), "--host", "127.0.0.1",
                                "--port", str(port), "--num_workers", "1"], env=env,
                               stdout=(tmp / "litellm.log").open("wb"), stderr=subprocess.STDOUT)
    if not wait_until(lambda: _up(f"http://127.0.0.1:{port}/health/liveliness"), 120):
        process.terminate()
        raise SystemExit(f"LiteLLM did not start; see {tmp / 'litellm.log'}")
    return process


def main(seconds: int, levels: list[int], litellm: str | None) -> None:
    mock_port = free_port()
    mock = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(KIT / "mock_upstream.py"), str(mock_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peer: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            assert wait_until(lambda: _up(f"http://127.0.0.1:{mock_port}/v1/models"), 10)
            config = tmp / "warden.yaml"
            config.write_text(
                f"server: {{log_level: warning}}\n"
                f"api_keys: [{{name: bench, owner: bench@example.com, secret: '{KEY}', surfaces: [mcp]}}]\n"
                f"mcp_servers: [{{name: mock, transport: streamable_http, url: 'http://127.0.0.1:{mock_port}/mcp'}}]\n"
            )
            env = base_env(tmp / "data", "", WARDEN_CONFIG=str(config), WARDEN_SERVER_LOG_LEVEL="warning")
            del env["WARDEN_DATABASE_URL"]
            warden = WardenProcess(env, tmp / "warden.log", ("--config", str(config)))
            warden.start()
            assert warden.process is not None
            subprocess.run(["taskset", "-a", "-p", "-c", "1", str(warden.process.pid)], check=True,
                           capture_output=True)
            litellm_port = free_port()
            litellm_url = f"http://127.0.0.1:{litellm_port}/mcp/"
            if litellm:
                peer = start_litellm(litellm, mock_port, litellm_port, tmp)
            time.sleep(2)
            direct, through = f"http://127.0.0.1:{mock_port}/mcp", warden.gateway + "/mcp"
            session = open_session(through)
            out = tmp / "mcp.csv"
            rows: list[tuple[str, int, dict[str, str]]] = []
            for level in levels:
                rows.append(("direct", level, measure("direct", direct, mock.pid, level, seconds, out,
                                                      KIT / "mcp_call.lua", BENCH_TOOL="echo", BENCH_KEY="x")))
                rows.append(("warden", level, measure("warden", through, warden.process.pid, level, seconds, out,
                                                      SESSION_LUA, BENCH_TOOL="mock__echo", BENCH_KEY=KEY,
                                                      BENCH_SESSION=session)))
                rows.append(("warden-2026", level, measure("warden-2026", through, warden.process.pid, level,
                                                           seconds, out, MODERN_LUA, BENCH_TOOL="mock__echo",
                                                           BENCH_KEY=KEY)))
                if peer is not None:
                    rows.append(("litellm", level, measure(
                        "litellm", litellm_url, peer.pid, level, seconds, out, KIT / "mcp_call.lua",
                        BENCH_TOOL="mock_mcp-echo", BENCH_KEY=LITELLM_KEY)))
            report(rows, levels)
            warden.stop()
        finally:
            for process in (peer, mock):
                if process is not None:
                    process.terminate()
                    process.wait(15)


def report(rows: list[tuple[str, int, dict[str, str]]], levels: list[int]) -> None:
    by = {(name, level): row for name, level, row in rows}
    print("| target | concurrency | p50 | added p50 | p99 | req/s | CPU ms/req | peak RSS | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for level in levels:
        base = float(by[("direct", level)]["p50_ms"])
        for name in ("direct", "warden", "warden-2026", "litellm"):
            row = by.get((name, level))
            if row is None:
                continue
            p50 = float(row["p50_ms"])
            errors = int(row["non2xx"] or 0) + int(row["sock_err"] or 0)
            print(f"| {name} | {level} | {p50:.2f} ms | {p50 - base:.2f} ms | {float(row['p99_ms']):.2f} ms |"
                  f" {float(row['rps']):.0f} | {row['cpu_ms_per_req'] or '-'} | {row['peak_rss_mb'] or '-'} MB |"
                  f" {errors} |")
    if any(name == "litellm" for name, _, _ in rows):
        print()
        for level in levels:
            w, ll = by[("warden", level)], by[("litellm", level)]
            print(f"c={level}: Warden/LiteLLM throughput x{float(w['rps']) / float(ll['rps']):.1f},"
                  f" CPU per request x{float(ll['cpu_ms_per_req']) / float(w['cpu_ms_per_req']):.1f} less")


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--litellm", help="path to the litellm command (optional)")
    args = parser.parse_args()
    main(args.seconds, args.concurrency, args.litellm)
