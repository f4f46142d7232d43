from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD, FakeClock, asgi_client
from tests.console.conftest import sign_in


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_end_to_end_team_role_user_key_then_revoke(admin: httpx.AsyncClient,
                                                         gateway: httpx.AsyncClient) -> None:
    team = await create(admin, "/api/teams", {"name": "platform"})
    role = await create(admin, "/api/roles", {"name": "key-issuer", "permissions": ["keys:create", "teams:read"]})
    user = await create(admin, "/api/users", {"email": "dev@example.com", "name": "Dev", "password": STRONG_PASSWORD,
                                              "roles": [role["id"]]})
    assert (await admin.put(f"/api/teams/{team['id']}/members/{user['id']}")).status_code == 204
    members = (await admin.get(f"/api/teams/{team['id']}/members")).json()["items"]
    assert [m["email"] for m in members] == ["dev@example.com"]

    key = await create(admin, "/api/keys", {"name": "dev-laptop", "owner_user_id": user["id"], "surfaces": ["ai"]})
    assert key["secret"].startswith("wdn_") and key["state"] == "active"
    listed = (await admin.get(f"/api/keys/{key['id']}")).json()
    assert "secret" not in listed

    assert (await gateway.get("/v1/models", headers=bearer(key["secret"]))).status_code == 200
    assert (await admin.post(f"/api/keys/{key['id']}/revoke")).status_code == 200
    revoked = await gateway.get("/v1/models", headers=bearer(key["secret"]))
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "invalid_api_key"  # /v1 answers in OpenAI's shape


async def test_rotation_grace_period_is_honoured(admin: httpx.AsyncClient, gateway: httpx.AsyncClient,
                                                 clock: FakeClock) -> None:
    key = await create(admin, "/api/keys", {"name": "ci", "surfaces": ["ai"]})
    successor = await create(admin, f"/api/keys/{key['id']}/rotate", {"grace_hours": 1})
    assert successor["rotated_from"] == key["id"] and successor["secret"] != key["secret"]
    assert (await gateway.get("/v1/models", headers=bearer(key["secret"]))).status_code == 200
    clock.advance(3601)
    assert (await gateway.get("/v1/models", headers=bearer(key["secret"]))).status_code == 401
    assert (await gateway.get("/v1/models", headers=bearer(successor["secret"]))).status_code == 200
    old = (await admin.get(f"/api/keys/{key['id']}")).json()
    assert old["state"] == "rotated" and old["rotated_to"] == successor["id"]


async def test_rotate_without_a_body_uses_the_configured_grace(admin: httpx.AsyncClient) -> None:
    key = await create(admin, "/api/keys", {"name": "ci"})
    response = await admin.post(f"/api/keys/{key['id']}/rotate")
    assert response.status_code == 201
    assert (await admin.get(f"/api/keys/{key['id']}")).json()["state"] == "rotating"


async def test_key_without_the_surface_is_403_and_unknown_key_401(admin: httpx.AsyncClient,
                                                                  gateway: httpx.AsyncClient) -> None:
    key = await create(admin, "/api/keys", {"name": "mcp-only", "surfaces": ["mcp"]})
    response = await gateway.get("/v1/models", headers=bearer(key["secret"]))
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    unknown = await gateway.get("/v1/models", headers=bearer("wdn_" + "z" * 43))
    assert unknown.status_code == 401 and "www-authenticate" in unknown.headers
    missing = await gateway.get("/v1/models")
    assert missing.status_code == 401


async def test_expired_key_is_401(admin: httpx.AsyncClient, gateway: httpx.AsyncClient, clock: FakeClock) -> None:
    key = await create(admin, "/api/keys", {"name": "short", "surfaces": ["ai"], "expires_in_days": 1})
    clock.advance(86401)
    assert (await gateway.get("/v1/models", headers=bearer(key["secret"]))).status_code == 401


async def test_management_key_drives_the_api_without_csrf(admin: httpx.AsyncClient, warden: Any) -> None:
    key = await create(admin, "/api/keys", {"name": "automation", "surfaces": ["management"]})
    async with asgi_client(warden.console, "http://console.test") as robot:
        robot.headers.update(bearer(key["secret"]))
        assert (await robot.get("/api/users")).status_code == 200
        assert (await robot.post("/api/teams", json={"name": "robots"})).status_code == 201
    ai_key = await create(admin, "/api/keys", {"name": "ai", "surfaces": ["ai"]})
    async with asgi_client(warden.console, "http://console.test") as wrong:
        wrong.headers.update(bearer(ai_key["secret"]))
        assert (await wrong.get("/api/users")).status_code == 403


