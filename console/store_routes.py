"""The MCP Store's API: the shipped templates, and the server definition one becomes with the installer's
inputs (what the registration wizard starts from; nothing is saved until the server is registered)."""

from __future__ import annotations

from typing import Any

from broker.kernel.errors import NotFound
from broker.kernel.identity.service import require
from broker.mcp.store_templates import StoreTemplate
from console.endpoints import ApiRoute, Call
from console.schemas import TemplateDefinitionBody


class StoreRoutes:
    def __init__(self, templates: list[StoreTemplate]) -> None:
        self._templates = {template.id: template for template in templates}

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/store/templates", self.index, "MCP Store templates, texts in English and Chinese"
                     " (mcp_servers:read)", "mcp"),
            ApiRoute("POST", "/api/store/templates/{template_id}/definition", self.definition,
                     "The server definition a template makes with these inputs, to register with POST"
                     " /api/mcp/servers (mcp_servers:manage)", "mcp", body=TemplateDefinitionBody),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:read")
        return {"items": [dict(template.data) for template in self._templates.values()]}

    async def definition(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        template = self._templates.get(call.path("template_id"))
        if template is None:
            raise NotFound(f"no store template {call.path('template_id')!r}")
        body: TemplateDefinitionBody = call.body
        server = template.server(body.name, body.inputs)
        return server.model_dump(mode="json", include={"name", "transport", "command", "args", "env", "url", "auth"},
                                 exclude_none=True)
