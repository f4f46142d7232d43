"""Where captured bodies over ``body_max_bytes`` go: an S3-compatible bucket, or a local directory.

Keys are date-prefixed (``2026/11/26/<event id>.<part>``), so a bucket lifecycle rule or a glance at the
directory finds a day's bodies; writing the same key again (a replay) replaces the object with the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import anyio
import httpx

from broker.sigv4 import sigv4_headers


class BodyStoreError(Exception):
    """The offload store refused or could not be reached."""


class BodyStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


class LocalBodyStore:
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def _path(self, key: str) -> Path:
        path = (self._directory / key).resolve()
        if self._directory.resolve() not in path.parents:
            raise BodyStoreError(f"key {key!r} leaves the body directory")
        return path

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = path.with_name(path.name + ".tmp")
            with temporary.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())  # durable before its row says where it is
            os.replace(temporary, path)

        await anyio.to_thread.run_sync(write)

    async def get(self, key: str) -> bytes:
        try:
            return await anyio.to_thread.run_sync(self._path(key).read_bytes)
        except FileNotFoundError as exc:
            raise BodyStoreError(f"offloaded body {key} is missing") from exc

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))

    async def aclose(self) -> None:
        return None


class S3BodyStore:
    """Path-style requests signed with SigV4: AWS S3, MinIO, Ceph, R2 and the like."""

    def __init__(self, endpoint: str | None, bucket: str, region: str, access_key_id: str, secret_access_key: str,
                 prefix: str = "", timeout: float = 30.0) -> None:
        self._base = f"{(endpoint or f'https://s3.{region}.amazonaws.com').rstrip('/')}/{bucket}/"
        self._region = region
        self._credentials = (access_key_id, secret_access_key)
        self._prefix = prefix
        self._client = httpx.AsyncClient(timeout=timeout)

    async def put(self, key: str, data: bytes) -> None:
        await self._send("PUT", key, data)

    async def get(self, key: str) -> bytes:
        return await self._send("GET", key)

    async def delete(self, key: str) -> None:
        await self._send("DELETE", key)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(self, method: str, key: str, body: bytes = b"") -> bytes:
        url = self._base + quote(self._prefix + key)
        headers = sigv4_headers(method, url, {"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}, body,
                                *self._credentials, "s3", self._region)
        try:
            response = await self._client.request(method, url, content=body or None, headers=headers)
        except httpx.HTTPError as exc:
            raise BodyStoreError(f"S3 {method} {key}: {type(exc).__name__}") from exc
        if response.status_code >= 300 and not (method == "DELETE" and response.status_code == 404):
            raise BodyStoreError(f"S3 {method} {key}: HTTP {response.status_code}")
        return response.content


def offload_key(event_id: str, at: float, part: str) -> str:
    """``YYYY/MM/DD/<event id>.<part>`` (UTC)."""
    return time.strftime("%Y/%m/%d/", time.gmtime(at)) + f"{event_id}.{part}"