@pytest.mark.parametrize(("body", "fields"), [
    ({"email": "not-an-email"}, ["email"]),
    ({"email": "x@example.com", "surprise": 1}, ["surprise"]),
    ({"name": 5}, ["email", "name"]),
])
async def test_invalid_fields_are_422_naming_each(admin: httpx.AsyncClient, body: dict[str, Any],
                                                  fields: list[str]) -> None:
    response = await admin.post("/api/users", json=body)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == fields


async def test_malformed_json_is_422_naming_the_body(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/api/teams", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "body"
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    form = await admin.post("/api/teams", content=b"name=x", headers=form_type)
    assert form.status_code == 422


async def test_key_with_unknown_surface_is_422(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/api/keys", json={"name": "k", "surfaces": ["ai", "telepathy"]})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"].startswith("surfaces")


async def test_permissions_are_enforced_per_role(admin: httpx.AsyncClient, console: httpx.AsyncClient) -> None:
    viewer = await create(admin, "/api/users", {"email": "view@example.com", "password": STRONG_PASSWORD,
                                                "roles": ["viewer"]})
    await admin.post("/api/auth/logout")
    await sign_in(console, "view@example.com")
    assert (await console.get("/api/users")).status_code == 200
    assert (await console.post("/api/users", json={"email": "x@example.com"})).status_code == 403
    assert (await console.post("/api/keys", json={"name": "mine"})).status_code == 403
    me = (await console.get(f"/api/users/{viewer['id']}")).json()
    assert me["email"] == "view@example.com"


async def test_team_manager_manages_only_their_team(admin: httpx.AsyncClient, console: httpx.AsyncClient) -> None:
    mine = await create(admin, "/api/teams", {"name": "mine"})
    other = await create(admin, "/api/teams", {"name": "other"})
    manager = await create(admin, "/api/users", {"email": "tm@example.com", "password": STRONG_PASSWORD})
    member = await create(admin, "/api/users", {"email": "m@example.com"})
    assigned = await admin.post(f"/api/users/{manager['id']}/roles",
                                json={"role_id": "team_manager", "team_id": mine["id"]})
    assert assigned.status_code == 201
    await admin.post("/api/auth/logout")
    await sign_in(console, "tm@example.com")
    assert (await console.put(f"/api/teams/{mine['id']}/members/{member['id']}")).status_code == 204
    assert (await console.put(f"/api/teams/{other['id']}/members/{member['id']}")).status_code == 403
    team_key = await console.post("/api/keys", json={"name": "team", "owner_team_id": mine["id"]})
    assert team_key.status_code == 201
    assert (await console.post("/api/keys", json={"name": "t", "owner_team_id": other["id"]})).status_code == 403


async def test_only_super_admin_can_grant_super_admin(admin: httpx.AsyncClient, console: httpx.AsyncClient) -> None:
    await create(admin, "/api/users", {"email": "adm@example.com", "password": STRONG_PASSWORD, "roles": ["admin"]})
    target = await create(admin, "/api/users", {"email": "t@example.com"})
    await admin.post("/api/auth/logout")
    await sign_in(console, "adm@example.com")
    response = await console.post(f"/api/users/{target['id']}/roles", json={"role_id": "super_admin"})
    assert response.status_code == 403
    assert (await console.post(f"/api/users/{target['id']}/roles", json={"role_id": "developer"})).status_code == 201


async def test_role_history_export_and_clone(admin: httpx.AsyncClient) -> None:
    role = await create(admin, "/api/roles", {"name": "auditor", "permissions": ["audit:read"]})
    patched = await admin.patch(f"/api/roles/{role['id']}", json={"permissions": ["audit:read", "audit:read_bodies"]})
    assert patched.status_code == 200
    clone = await create(admin, "/api/roles/admin/clone", {"name": "almost-admin"})
    assert "roles:manage" in clone["permissions"] and not clone["builtin"]
    history = (await admin.get("/api/roles/history")).json()["items"]
    assert {h["action"] for h in history} >= {"role.create", "role.update"}
    exported = (await admin.get("/api/roles/export")).json()
    assert {r["name"] for r in exported["roles"]} == {"auditor", "almost-admin"}
    imported = await admin.post("/api/roles/import", json=exported)
    assert imported.status_code == 200 and imported.json()["roles_updated"] == 2
    assert (await admin.patch("/api/roles/admin", json={"description": "x"})).status_code == 409


async def test_deleted_user_loses_keys_and_cannot_sign_in(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    user = await create(admin, "/api/users", {"email": "leaver@example.com", "password": STRONG_PASSWORD})
    key = await create(admin, "/api/keys", {"name": "k", "owner_user_id": user["id"], "surfaces": ["ai"]})
    assert (await gateway.get("/v1/models", headers=bearer(key["secret"]))).status_code == 200
    assert (await admin.delete(f"/api/users/{user['id']}")).status_code == 204
    assert (await gateway.get("/v1/models", headers=bearer(key["secret"]))).status_code == 401
    assert (await admin.get(f"/api/users/{user['id']}")).status_code == 404
    login = await admin.post("/api/auth/login", json={"email": "leaver@example.com", "password": STRONG_PASSWORD})
    assert login.status_code == 401


async def test_paging_parameters_are_validated(admin: httpx.AsyncClient) -> None:
    assert (await admin.get("/api/users?limit=0")).status_code == 422
    assert (await admin.get("/api/users?limit=abc")).status_code == 422
    page = await admin.get("/api/users?limit=1")
    assert page.status_code == 200 and len(page.json()["items"]) == 1


async def test_openapi_document_lists_every_operation(admin: httpx.AsyncClient) -> None:
    document = (await admin.get("/api/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    assert {"get", "post"} <= set(document["paths"]["/api/keys"])
    assert "CreateKey" in document["components"]["schemas"]
    assert document["paths"]["/api/setup"]["post"]["security"] == []


async def test_changing_ones_own_password_needs_the_current_one_and_ends_other_sessions(
        admin: httpx.AsyncClient, warden: Any) -> None:
    me = (await admin.get("/api/auth/me")).json()["user"]
    async with asgi_client(warden.console, "http://console.test") as other:
        await sign_in(other)
        new = "another strong 7 pass"
        wrong = await admin.patch(f"/api/users/{me['id']}", json={"password": new, "current_password": "nope"})
        assert wrong.status_code == 422 and wrong.json()["error"]["fields"][0]["field"] == "current_password"
        missing = await admin.patch(f"/api/users/{me['id']}", json={"password": new})
        assert missing.status_code == 422
        ok = await admin.patch(f"/api/users/{me['id']}", json={"password": new, "current_password": STRONG_PASSWORD})
        assert ok.status_code == 200
        assert (await admin.get("/api/auth/me")).status_code == 200  # this session survives
        assert (await other.get("/api/auth/me")).status_code == 401  # the other one ended


async def test_admin_resets_another_users_password_without_the_current_one(admin: httpx.AsyncClient) -> None:
    user = await create(admin, "/api/users", {"email": "reset@example.com", "password": STRONG_PASSWORD})
    response = await admin.patch(f"/api/users/{user['id']}", json={"password": "brand new 5 password"})
    assert response.status_code == 200


async def test_openapi_document_is_valid_openapi_3_1(console: httpx.AsyncClient) -> None:
    from openapi_spec_validator import validate

    validate((await console.get("/api/openapi.json")).json())


@pytest.mark.parametrize("document", [
    {"format": "warden.roles/v1", "roles": [{}]},
    {"format": "warden.roles/v1", "assignments": [{"email": "a@example.com"}]},
    {"format": "warden.roles/v1", "roles": [{"name": "x", "permissions": ["nope"]}]},
    {"format": "other"},
])
async def test_malformed_role_documents_are_422(admin: httpx.AsyncClient, document: dict[str, Any]) -> None:
    response = await admin.post("/api/roles/import", json=document)
    assert response.status_code == 422
    assert response.json()["error"]["fields"]


async def test_texts_no_store_keeps_are_refused_with_their_place(admin: httpx.AsyncClient, database_url: str) -> None:
    """NUL (PostgreSQL's text cannot hold it) and lone surrogates (not UTF-8) in a body: 422 naming the field,
    whichever store; in a query parameter, as far as the database: 422 on PostgreSQL (it was a 500)."""
    json_type = {"content-type": "application/json"}
    response = await admin.post("/api/teams", content=b'{"name": "a\\u0000b"}', headers=json_type)
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"field": "name", "message": "holds NUL (\\u0000)"}]
    response = await admin.post("/api/roles", headers=json_type,
                                content=b'{"name": "r", "permissions": [], "description": "x\\ud800"}')
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"field": "description",
                                                   "message": "holds a lone surrogate (not UTF-8)"}]
    response = await admin.post("/api/roles", headers=json_type, content=b'{"\\u0000": 1}')
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == "\\x00"
    assert (await admin.get("/api/teams")).json()["items"] == []  # nothing was stored
    response = await admin.get("/api/mcp/calls", params={"server": "a\x00b"})
    assert response.status_code == (422 if database_url.startswith("postgresql") else 200), response.text
    assert response.status_code == 200 or response.json()["error"]["code"] == "invalid_input"
