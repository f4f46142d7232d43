"""``/v1/chat/completions`` through Warden beside LiteLLM, with the shared kit's protocol (``../shared/perf``):
``compare.sh`` runs the mock upstreams, LiteLLM and Warden (one worker pinned to CPU 1; key auth, a quota rule
and audit on), interleaves the load per concurrency level, and writes ``summary.md`` with the ratios.

    .venv/bin/python bench/chat_compare.py --litellm /tmp/litellm-venv/bin/litellm [--seconds 10]

Needs ``wrk`` and a LiteLLM venv (``pip install 'litellm[proxy]'``). MCP calls are measured by ``mcp_call.py``.

``--floor`` then measures the kit's own floor (``floor_proxy.py``: the thinnest Starlette + aiohttp hop, no auth,
quota or audit) under the same protocol and appends a table to ``summary.md``: what a Python gateway cannot go
below on this machine, beside Warden's figures from the same run. CPU per request depends heavily on the machine
(the kit's README measured the floor at 0.10 ms on its box), so Warden's targets are read beside the floor.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT.parent / "shared" / "perf"
KEY = "wdn_" + "C" * 43


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--litellm", required=True, help="the litellm executable of a LiteLLM venv")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--floor", action="store_true", help="also measure the kit's floor proxy (see above)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warden-chat-bench-"))
    config = write_config(work)
    out = args.out or work / "out"
    env = {**os.environ, "CAND_CMD": f"WARDEN_CONFIG={config} {sys.executable} -m broker.cli serve",
           "CAND_URL": "http://127.0.0.1:4100", "CAND_KEY": KEY, "CAND_MCP_PATH": "", "BENCH_PY": sys.executable,
           "LITELLM_BIN": args.litellm, "DURATION": str(args.seconds), "OUT": str(out)}
    completed = subprocess.run(["bash", str(KIT / "compare.sh")], cwd=ROOT, env=env, check=False)
    if completed.returncode == 0 and args.floor:
        measure_floor(out, args.seconds)
    print(f"results in {out}")
    return completed.returncode


def write_config(work: Path, port: int = 4100) -> Path:
    """Warden's configuration for the chat benchmarks: the kit's mock providers, a key, a quota rule every request
    is counted against, audit on (as always); the gateway on ``port``, the console on the next."""
    config = work / "warden.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"gateway_port": port, "console_port": port + 1, "data_dir": str(work / "data"),
                   "log_level": "warning"},
        "security": {"outbound_allow": ["127.0.0.1"]},
        "providers": [{"name": "mock", "type": "openai_compatible", "base_url": "http://127.0.0.1:9000/v1",
                       "api_key": "sk-upstream-fake"},
                      {"name": "mock-slow", "type": "openai_compatible", "base_url": "http://127.0.0.1:9001/v1",
                       "api_key": "sk-upstream-fake"}],
        "models": [{"name": "mock-gpt", "routes": [{"provider": "mock"}], "input_price_per_million": 1,
                    "output_price_per_million": 2},
                   {"name": "mock-gpt-slow", "routes": [{"provider": "mock-slow"}]}],
        "api_keys": [{"name": "bench", "owner": "bench@example.com", "secret": KEY, "surfaces": ["ai"]}],
        # A rule every request is counted against, so the quota path does its real work.
        "quotas": {"rules": [{"subject": "user:*", "metric": "requests", "window": "1m", "limit": 100_000_000,
                              "surface": "ai"}]},
    }))
    return config


def measure_floor(out: Path, seconds: int) -> None:
    """The kit's floor proxy on the gateway's core with the kit's mock, then a floor-beside-Warden table."""
    started = []
    try:
        started.append(subprocess.Popen(["taskset", "-c", "0", sys.executable, str(KIT / "mock_upstream.py"), "9000"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        floor = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, "-m", "uvicorn", "floor_proxy:app", "--host", "127.0.0.1",
             "--port", "4100", "--loop", "uvloop", "--http", "httptools", "--no-access-log"],
            cwd=KIT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(floor)
        _wait_ready("http://127.0.0.1:4100/v1/chat/completions", "sk-bench-master")
        subprocess.run([sys.executable, str(KIT / "run_wrk.py"), "--name", "floor", "--url",
                        "http://127.0.0.1:4100/v1/chat/completions", "--pid", str(floor.pid), "--conc", "1,16,64",
                        "--duration", str(seconds), "--warmup", "3", "--wrk-cpu", "0",
                        "--out", str(out / "floor.csv"), "--tag", "nonstream"],
                       env={**os.environ, "BENCH_KEY": "sk-bench-master"}, check=True)
    finally:
        for process in started:
            process.terminate()
            process.wait(10)
    with (out / "floor.csv").open() as f:
        floor_rows = {int(r["conc"]): r for r in csv.DictReader(f)}
    with (out / "nonstream.csv").open() as f:
        warden_rows = {int(r["conc"]): r for r in csv.DictReader(f) if r["name"] == "candidate"}
    lines = ["", "### Floor (the kit's Starlette + aiohttp hop, no auth/quota/audit) beside Warden, same run", "",
             "| conc | floor p50 ms | Warden p50 ms | floor RPS | Warden RPS | CPU ms/req floor / Warden |",
             "|---|---|---|---|---|---|"]
    for conc, row in sorted(floor_rows.items()):
        w = warden_rows.get(conc, {})
        lines.append(f"| {conc} | {row['p50_ms']} | {w.get('p50_ms', '-')} | {row['rps']} | {w.get('rps', '-')} |"
                     f" {row['cpu_ms_per_req']} / {w.get('cpu_ms_per_req', '-')} |")
    with (out / "summary.md").open("a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def _wait_ready(url: str, key: str) -> None:
    body = b'{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}'
    deadline = time.monotonic() + 30
    while True:
        request = urllib.request.Request(url, body, {"Authorization": f"Bearer {key}",
                                                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
