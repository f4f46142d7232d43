"""The MCP Store's API: the shipped templates and those admins added, and the server definition one becomes with
the installer's inputs and label (what the registration wizard starts from; nothing is saved until the server is
registered)."""

from __future__ import annotations

from typing import Any

from broker.kernel.errors import NotFound
from broker.kernel.identity.service import require
from broker.mcp.store_templates import StoreTemplates
from console.endpoints import ApiRoute, Call
from console.schemas import PrivateTemplateBody, TemplateDefinitionBody


class StoreRoutes:
    def __init__(self, templates: StoreTemplates) -> None:
        self._templates = templates

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/store/templates", self.index, "MCP Store templates, texts in English and Chinese;"
                     " `private` marks those admins added (mcp_servers:read)", "mcp"),
            ApiRoute("POST", "/api/store/templates", self.add, "Add a private template (`{\"template\": {...}}`),"
                     " validated like the shipped ones; refused problems are named by their place in the document"
                     " (mcp_servers:manage)", "mcp", body=PrivateTemplateBody, status=201),
            ApiRoute("DELETE", "/api/store/templates/{template_id}", self.delete, "Remove a private template;"
                     " servers installed from it stay (mcp_servers:manage)", "mcp", status=204),
            ApiRoute("POST", "/api/store/templates/{template_id}/definition", self.definition,
                     "The server definition a template makes with these inputs and display label, to register with"
                     " POST /api/mcp/servers (mcp_servers:manage)", "mcp", body=TemplateDefinitionBody),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:read")
        return {"items": [{**template.data, "private": private} for template, private in await self._templates.all()]}

    async def add(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        body: PrivateTemplateBody = call.body
        template = await self._templates.add(body.template, call.user_id)
        return {**template.data, "private": True}

    async def delete(self, call: Call) -> None:
        require(call.actor, "mcp_servers:manage")
        await self._templates.delete(call.path("template_id"))

    async def definition(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        template = await self._templates.get(call.path("template_id"))
        if template is None:
            raise NotFound(f"no store template {call.path('template_id')!r}")
        body: TemplateDefinitionBody = call.body
        server = template.server(body.name, body.inputs)
        return {**server.model_dump(mode="json", include={"name", "transport", "command", "args", "env", "url", "auth"},
                                    exclude_none=True), "label": body.label.strip(), "template": template.id}
