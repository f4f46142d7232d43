"""What auditing costs on the AI hot path: Warden's CPU time per ``/v1/chat/completions`` request with audit as
always, and with the audit sink's ``record`` made a no-op (no spool append, no writer, no database insert; the
event itself is still built), hence the most requests per second one core serves in each case (a saturated
worker's RPS is one core-second divided by its CPU time per request).

Both instances run side by side, each one worker pinned to CPU 1 (the kit's mock provider and wrk on CPU 0), for
several rounds. By default a round loads one, then the other (``wrk`` at saturation, the other instance idle;
which goes first alternates); this machine drifts by up to 20 % within minutes, more than the difference sought,
so rounds are short and compared in pairs. ``--together`` loads both at once, each with its own wrk, so drift
hits both alike; but the two then share the core's caches, which inflates both CPU times (by about a third here)
and charges each the other's cache misses.

Two processes running the same code can differ by a few per cent for good (hash seeds, memory layout): a control
run (``--control``, audit on in both) of one start read 4 % here. So the pair of instances is started afresh
several times (``--starts``) and the result is the median over the rounds of all starts.

    .venv/bin/python bench/audit_cost.py [--seconds 5] [--rounds 8] [--starts 4] [--conc 64]
                                         [--store sqlite|postgres] [--together] [--control]

``--store postgres`` puts both instances' store in a fresh database on the local PostgreSQL: the database's own
work then runs in PostgreSQL's processes, outside the pinned core, as a deployment at scale runs; the embedded
default (SQLite) does it inside Warden's process, in the threads of its connections.

Each round also reads the CPU time of each instance's event loop alone (its main thread): the hot path, which a
request's audit work (``record``, the writer task, PostgreSQL's driver) runs on. ``--loop-alone`` leaves CPU 1 to
the event loops and moves every other thread of the instances (SQLite's connection threads, the spool's worker)
to CPU 0 beside wrk and the mock: what one instance serves on a machine with a core to spare for its database
thread, as it has one for PostgreSQL's processes.

The issue's target: audit on costs at most 10 % of the maximum RPS.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_compare import KEY, KIT, ROOT, _wait_ready, write_config

sys.path.insert(0, str(KIT))
from run_wrk import cpu_s, parse

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


def start(run: Path, port: int, audit: bool, database_url: str | None) -> subprocess.Popen[bytes]:
    run.mkdir()
    config = write_config(run, port)
    if database_url:
        settings = yaml.safe_load(config.read_text())
        settings["database"] = {"url": database_url}
        config.write_text(yaml.safe_dump(settings))
    command = [sys.executable, "-m", "broker.cli", "serve"] if audit else \
        [sys.executable, str(Path(__file__).resolve()), "--serve-without-audit"]
    warden = subprocess.Popen(["taskset", "-c", "1", *command], cwd=ROOT,
                              env={**os.environ, "WARDEN_CONFIG": str(config)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_ready(f"http://127.0.0.1:{port}/v1/chat/completions", KEY)
    return warden


def measure(servers: dict[bool, subprocess.Popen[bytes]], seconds: int, conc: int, together: bool,
            order: tuple[bool, ...] = (True, False)) -> dict[bool, dict[str, float]]:
    """Load the instances for ``seconds`` each (at once when ``together``, else one after the other in
    ``order``); each one's requests, RPS and CPU ms a request."""
    before = {audit: cpu_s(server.pid) for audit, server in servers.items()}
    loop_before = {audit: loop_cpu_s(server.pid) for audit, server in servers.items()}
    if together:
        loads = {audit: _wrk(audit, seconds, conc) for audit in servers}
        results = {audit: parse(load.communicate(timeout=seconds + 60)[0]) for audit, load in loads.items()}
    else:
        results = {audit: parse(_wrk(audit, seconds, conc).communicate(timeout=seconds + 60)[0])
                   for audit in order}
    time.sleep(0.5)  # the audit writer's last batch (it lingers up to 250 ms) is part of the round's cost
    for audit, server in servers.items():
        result = results[audit]
        if not result.get("requests") or result["non2xx"] or result["sock_err"]:
            raise SystemExit(f"audit {'on' if audit else 'off'}: a failed load: {result}")
        result["cpu_ms_per_req"] = (cpu_s(server.pid) - before[audit]) * 1000 / result["requests"]
        result["loop_ms_per_req"] = (loop_cpu_s(server.pid) - loop_before[audit]) * 1000 / result["requests"]
    return results


def loop_cpu_s(pid: int) -> float:
    """CPU seconds of the process's main thread (the event loop), from ``/proc/<pid>/task/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


def leave_cpu1_to_the_loop(pid: int) -> None:
    """Every thread of ``pid`` but its main one onto CPU 0 (threads started later inherit the main one's CPU 1,
    so this runs before every round)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        if int(task.name) != pid:
            with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
                os.sched_setaffinity(int(task.name), {0})


def _wrk(audit: bool, seconds: int, conc: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{conc}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         "-s", str(KIT / "chat.lua"), f"http://127.0.0.1:{PORTS[audit]}/v1/chat/completions"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "BENCH_KEY": KEY})


