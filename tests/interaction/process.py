"""Running ``warden`` as a real process on free loopback ports."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from broker.kernel.crypto import KeyRing
from tests.services import answers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


REPO = Path(__file__).resolve().parents[2]
# Helper processes (upstreams) still running; whatever interrupts the test run, they are stopped at exit.
_HELPERS: set[subprocess.Popen[bytes]] = set()


def helper(process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    _HELPERS.add(process)
    return process


@contextmanager
def python_module_serving(module: str, *args: str, ready_within: float = 20) -> Iterator[int]:
    """``python -m module *args`` (``{port}`` in them replaced by a free port) as a helper process, for as long as
    the block runs; yields the port once something accepts connections on it."""
    port = free_port()
    argv = [arg.format(port=port) for arg in args]
    process = helper(subprocess.Popen([sys.executable, "-m", module, *argv], cwd=REPO,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        assert wait_until(lambda: answers(("127.0.0.1", port)), ready_within), f"{module} did not start listening"
        yield port
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate a helper process, killing it if it does not exit in time: a test never leaves one running."""
    _HELPERS.discard(process)
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@atexit.register
def _stop_helpers() -> None:
    for process in list(_HELPERS):
        stop_process(process, timeout=2)


def warden_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "broker.cli", *args]


def base_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update({
        "WARDEN_SERVER_DATA_DIR": str(data_dir),
        "WARDEN_DATABASE_URL": database_url,
        "WARDEN_SERVER_GATEWAY_PORT": str(free_port()),
        "WARDEN_SERVER_CONSOLE_PORT": str(free_port()),
        "WARDEN_SERVER_LOG_LEVEL": "debug",
        # The tests' upstreams and authorization servers listen on loopback, which Warden refuses by default.
        "WARDEN_SECURITY_OUTBOUND_ALLOW": "127.0.0.1,localhost",
    })
    env.update(extra)
    return env


def shared_secrets() -> dict[str, str]:
    """Explicit secrets, as several instances sharing a database must have."""
    return {"WARDEN_SECRET_KEY": KeyRing.generate_entry(1), "WARDEN_SERVER_SECRET": "shared-" + os.urandom(8).hex()}


@dataclass
class WardenProcess:
    """One ``warden serve`` process; its combined output goes to ``log_path``."""

    env: dict[str, str]
    log_path: Path
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def scheme(self) -> str:
        return "https" if self.env.get("WARDEN_SERVER_TLS_CERT_FILE") else "http"

    @property
    def gateway(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.env['WARDEN_SERVER_GATEWAY_PORT']}"

    @property
    def console(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.env['WARDEN_SERVER_CONSOLE_PORT']}"

    def start(self, ready_timeout: float = 30) -> WardenProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(warden_command(*self.args, "serve"), env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            ready = wait_until(self._ready, ready_timeout, 0.1)
        except BaseException:  # interrupted while starting (SIGTERM, Ctrl-C): no process left behind
            self.stop()
            raise
        if not ready:
            self.stop()
            raise AssertionError(f"warden did not become ready:\n{self.log_path.read_text()[-3000:]}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"warden exited early:\n{self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(self.gateway + "/health/ready", timeout=1, verify=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 20) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return int(self.process.returncode)

    def __enter__(self) -> WardenProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def served(directory: Path, config: dict[str, Any], **env: str) -> Iterator[WardenProcess]:
    """``warden serve`` on SQLite in ``directory`` with ``config`` as its YAML file, stopped on exit."""
    path = directory / "warden.yaml"
    path.write_text(yaml.safe_dump(config))
    environment = base_env(directory / "data", "", WARDEN_CONFIG=str(path), **env)
    del environment["WARDEN_DATABASE_URL"]
    with WardenProcess(environment, directory / "warden.log") as process:
        yield process
