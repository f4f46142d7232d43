"""A ClickHouse HTTP endpoint for the tests, backed by chdb (the real ClickHouse engine, in process): it takes what
clickhouse-connect sends — queries with ``param_*`` arguments, lz4-compressed bodies, Native-format inserts — and
answers in the format asked for, so the production adapter's real SQL, DDL and inserts run on the engine.

It runs in a process of its own (chdb's engine and threads stay out of the test process); ``POST /__test/down``
and ``/__test/up`` make it refuse every request with 503, as a server being restarted, and let it answer again.

    python -m tests.kernel.audit.clickhouse_server PORT PATH
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import lz4.frame
import pytest

from tests.interaction.process import python_module_serving

_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*$", re.IGNORECASE)
_NATIVE_INSERT = re.compile(r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+Native\s*$", re.IGNORECASE | re.DOTALL)


class ChdbServer:
    def __init__(self, path: Path) -> None:
        import chdb  # a test-only dependency of ~700 MB

        self._session = chdb.connect(str(path))
        self._lock = threading.Lock()  # one query at a time on the session
        self._scratch = Path(tempfile.mkdtemp(prefix="chdb-insert-"))
        self.down = False  # while set, every request is refused with 503, as a server being restarted
        self.queries: list[str] = []

    def handle(self, target: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(target)
        arguments = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        query = arguments.pop("query", "")
        params = {k.removeprefix("param_"): v for k, v in arguments.items() if k.startswith("param_")}
        if query and body:  # the query in the URL, the data (an insert's rows) in the body
            data = body
        elif body[:6].upper() == b"INSERT" and b"\n" in body:  # the insert's query, a newline, its rows
            head, _, data = body.partition(b"\n")
            query = head.decode()
        else:
            query, data = query or body.decode(), b""
        self.queries.append(query)
        wanted = _FORMAT.search(query)
        output = wanted.group(1) if wanted else "TabSeparated"
        with self._lock:
            if data and (insert := _NATIVE_INSERT.match(query)):
                block = self._scratch / "block.native"
                block.write_bytes(data)
                self._session.query(f"{insert.group(1)} SELECT * FROM file('{block}', Native)")
                return 200, b"", {}
            if wanted:
                query = query[:wanted.start()]
            result = self._session.query(query, output, params=params) if params else \
                self._session.query(query, output)
        return 200, result.bytes(), {"x-clickhouse-format": output}


def serve(port: int, path: Path) -> None:
    engine = ChdbServer(path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.path in ("/__test/down", "/__test/up"):
                self._body()
                engine.down = self.path == "/__test/down"
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self._answer(self._body())

        def do_GET(self) -> None:
            self._answer(b"")

        def _body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                body = b"".join(chunks)
            else:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.headers.get("content-encoding") == "lz4":
                body = lz4.frame.decompress(body)
            return body

        def _answer(self, body: bytes) -> None:
            if engine.down:
                status, content, headers = 503, b"Code: 210. DB::NetException: the test took ClickHouse down", {}
            else:
                try:
                    status, content, headers = engine.handle(self.path, body)
                except Exception as exc:  # the engine's own error, as ClickHouse reports it
                    status, content, headers = 500, f"Code: 62. DB::Exception: {exc}".encode(), {}
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args: object) -> None:
            return None

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


class ClickHouseEndpoint:
    """The test's handle on the endpoint process."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str) -> str:
        answer = httpx.post(self.url, params={"query": sql + " FORMAT TabSeparatedRaw"}, timeout=30)
        answer.raise_for_status()
        return answer.text

    def down(self) -> None:
        httpx.post(self.url + "/__test/down").raise_for_status()

    def up(self) -> None:
        httpx.post(self.url + "/__test/up").raise_for_status()


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseEndpoint]:
    """One chdb engine for the test run, behind its HTTP endpoint; tests use databases of their own."""
    path = tmp_path_factory.mktemp("chdb") / "engine"
    with python_module_serving("tests.kernel.audit.clickhouse_server", "{port}", str(path), ready_within=60) as port:
        yield ClickHouseEndpoint(f"http://127.0.0.1:{port}")


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
