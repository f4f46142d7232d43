"""An OTLP/HTTP trace receiver for the tests: a real HTTP server that takes ``POST /v1/traces`` in protobuf, as an
OpenTelemetry Collector does, decodes each request with the official message definitions and keeps the spans.
It can answer the first requests with chosen statuses, and report rejected spans in a partial success."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.webhook_receiver import serving


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


class Collector:
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []  # each span decoded, with its resource's and scope's attributes
        self.statuses: list[int] = []  # answers to give the next requests (then 200)
        self.reject: int = 0  # spans to report rejected in the next successful answer
        self.requests = 0
        self.condition = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.requests += 1
                if self.path != "/v1/traces" or self.headers["content-type"] != "application/x-protobuf":
                    self._answer(415, b"")
                    return
                if collector.statuses:
                    self._answer(collector.statuses.pop(0), b"refused by the test")
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)  # raises (the test fails) on anything but a valid message
                with collector.condition:
                    for resource_spans in request.resource_spans:
                        resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                collector.spans.append({
                                    "resource": resource, "scope": scope_spans.scope.name,
                                    "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                                    "parent_span_id": span.parent_span_id.hex(), "name": span.name,
                                    "kind": span.kind, "start": span.start_time_unix_nano,
                                    "end": span.end_time_unix_nano, "status": span.status.code,
                                    "status_message": span.status.message,
                                    "attributes": {a.key: value_of(a.value) for a in span.attributes}})
                    collector.condition.notify_all()
                answer = ExportTraceServiceResponse()
                if collector.reject:
                    answer.partial_success.CopyFrom(ExportTracePartialSuccess(
                        rejected_spans=collector.reject, error_message="too old"))
                    collector.reject = 0
                self._answer(200, answer.SerializeToString())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` spans arrived (call through a thread from async code)."""
        with self.condition:
            return self.condition.wait_for(lambda: len(self.spans) >= count, timeout)


@pytest.fixture
def collector() -> Iterator[Collector]:
    made = Collector()
    with serving(made.server):
        yield made
