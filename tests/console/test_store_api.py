"""The MCP Store's API: templates listed in both languages, and the definition one makes from the installer's
inputs, which the server registration endpoint accepts as it is."""

from __future__ import annotations

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
