"""TLS on both listeners (Secure cookies), and graceful shutdown that finishes in-flight requests."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import httpx

from tests.conftest import STRONG_PASSWORD
from tests.interaction.process import WardenProcess, base_env, wait_until
from tests.tls import self_signed


def test_over_tls_the_session_cookie_is_secure(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = base_env(tmp_path / "data", "", WARDEN_SERVER_TLS_CERT_FILE=str(cert), WARDEN_SERVER_TLS_KEY_FILE=str(key))
    del env["WARDEN_DATABASE_URL"]
    trusted = ssl.create_default_context(cafile=str(cert))
    with WardenProcess(env, tmp_path / "warden.log") as warden, httpx.Client(verify=trusted) as client:
        body = {"email": "admin@example.com", "password": STRONG_PASSWORD}
        assert client.post(warden.console + "/api/setup", json=body).status_code == 201
        login = client.post(warden.console + "/api/auth/login", json=body)
        session = next(c for c in login.headers.get_list("set-cookie") if c.startswith("warden_session="))
        assert "Secure" in session and "HttpOnly" in session
        assert client.get(warden.gateway + "/health/ready").status_code == 200
        assert "strict-transport-security" in client.get(warden.console + "/login").headers


def test_sigterm_lets_an_in_flight_request_finish_then_exits(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", "")
    del env["WARDEN_DATABASE_URL"]
    log = tmp_path / "warden.log"
    warden = WardenProcess(env, log).start()
    body = json.dumps({"email": "nobody@example.com", "password": "whatever-123"}).encode()
    head = (f"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    port = int(env["WARDEN_SERVER_CONSOLE_PORT"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(head + body[:10])  # the request is now in flight, waiting for the rest of its body
            assert warden.process is not None
            warden.process.terminate()
            assert wait_until(lambda: b"draining" in log.read_bytes(), 5)
            conn.sendall(body[10:])
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 401"), response[:200]
        assert warden.process.wait(20) == 0
    finally:
        warden.stop()
