from __future__ import annotations

import httpx

from tests.conftest import STRONG_PASSWORD
from tests.console.conftest import ADMIN_EMAIL


async def test_setup_is_offered_until_an_admin_exists_then_refused(console: httpx.AsyncClient) -> None:
    assert (await console.get("/api/setup")).json() == {"required": True}
    page = await console.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/setup"
    body = {"email": ADMIN_EMAIL, "name": "Admin", "password": STRONG_PASSWORD}
    assert (await console.post("/api/setup", json=body)).status_code == 201
    again = await console.post("/api/setup", json={**body, "email": "other@example.com"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert (await console.get("/api/setup")).json() == {"required": False}
    assert (await console.get("/setup", follow_redirects=False)).headers["location"] == "/login"


async def test_setup_with_a_weak_password_names_the_field(console: httpx.AsyncClient) -> None:
    response = await console.post("/api/setup", json={"email": ADMIN_EMAIL, "password": "short"})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["password"]
    assert (await console.get("/api/setup")).json() == {"required": True}


async def test_login_sets_strict_httponly_cookie_and_me_works(admin: httpx.AsyncClient) -> None:
    await admin.post("/api/auth/logout")
    response = await admin.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": STRONG_PASSWORD})
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("warden_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Secure" not in session
    me = await admin.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["permissions"] == ["*"]


async def test_state_changing_request_without_csrf_header_is_refused(admin: httpx.AsyncClient) -> None:
    del admin.headers["x-csrf-token"]
    response = await admin.post("/api/teams", json={"name": "x"})
    assert response.status_code == 403
    admin.headers["x-csrf-token"] = "wrong"
    assert (await admin.post("/api/teams", json={"name": "x"})).status_code == 403


async def test_logout_ends_the_session(admin: httpx.AsyncClient) -> None:
    assert (await admin.post("/api/auth/logout")).status_code == 204
    assert (await admin.get("/api/auth/me")).status_code == 401


async def test_repeated_failed_logins_lock_out_with_retry_after(admin: httpx.AsyncClient) -> None:
    for _ in range(5):
        response = await admin.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": "nope"})
        assert response.status_code == 401
    locked = await admin.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": STRONG_PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0


async def test_console_sends_security_headers(console: httpx.AsyncClient) -> None:
    for path in ("/login", "/api/setup", "/static/console.js"):
        response = await console.get(path, follow_redirects=False)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
    assert (await console.get("/api/setup")).headers["cache-control"] == "no-store"


async def test_unauthenticated_api_call_is_401_json(console: httpx.AsyncClient) -> None:
    response = await console.get("/api/users")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_unknown_api_path_is_404_json(console: httpx.AsyncClient) -> None:
    response = await console.get("/api/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


async def test_setup_claims_a_passwordless_owner_declared_in_the_config(console: httpx.AsyncClient,
                                                                        warden: object) -> None:
    owner = await warden.identity.users.create(ADMIN_EMAIL)  # type: ignore[attr-defined]
    body = {"email": ADMIN_EMAIL, "name": "Admin", "password": STRONG_PASSWORD}
    response = await console.post("/api/setup", json=body)
    assert response.status_code == 201 and response.json()["user"]["id"] == owner.id
    login = await console.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": STRONG_PASSWORD})
    assert login.status_code == 200


async def test_state_dependent_pages_are_never_cached(console: httpx.AsyncClient) -> None:
    for path in ("/", "/setup", "/login"):
        response = await console.get(path, follow_redirects=False)
        assert response.headers["cache-control"] == "no-store"