def _fresh_postgres_database(name: str) -> str:
    for statement in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", statement], check=True)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _rounds_of_one_start(work: Path, args: argparse.Namespace) -> list[dict[bool, dict[str, float]]]:
    """Start both instances, measure ``args.rounds`` rounds, stop them. Each start is a new pair of processes: one
    process can be a few per cent faster than another running the same code (hash seeds, memory layout), which
    rounds within one start never average out."""
    work.mkdir(parents=True)
    servers: dict[bool, subprocess.Popen[bytes]] = {}
    rounds = []
    try:
        for audit in (True, False):
            url = None
            if args.store == "postgres":
                url = _fresh_postgres_database(f"warden_audit_bench_{'on' if audit else 'off'}")
            servers[audit] = start(work / ("on" if audit else "off"), PORTS[audit], audit or args.control, url)
        measure(servers, 2, args.conc, args.together)  # warm-up
        for number in range(args.rounds):
            if args.loop_alone:
                for server in servers.values():
                    leave_cpu1_to_the_loop(server.pid)
            # Which instance goes first alternates: the machine drifts within a round too, and a fixed order
            # would charge that drift to one side.
            order = (True, False) if number % 2 == 0 else (False, True)
            rounds.append(measure(servers, args.seconds, args.conc, args.together, order))
            on, off = rounds[-1][True], rounds[-1][False]
            print(f"{work.name}.{number + 1}: CPU ms/request on {on['cpu_ms_per_req']:.3f},"
                  f" off {off['cpu_ms_per_req']:.3f}; event loop on {on['loop_ms_per_req']:.3f},"
                  f" off {off['loop_ms_per_req']:.3f}; RPS on {on['rps']:,.0f}, off {off['rps']:,.0f}", flush=True)
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(30)
    return rounds


def machine_speed() -> float:
    """Seconds a fixed pure-Python loop takes on CPU 1: which phase of this machine's drift a run saw (the same
    build read 12.3 % in a fast phase and 8.0 % in a slow one, docs/performance.md)."""
    loop = ("import time; t = time.perf_counter(); s = 0\n"
            "for i in range(5_000_000): s += i\n"
            "print(time.perf_counter() - t)")
    return min(float(subprocess.run(["taskset", "-c", "1", sys.executable, "-c", loop], capture_output=True,
                                    text=True, check=True).stdout) for _ in range(3))


def main() -> int:
    if sys.argv[1:] == ["--serve-without-audit"]:
        serve_without_audit()
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=8, help="rounds per start")
    parser.add_argument("--starts", type=int, default=4, help="pairs of instances started one after the other")
    parser.add_argument("--conc", type=int, default=64)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--together", action="store_true", help="load both instances at once")
    parser.add_argument("--loop-alone", action="store_true",
                        help="CPU 1 for the event loops only, the instances' other threads on CPU 0")
    parser.add_argument("--control", action="store_true",
                        help="audit on in both instances: what the measurement itself reads as a difference")
    args = parser.parse_args()
    speed = machine_speed()
    work = Path(tempfile.mkdtemp(prefix="warden-audit-bench-"))
    mock = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(KIT / "mock_upstream.py"), "9000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rounds = []
    try:
        for number in range(args.starts):
            rounds += _rounds_of_one_start(work / str(number), args)
    finally:
        mock.terminate()
        mock.wait(30)
    cpu = {audit: statistics.median(r[audit]["cpu_ms_per_req"] for r in rounds) for audit in (True, False)}
    paired = statistics.median(r[False]["cpu_ms_per_req"] / r[True]["cpu_ms_per_req"] for r in rounds)
    loop = {audit: statistics.median(r[audit]["loop_ms_per_req"] for r in rounds) for audit in (True, False)}
    paired_loop = statistics.median(r[False]["loop_ms_per_req"] / r[True]["loop_ms_per_req"] for r in rounds)
    rps = {audit: statistics.median(r[audit]["rps"] for r in rounds) for audit in (True, False)}
    paired_rps = statistics.median(r[True]["rps"] / r[False]["rps"] for r in rounds)
    mode = ("together" if args.together else "one after the other") + \
        (", event loops alone on CPU 1" if args.loop_alone else "")
    if args.control:
        print("control run: audit is on in both instances (the 'off' column)")
    print(f"| {args.store}, c={args.conc}, {args.starts} starts x {args.rounds} rounds of {args.seconds} s, {mode}"
          " | audit on | audit off |"
          " on / off (each round's pair, median) |")
    print("|---|---|---|---|")
    print(f"| CPU ms / request (median) | {cpu[True]:.4f} | {cpu[False]:.4f} | {1 / paired:.3f} |")
    print(f"| max RPS of one core, from CPU / request | {1000 / cpu[True]:,.0f} | {1000 / cpu[False]:,.0f} |"
          f" {paired:.3f} |")
    print(f"| event loop's CPU ms / request (median) | {loop[True]:.4f} | {loop[False]:.4f} | {1 / paired_loop:.3f} |")
    print(f"| RPS measured (median{', sharing the core' if args.together else ''}) | {rps[True]:,.0f} |"
          f" {rps[False]:,.0f} | {paired_rps:.3f} |")
    print(f"machine speed: a fixed loop took {speed:.3f} s on CPU 1 before the run, {machine_speed():.3f} s after")
    print(f"audit costs {100 * (1 - paired):.1f} % of the maximum RPS by CPU time, {100 * (1 - paired_rps):.1f} %"
          f" by measured RPS, {100 * (1 - paired_loop):.1f} % by the event loop's CPU time (target: at most 10 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
