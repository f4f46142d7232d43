"""What auditing costs on the AI hot path: the most ``/v1/chat/completions`` requests per second Warden serves
with audit as always, and with the audit sink's ``record`` made a no-op (``--no-audit``: no spool append, no
writer, no database insert; the event itself is still built), one worker pinned to CPU 1, the kit's mock
provider and wrk on CPU 0. Runs alternate (on, off, on, off...) so the machine's drift hits both alike.

    .venv/bin/python bench/audit_cost.py [--seconds 10] [--rounds 2] [--conc 64]

The issue's target: audit on costs at most 10 % of the maximum RPS.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_compare import KEY, KIT, ROOT, _wait_ready, write_config


def serve_without_audit() -> None:
    """``warden serve`` with the audit sink taking events without keeping them (for this measurement only)."""
    from broker.cli import main
    from broker.kernel.audit.adapters.store import StoreAuditSink

    async def dropped(self: StoreAuditSink, event: object) -> None:
        return None

    StoreAuditSink.record = dropped  # type: ignore[method-assign,assignment]
    sys.argv = ["warden", "serve"]
    raise SystemExit(main())


def measure(config: Path, audit: bool, seconds: int, conc: int, out: Path) -> dict[str, str]:
    command = [sys.executable, "-m", "broker.cli", "serve"] if audit else \
        [sys.executable, str(Path(__file__).resolve()), "--serve-without-audit"]
    warden = subprocess.Popen(["taskset", "-c", "1", *command], cwd=ROOT,
                              env={**os.environ, "WARDEN_CONFIG": str(config)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready("http://127.0.0.1:4100/v1/chat/completions", KEY)
        subprocess.run([sys.executable, str(KIT / "run_wrk.py"), "--name", "on" if audit else "off",
                        "--url", "http://127.0.0.1:4100/v1/chat/completions", "--pid", str(warden.pid),
                        "--conc", str(conc), "--duration", str(seconds), "--warmup", "3", "--wrk-cpu", "0",
                        "--out", str(out), "--tag", "audit"], env={**os.environ, "BENCH_KEY": KEY}, check=True)
    finally:
        warden.terminate()
        warden.wait(30)
    with out.open() as f:
        return list(csv.DictReader(f))[-1]


def main() -> int:
    if sys.argv[1:] == ["--serve-without-audit"]:
        serve_without_audit()
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conc", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warden-audit-bench-"))
    mock = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(KIT / "mock_upstream.py"), "9000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[bool, list[dict[str, str]]] = {True: [], False: []}
    try:
        for round_ in range(args.rounds):
            for audit in (True, False):
                run = work / f"{'on' if audit else 'off'}-{round_}"
                run.mkdir()
                config = write_config(run)
                results[audit].append(measure(config, audit, args.seconds, args.conc, work / "runs.csv"))
    finally:
        mock.terminate()
        mock.wait(10)
    rps = {audit: statistics.median(float(r["rps"]) for r in rows) for audit, rows in results.items()}
    cpu = {audit: statistics.median(float(r["cpu_ms_per_req"]) for r in rows) for audit, rows in results.items()}
    errors = sum(int(r["non2xx"]) + int(r["sock_err"]) for rows in results.values() for r in rows)
    print(f"| c={args.conc}, {args.rounds} x {args.seconds} s each | audit on | audit off | on / off |")
    print("|---|---|---|---|")
    print(f"| max RPS (median) | {rps[True]:,.0f} | {rps[False]:,.0f} | {rps[True] / rps[False]:.3f} |")
    print(f"| CPU ms / request (median) | {cpu[True]:.3f} | {cpu[False]:.3f} | {cpu[True] / cpu[False]:.3f} |")
    print(f"errors: {errors}; every run: {[(r['name'], r['rps']) for rows in results.values() for r in rows]}")
    print(f"audit costs {100 * (1 - rps[True] / rps[False]):.1f} % of the maximum RPS (target: at most 10 %)")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
