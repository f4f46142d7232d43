"""The MCP Store's API: templates listed in both languages, and the definition one makes from the installer's
inputs, which the server registration endpoint accepts as it is."""

from __future__ import annotations

from typing import Any

import httpx

from broker.mcp.store_templates import load_templates
from console.schemas import CreateMcpServer
from tests.conftest import STRONG_PASSWORD
from tests.console.conftest import sign_in
from tests.console.test_management_api import create


async def test_templates_are_listed_with_both_languages(admin: httpx.AsyncClient) -> None:
    answer = await admin.get("/api/store/templates")
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [t["id"] for t in items] == [t.id for t in load_templates()]
    github = next(t for t in items if t["id"] == "github")
    assert github["name"] == {"en": "GitHub", "zh": "GitHub"} and github["description"]["zh"]


async def test_a_template_makes_a_definition_the_registration_accepts(admin: httpx.AsyncClient) -> None:
    answer = await admin.post("/api/store/templates/filesystem/definition",
                              json={"name": "files", "inputs": {"directory": "/srv/agent-files"}})
    assert answer.status_code == 200, answer.text
    definition = answer.json()
    assert definition["args"][-1] == "/srv/agent-files" and definition["transport"] == "stdio"
    CreateMcpServer.model_validate(definition)

    remote = (await admin.post("/api/store/templates/linear/definition", json={"name": "linear-work"})).json()
    assert remote["url"] == "https://mcp.linear.app/mcp"
    assert remote["auth"]["mode"] == "oauth" and remote["auth"]["ownership"] == "per_user"
    CreateMcpServer.model_validate(remote)


async def test_bad_install_input_is_named(admin: httpx.AsyncClient) -> None:
    missing = await admin.post("/api/store/templates/filesystem/definition", json={"name": "files"})
    assert missing.status_code == 422
    assert [f["field"] for f in missing.json()["error"]["fields"]] == ["inputs.directory"]
    bad_name = await admin.post("/api/store/templates/time/definition", json={"name": "my__time"})
    assert bad_name.status_code == 422 and bad_name.json()["error"]["fields"][0]["field"] == "name"
    unknown = await admin.post("/api/store/templates/nope/definition", json={"name": "x"})
    assert unknown.status_code == 404


async def test_reading_templates_needs_mcp_servers_read_and_making_one_manage(admin: httpx.AsyncClient,
                                                                            console: httpx.AsyncClient) -> None:
    roles = (await admin.get("/api/roles")).json()["items"]
    viewer = next(r["id"] for r in roles if r["name"] == "viewer")
    await create(admin, "/api/users", {"email": "v@example.com", "password": STRONG_PASSWORD, "roles": [viewer]})
    async with httpx.AsyncClient(transport=console._transport, base_url=str(console.base_url)) as other:
        await sign_in(other, "v@example.com")
        assert (await other.get("/api/store/templates")).status_code == 200
        refused = await other.post("/api/store/templates/time/definition", json={"name": "t"})
        assert refused.status_code == 403


def private_template(template_id: str = "acme-wiki") -> dict[str, Any]:
    return {
        "id": template_id, "name": {"en": "ACME wiki", "zh": "ACME 知识库"},
        "description": {"en": "Our wiki's MCP server.", "zh": "我们知识库的 MCP 服务器。"},
        "notes": {"en": "Each person signs in with their own wiki account.", "zh": "每个人用自己的知识库账户登录。"},
        "category": "productivity", "icon": {"glyph": "W", "color": "#335577"},
        "transport": "streamable_http", "url": "https://wiki.acme.example/{space}/mcp",
        "auth": {"mode": "oauth", "ownership": "per_user", "scopes": ["wiki.read"]},
        "inputs": [{"name": "space", "label": {"en": "Space", "zh": "空间"}, "example": "eng"}],
    }


async def test_admins_add_private_templates_validated_like_the_shipped_ones(admin: httpx.AsyncClient) -> None:
    untranslated = private_template()
    del untranslated["name"]["zh"]
    refused = await admin.post("/api/store/templates", json={"template": untranslated})
    assert refused.status_code == 422 and refused.json()["error"]["fields"][0]["field"] == "template.name", refused.text
    unused = private_template()
    unused["url"] = "https://wiki.acme.example/mcp"
    refused = await admin.post("/api/store/templates", json={"template": unused})
    assert refused.json()["error"]["fields"] == [{"field": "template.inputs",
                                                  "message": "space is declared but never used"}]
    taken = await admin.post("/api/store/templates", json={"template": private_template("github")})
    assert taken.status_code == 409
    assert [t["id"] for t in (await admin.get("/api/store/templates")).json()["items"] if t["private"]] == []

    added = await admin.post("/api/store/templates", json={"template": private_template()})
    assert added.status_code == 201 and added.json()["private"] is True
    listed = (await admin.get("/api/store/templates")).json()["items"]
    assert listed[-1]["id"] == "acme-wiki" and listed[-1]["private"] and not listed[0]["private"]
    assert (await admin.post("/api/store/templates", json={"template": private_template()})).status_code == 409

    made = await admin.post("/api/store/templates/acme-wiki/definition",
                            json={"name": "wiki-eng", "inputs": {"space": "eng"}, "label": " ACME wiki (eng) "})
    assert made.json()["url"] == "https://wiki.acme.example/eng/mcp"
    assert (made.json()["label"], made.json()["template"]) == ("ACME wiki (eng)", "acme-wiki")

    assert (await admin.delete("/api/store/templates/github")).status_code == 409
    assert (await admin.delete("/api/store/templates/acme-wiki")).status_code == 204
    assert (await admin.delete("/api/store/templates/acme-wiki")).status_code == 404


async def test_two_installs_of_one_template_carry_their_labels(admin: httpx.AsyncClient) -> None:
    for name, label in (("time-work", "Time (work)"), ("time-home", "")):
        definition = (await admin.post("/api/store/templates/time/definition",
                                       json={"name": name, "label": label})).json()
        assert (await admin.post("/api/mcp/servers", json={**definition, "enabled": False})).status_code == 201
    servers = {s["name"]: s for s in (await admin.get("/api/mcp/servers")).json()["items"]}
    assert (servers["time-work"]["label"], servers["time-work"]["template"]) == ("Time (work)", "time")
    assert servers["time-home"]["label"] == "time-home"  # no label: the name
    renamed = await admin.patch("/api/mcp/servers/time-home", json={"label": "Time (home)"})
    assert renamed.status_code == 200 and renamed.json()["label"] == "Time (home)"
    assert (await admin.get("/api/mcp/servers/time-home")).json()["label"] == "Time (home)"
