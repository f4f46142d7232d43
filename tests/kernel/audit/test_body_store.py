"""The offload stores: a local directory and an S3-compatible bucket (moto's S3 server, spoken to over HTTP with
SigV4-signed requests), both round-tripping bodies under date-prefixed keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer

from broker.kernel.audit.body_store import BodyStoreError, LocalBodyStore, S3BodyStore, offload_key

BUCKET = "warden-audit-test"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    httpx.put(f"{endpoint}/{BUCKET}").raise_for_status()
    try:
        yield endpoint
    finally:
        server.stop()


def s3_store(endpoint: str) -> S3BodyStore:
    return S3BodyStore(endpoint, BUCKET, "eu-west-1", "AKIAEXAMPLEEXAMPLE00", "secret/example", prefix="audit/")


def test_keys_are_date_prefixed() -> None:
    assert offload_key("abc", 1_800_000_000.0, "request") == "2027/01/15/abc.request"


async def test_s3_round_trip_and_delete(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint)
    body = ("é" * 100_000).encode()
    try:
        await store.put("2026/11/26/e1.request", body)
        assert await store.get("2026/11/26/e1.request") == body
        async with httpx.AsyncClient() as client:
            listing = (await client.get(f"{s3_endpoint}/{BUCKET}", params={"prefix": "audit/2026/11/26/"})).text
        assert "audit/2026/11/26/e1.request" in listing
        await store.put("2026/11/26/e1.request", body)  # a replay writes the same object again
        await store.delete("2026/11/26/e1.request")
        await store.delete("2026/11/26/e1.request")  # already gone: fine
        with pytest.raises(BodyStoreError, match="HTTP 404"):
            await store.get("2026/11/26/e1.request")
    finally:
        await store.aclose()


async def test_s3_unreachable_is_a_body_store_error() -> None:
    store = S3BodyStore("http://127.0.0.1:9", BUCKET, "eu-west-1", "AKIAEXAMPLEEXAMPLE00", "secret", timeout=2)
    with pytest.raises(BodyStoreError, match="ConnectError"):
        await store.put("k", b"x")
    await store.aclose()


async def test_local_round_trip_and_keys_cannot_leave_the_directory(tmp_path: Path) -> None:
    store = LocalBodyStore(tmp_path / "bodies")
    await store.put("2026/11/26/e1.response", b"hello")
    assert (tmp_path / "bodies" / "2026/11/26/e1.response").read_bytes() == b"hello"
    assert await store.get("2026/11/26/e1.response") == b"hello"
    await store.delete("2026/11/26/e1.response")
    with pytest.raises(BodyStoreError, match="missing"):
        await store.get("2026/11/26/e1.response")
    with pytest.raises(BodyStoreError, match="leaves"):
        await store.put("../../etc/x", b"no")
