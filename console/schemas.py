"""Request bodies of the management API, validated at the edge (unknown fields are refused)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from broker.config import McpAuthConfig, RouteConfig

SurfaceName = Literal["ai", "mcp", "management"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SetupBody(_Body):
    email: EmailStr
    name: str = Field("", max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class LoginBody(_Body):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class CreateUser(_Body):
    email: EmailStr
    name: str = Field("", max_length=200)
    password: str | None = Field(None, max_length=1024)
    roles: list[str] = Field(default_factory=list, description="role ids to assign globally")


class UpdateUser(_Body):
    email: EmailStr | None = None
    name: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=1024)
    current_password: str | None = Field(None, max_length=1024,
                                         description="required when changing one's own password")
    disabled: bool | None = None


class CreateTeam(_Body):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=1000)


class UpdateTeam(_Body):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=1000)


class CreateRole(_Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    description: str = Field("", max_length=1000)
    permissions: list[str] = Field(min_length=1)


class UpdateRole(_Body):
    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    description: str | None = Field(None, max_length=1000)
    permissions: list[str] | None = Field(None, min_length=1)


class CloneRole(_Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")


class AssignRole(_Body):
    role_id: str = Field(min_length=1)
    team_id: str | None = None


class RoleSpec(_Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    description: str = Field("", max_length=1000)
    permissions: list[str] = Field(min_length=1)


class AssignmentSpec(_Body):
    email: str = Field(min_length=3, max_length=320)
    role: str = Field(min_length=1)
    team: str | None = None


class RolesDocument(_Body):
    format: str
    roles: list[RoleSpec] = Field(default_factory=list)
    assignments: list[AssignmentSpec] = Field(default_factory=list)


def _default_surfaces() -> list[SurfaceName]:
    return ["ai", "mcp"]


class CreateKey(_Body):
    name: str = Field(min_length=1, max_length=100)
    owner_user_id: str | None = Field(None, description="defaults to the caller when no team is given")
    owner_team_id: str | None = None
    surfaces: list[SurfaceName] = Field(default_factory=_default_surfaces, min_length=1)
    allowed_models: list[str] | None = None
    expires_in_days: float | None = Field(None, gt=0, le=3650)
    pinned_accounts: dict[str, str] = Field(default_factory=dict, description=(
        "upstream server -> account label: the key's calls to that server use that linked account only"))


class RotateKey(_Body):
    grace_hours: float | None = Field(None, ge=0, le=24 * 90)


SubjectKindName = Literal["api_key", "user", "team", "provider", "model", "mcp_server", "tool"]


class CreateQuotaRule(_Body):
    subject_kind: SubjectKindName
    subject_id: str = Field(min_length=1, max_length=200, description="an id, or * for every subject of the kind")
    metric: Literal["requests", "tokens", "usd"]
    window: Literal["1m", "5m", "1h", "5h", "1d", "1w"] | None = None
    period: Literal["daily", "weekly", "monthly"] | None = None
    limit: float = Field(gt=0)
    surface: Literal["ai", "mcp", "both"] = "both"
    enabled: bool = True
    precheck: bool = Field(False, description="refuse up front when the pre-call estimate cannot fit")


class UpdateQuotaRule(_Body):
    limit: float | None = Field(None, gt=0)
    enabled: bool | None = None
    precheck: bool | None = None
    surface: Literal["ai", "mcp", "both"] | None = None


class ToolOptionsBody(_Body):
    cache_ttl_seconds: float = Field(0.0, ge=0, le=86_400, description="cache successful results this long; 0: off")
    requires_user_credential: bool = Field(False, description="calls need the caller's own credential")


class CreateMcpServer(_Body):
    name: str = Field(min_length=1, max_length=40, description="also the prefix of its tools: name__tool")
    label: str = Field("", max_length=80, description="how people see it, e.g. GitHub (work); empty: the name")
    template: str | None = Field(None, max_length=64, description="the MCP Store template it is installed from")
    transport: Literal["stdio", "streamable_http", "sse"]
    command: str | None = Field(None, max_length=1000)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="stored encrypted; never returned")
    url: str | None = Field(None, max_length=2000)
    timeout_seconds: float = Field(60.0, gt=0, le=3600)
    enabled: bool = True
    tool_options: dict[str, ToolOptionsBody] = Field(
        default_factory=dict, description="per tool name, or * for every tool of the server")
    auth: McpAuthConfig = Field(default_factory=McpAuthConfig, description=(
        "how Warden authenticates to the server; secret and client_secret are stored encrypted, never returned"))


class ProbeUpstreamBody(_Body):
    transport: Literal["stdio", "streamable_http", "sse"]
    url: str | None = Field(None, max_length=2000)
    command: str | None = Field(None, max_length=1000)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="used for this probe only; never stored")
    token: str | None = Field(None, max_length=10_000, description="a credential to try; used once, never stored")
    header: str = Field("Authorization", pattern=r"^[A-Za-z0-9-]{1,64}$")
    template: str = Field("Bearer {token}", pattern=r"\{token\}")
    timeout_seconds: float = Field(15.0, gt=0, le=60)


class TemplateDefinitionBody(_Body):
    name: str = Field(min_length=1, max_length=40, description="the server's name, also its tools' prefix")
    inputs: dict[str, str] = Field(default_factory=dict, description="the template's inputs by name")
    label: str = Field("", max_length=80, description="how people see the install, e.g. GitHub (work)")


class PrivateTemplateBody(_Body):
    template: dict[str, Any] = Field(description="a template document, as store_templates/schema.json describes")


class UpdateMcpServer(_Body):
    label: str | None = Field(None, max_length=80)
    command: str | None = Field(None, max_length=1000)
    args: list[str] | None = None
    env: dict[str, str] | None = None
    url: str | None = Field(None, max_length=2000)
    timeout_seconds: float | None = Field(None, gt=0, le=3600)
    enabled: bool | None = None
    tool_options: dict[str, ToolOptionsBody] | None = None
    auth: McpAuthConfig | None = Field(None, description="replaces the auth block; omitted secrets are kept")


class VirtualToolBody(_Body):
    tool: str = Field(min_length=4, max_length=300, description="the upstream tool, server__tool")
    name: str | None = Field(None, max_length=128, description="shown name; default the upstream tool's name")
    description: str | None = Field(None, max_length=4000, description="shown description; default the upstream's")


class CreateVirtualServer(_Body):
    name: str = Field(min_length=1, max_length=40, description="served at /mcp/<name>")
    description: str = Field("", max_length=2000)
    tools: list[VirtualToolBody] = Field(min_length=1, max_length=500)


class ReplaceVirtualServer(_Body):
    description: str = Field("", max_length=2000)
    tools: list[VirtualToolBody] = Field(min_length=1, max_length=500)


class CreateAccessRule(_Body):
    subject_kind: Literal["role", "team", "user", "api_key"]
    subject_id: str = Field(min_length=1, max_length=200)
    pattern: str = Field(min_length=1, max_length=300, description="server__tool, server__* or *")


class UpdateAiProvider(_Body):
    base_url: str | None = Field(None, max_length=2000)
    api_key: str | None = Field(None, max_length=10_000, description="stored encrypted; never returned")
    timeout_seconds: float | None = Field(None, gt=0, le=3600)
    api_version: str | None = Field(None, max_length=40)
    region: str | None = Field(None, max_length=40)
    aws_access_key_id: str | None = Field(None, max_length=200)


class UpdateAiModel(_Body):
    aliases: list[str] | None = None
    routes: list[RouteConfig] | None = Field(None, min_length=1)
    routing: Literal["weighted", "latency", "cost", "balanced"] | None = None
    enabled: bool | None = Field(None, description="the kill switch: false refuses the model at once, everywhere")
    input_weight: float | None = Field(None, ge=0, le=1000)
    output_weight: float | None = Field(None, ge=0, le=1000)
    input_price_per_million: float | None = Field(None, ge=0, le=100_000)
    output_price_per_million: float | None = Field(None, ge=0, le=100_000)
