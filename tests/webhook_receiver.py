"""A real HTTP server for webhook tests: records posts, can fail the first few, signals arrivals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """A real HTTP server that records posts and fails the first ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        self.condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(503)
                else:
                    with receiver.condition:
                        receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                        receiver.condition.notify_all()
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` posts arrived (call through a thread from async code)."""
        with self.condition:
            return self.condition.wait_for(lambda: len(self.posts) >= count, timeout)


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[None]:
    """``server`` answering in a thread of its own for as long as the block runs, then shut and closed."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    made = Receiver(getattr(request, "param", 0))
    with serving(made.server):
        yield made
