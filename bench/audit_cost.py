"""What auditing costs on the AI hot path: the most ``/v1/chat/completions`` requests per second Warden serves
with audit as always, and with the audit sink's ``record`` made a no-op (``--no-audit``: no spool append, no
writer, no database insert; the event itself is still built). Both instances run side by side, each one worker
pinned to CPU 1 (the one not under load idles), the kit's mock provider and wrk on CPU 0; short runs alternate
between them (on, off, on, off...) so the machine's drift, which reaches 20 % within minutes here, hits both alike.

    .venv/bin/python bench/audit_cost.py [--seconds 5] [--rounds 6] [--conc 64] [--store sqlite|postgres]

``--store postgres`` puts both instances' store in a fresh database on the local PostgreSQL (dropped afterwards):
the database's own work then runs in PostgreSQL's processes, outside the pinned core, as a deployment at scale
runs; the embedded default (SQLite) does it inside Warden's process.

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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_compare import KEY, KIT, ROOT, _wait_ready, write_config

PORTS = {True: 4100, False: 4200}


def serve_without_audit() -> None:
    """``warden serve`` with the audit sink taking events without keeping them (for this measurement only)."""
    from broker.cli import main
    from broker.kernel.audit.adapters.store import StoreAuditSink

    async def dropped(self: StoreAuditSink, event: object) -> None:
        return None

    StoreAuditSink.record = dropped  # type: ignore[method-assign]
    sys.argv = ["warden", "serve"]
    raise SystemExit(main())


def start(work: Path, audit: bool, database_url: str | None) -> subprocess.Popen[bytes]:
    run = work / ("on" if audit else "off")
    run.mkdir()
    config = write_config(run, PORTS[audit])
    if database_url:
        settings = yaml.safe_load(config.read_text())
        settings["database"] = {"url": database_url}
        config.write_text(yaml.safe_dump(settings))
    command = [sys.executable, "-m", "broker.cli", "serve"] if audit else \
        [sys.executable, str(Path(__file__).resolve()), "--serve-without-audit"]
    warden = subprocess.Popen(["taskset", "-c", "1", *command], cwd=ROOT,
                              env={**os.environ, "WARDEN_CONFIG": str(config)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_ready(f"http://127.0.0.1:{PORTS[audit]}/v1/chat/completions", KEY)
    return warden


def measure(warden: subprocess.Popen[bytes], audit: bool, seconds: int, conc: int, out: Path) -> dict[str, str]:
    subprocess.run([sys.executable, str(KIT / "run_wrk.py"), "--name", "on" if audit else "off",
                    "--url", f"http://127.0.0.1:{PORTS[audit]}/v1/chat/completions", "--pid", str(warden.pid),
                    "--conc", str(conc), "--duration", str(seconds), "--warmup", "2", "--wrk-cpu", "0",
                    "--out", str(out), "--tag", "audit"], env={**os.environ, "BENCH_KEY": KEY}, check=True)
    with out.open() as f:
        return list(csv.DictReader(f))[-1]


def _fresh_postgres_database(name: str) -> str:
    for statement in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", statement], check=True)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def main() -> int:
    if sys.argv[1:] == ["--serve-without-audit"]:
        serve_without_audit()
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--conc", type=int, default=64)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warden-audit-bench-"))
    mock = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(KIT / "mock_upstream.py"), "9000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[bool, list[dict[str, str]]] = {True: [], False: []}
    servers: dict[bool, subprocess.Popen[bytes]] = {}
    try:
        for audit in (True, False):
            url = None
            if args.store == "postgres":
                url = _fresh_postgres_database(f"warden_audit_bench_{'on' if audit else 'off'}")
            servers[audit] = start(work, audit, url)
        for _ in range(args.rounds):
            for audit in (True, False):
                results[audit].append(measure(servers[audit], audit, args.seconds, args.conc, work / "runs.csv"))
    finally:
        for process in [*servers.values(), mock]:
            process.terminate()
            process.wait(30)
    rps = {audit: statistics.median(float(r["rps"]) for r in rows) for audit, rows in results.items()}
    cpu = {audit: statistics.median(float(r["cpu_ms_per_req"]) for r in rows) for audit, rows in results.items()}
    errors = sum(int(r["non2xx"]) + int(r["sock_err"]) for rows in results.values() for r in rows)
    print(f"| {args.store}, c={args.conc}, {args.rounds} x {args.seconds} s each | audit on | audit off | on / off |")
    print("|---|---|---|---|")
    print(f"| max RPS (median) | {rps[True]:,.0f} | {rps[False]:,.0f} | {rps[True] / rps[False]:.3f} |")
    print(f"| CPU ms / request (median) | {cpu[True]:.3f} | {cpu[False]:.3f} | {cpu[True] / cpu[False]:.3f} |")
    paired = statistics.median(float(on["rps"]) / float(off["rps"])
                               for on, off in zip(results[True], results[False], strict=True))
    print(f"| RPS on / off, each round's pair (median) | | | {paired:.3f} |")
    print(f"errors: {errors}; every run: {[(r['name'], r['rps']) for rows in results.values() for r in rows]}")
    print(f"audit costs {100 * (1 - rps[True] / rps[False]):.1f} % of the maximum RPS (target: at most 10 %)")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
