"""Make sure what the suite needs is here: the machine's PostgreSQL and Redis, a headless Chromium and a NATS
server binary.

Run by ``make test`` before pytest. The services normally run already; when one is down it is started
with the machine's own commands. Chromium (Playwright cannot download its own browser here) and nats-server
(the tests start their own, with JetStream) come from Debian's packages. The script fails loudly if something is
still missing.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import time

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def start_postgres() -> None:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False)


def start_redis() -> None:
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                    "--save", "", "--appendonly", "no"], check=False)


def ensure(name: str, address: tuple[str, int], start: object) -> bool:
    if answers(address):
        return True
    print(f"{name} is not answering on {address[0]}:{address[1]}; starting it", flush=True)
    start()  # type: ignore[operator]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if answers(address):
            return True
        time.sleep(0.5)
    print(f"{name} did not come up", file=sys.stderr)
    return False


CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
NATS_SERVER = "/usr/sbin/nats-server"
# Chinese glyphs for the console's screenshots in Chinese (5 MB; Noto CJK is 90 MB).
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def ensure_package(path: str, package: str, why: str) -> bool:
    if os.path.exists(path):
        return True
    print(f"installing Debian's {package} {why}", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                   check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not os.path.exists(path):
        print(f"{path} is still missing", file=sys.stderr)
        return False
    return True


def main() -> int:
    ok = ensure("PostgreSQL", POSTGRES, start_postgres) & ensure("Redis", REDIS, start_redis)
    ok &= ensure_package(CHROMIUM, "chromium-headless-shell", "for the console browser tests")
    ok &= ensure_package(NATS_SERVER, "nats-server", "for the audit forwarding tests")
    ok &= ensure_package(CJK_FONT, "fonts-wqy-microhei", "for the console's pages in Chinese")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
