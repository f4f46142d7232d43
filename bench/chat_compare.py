"""``/v1/chat/completions`` through Warden beside LiteLLM, with the shared kit's protocol (``../shared/perf``):
``compare.sh`` runs the mock upstreams, LiteLLM and Warden (one worker pinned to CPU 1; key auth, a quota rule
and audit on), interleaves the load per concurrency level, and writes ``summary.md`` with the ratios.

    .venv/bin/python bench/chat_compare.py --litellm /tmp/litellm-venv/bin/litellm [--seconds 10]

Needs ``wrk`` and a LiteLLM venv (``pip install 'litellm[proxy]'``). MCP calls are measured by ``mcp_call.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
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
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warden-chat-bench-"))
    config = work / "warden.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"gateway_port": 4100, "console_port": 4101, "data_dir": str(work / "data"),
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
    out = args.out or work / "out"
    env = {**os.environ, "CAND_CMD": f"WARDEN_CONFIG={config} {sys.executable} -m broker.cli serve",
           "CAND_URL": "http://127.0.0.1:4100", "CAND_KEY": KEY, "CAND_MCP_PATH": "", "BENCH_PY": sys.executable,
           "LITELLM_BIN": args.litellm, "DURATION": str(args.seconds), "OUT": str(out)}
    completed = subprocess.run(["bash", str(KIT / "compare.sh")], cwd=ROOT, env=env, check=False)
    print(f"results in {out}")
    return completed.returncode


if __name__ == "__main__":
    raise SystemExit(main())
