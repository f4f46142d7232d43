"""Configuration: defaults, then an optional YAML file, then ``WARDEN_*`` environment variables.

Parsed once into a frozen object. Every bad value becomes a ``ConfigError`` whose single-line message
names the key, the value and what is allowed, so ``warden config check`` and start-up can print it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from broker.kernel.audit.capture_settings import AuditCaptureConfig

Surface = Literal["ai", "mcp", "management"]

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Short names for the variables people set most; every other key is WARDEN_<SECTION>_<FIELD>.
_ENV_ALIASES = {
    "WARDEN_SECRET_KEY": ("security", "secret_key"),
    "WARDEN_SERVER_SECRET": ("security", "server_secret"),
    "WARDEN_METRICS_TOKEN": ("security", "metrics_token"),
}


class ConfigError(Exception):
    """A configuration value is missing, malformed or out of range."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    console_host: str | None = None
    gateway_port: int = Field(3000, ge=0, le=65535)
    console_port: int = Field(3001, ge=0, le=65535)
    data_dir: Path = Path("./data")
    shutdown_grace_seconds: float = Field(10.0, gt=0, le=600)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Proxies whose X-Forwarded-For/-Proto are trusted (client IP, https); empty trusts none.
    forwarded_allow_ips: tuple[str, ...] = ()
    # The console's address as users reach it (behind a proxy, say), for links Warden hands out.
    console_public_url: str | None = None
    # The gateway's address as clients reach it: /mcp's OAuth resource identifier is built from it.
    gateway_public_url: str | None = None

    @property
    def console_bind(self) -> str:
        return self.console_host or self.host

    @property
    def gateway_url(self) -> str:
        if self.gateway_public_url:
            return self.gateway_public_url.rstrip("/")
        scheme = "https" if self.tls_cert_file else "http"
        return f"{scheme}://{self.host}:{self.gateway_port}"

    @property
    def console_url(self) -> str:
        if self.console_public_url:
            return self.console_public_url.rstrip("/")
        scheme = "https" if self.tls_cert_file else "http"
        return f"{scheme}://{self.console_bind}:{self.console_port}"

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {str(path)!r} does not exist")
        return self


class DatabaseConfig(_Section):
    url: str = ""
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120)
    pool_size: int = Field(10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return url


class RedisConfig(_Section):
    url: str | None = None
    timeout_seconds: float = Field(0.5, gt=0, le=30)

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url or None


class OidcConfig(_Section):
    """Console single sign-on with an OpenID Connect provider."""

    issuer: str = Field(pattern=r"^https?://")
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    label: str = "Sign in with single sign-on"
    email_claim: str = "email"
    create_users: bool = False
    groups_claim: str | None = None
    group_roles: dict[str, str] = Field(default_factory=dict)
    group_teams: dict[str, str] = Field(default_factory=dict)


class SecurityConfig(_Section):
    secret_key: str | None = None
    server_secret: str | None = None
    metrics_token: str | None = Field(None, min_length=16)  # GET /metrics answers only with it (404 unset)
    session_ttl_hours: float = Field(12.0, gt=0, le=24 * 30)
    session_bind_ip: bool = False
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    cors_origins: tuple[str, ...] = ()
    password_min_length: int = Field(12, ge=8, le=128)
    login_max_failures: int = Field(5, ge=1, le=100)
    lockout_minutes: float = Field(15.0, gt=0, le=24 * 60)
    # Hosts, addresses or networks (CIDR) Warden may fetch although they are internal (loopback, private,
    # link-local): upstream MCP servers and the OAuth endpoints they lead to are refused there otherwise.
    outbound_allow: tuple[str, ...] = ()
    oidc: OidcConfig | None = None


class ApiKeysConfig(_Section):
    rotation_grace_hours: float = Field(24.0, ge=0, le=24 * 90)
    inactivity_days: int = Field(0, ge=0, le=3650)
    expiry_warning_days: int = Field(7, ge=0, le=365)
    cache_ttl_seconds: float = Field(30.0, ge=0, le=3600)
    purge_after_days: int = Field(30, ge=1, le=3650)
    maintenance_interval_seconds: float = Field(60.0, gt=0, le=86400)


class ProviderConfig(_Section):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    type: Literal["openai", "anthropic", "gemini", "azure_openai", "bedrock", "openai_compatible"]
    base_url: str | None = None
    api_key: str | None = None  # for Bedrock with aws_access_key_id: the secret access key
    timeout_seconds: float = Field(600.0, gt=0, le=3600)  # a whole answer; long generations are normal
    api_version: str = "2024-10-21"  # Azure OpenAI's api-version
    region: str | None = None  # Bedrock's AWS region
    aws_access_key_id: str | None = None  # Bedrock: sign with SigV4 (else api_key is a Bedrock API key)

    @model_validator(mode="after")
    def _reachable(self) -> ProviderConfig:
        if self.type in ("azure_openai", "openai_compatible") and not self.base_url:
            raise ValueError(f"provider {self.name!r}: a {self.type} provider needs base_url")
        if self.type == "bedrock" and not (self.base_url or self.region):
            raise ValueError(f"provider {self.name!r}: a bedrock provider needs region (or base_url)")
        return self


class RouteConfig(_Section):
    provider: str
    weight: int = Field(1, ge=0, le=1000)
    model: str | None = None  # the model's name at this provider (an Azure deployment), if not the model's own
    input_price_per_million: float | None = Field(None, ge=0, le=100_000)  # this peer's prices, if not the model's
    output_price_per_million: float | None = Field(None, ge=0, le=100_000)


class ModelConfig(_Section):
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()  # other names clients may use for this model
    routes: tuple[RouteConfig, ...] = Field(min_length=1)
    routing: Literal["weighted", "latency", "cost", "balanced"] = "weighted"
    enabled: bool = True  # the kill switch: a disabled model is refused at once, on every instance
    input_weight: float = Field(1.0, ge=0, le=1000)
    output_weight: float = Field(1.0, ge=0, le=1000)
    input_price_per_million: float = Field(0.0, ge=0, le=100_000)
    output_price_per_million: float = Field(0.0, ge=0, le=100_000)


class QuotaRuleConfig(_Section):
    subject: str = Field(pattern=r"^(api_key|user|team|provider|model|mcp_server|tool):.+$",
                         description="kind:id, e.g. user:*, user:alice@example.com, team:platform, model:gpt-4o")
    metric: Literal["requests", "tokens", "usd"]
    window: Literal["1m", "5m", "1h", "5h", "1d", "1w"] | None = None
    period: Literal["daily", "weekly", "monthly"] | None = None
    limit: float = Field(gt=0)
    surface: Literal["ai", "mcp", "both"] = "both"
    enabled: bool = True
    precheck: bool = False

    @model_validator(mode="after")
    def _window_or_period(self) -> QuotaRuleConfig:
        if (self.window is None) == (self.period is None):
            raise ValueError("a rule has exactly one of 'window' (rate limit) or 'period' (budget)")
        if self.period is not None and self.metric == "requests":
            raise ValueError("budgets count tokens or usd; use a window to limit requests")
        return self


class WebhookConfig(_Section):
    url: str = Field(pattern=r"^https?://")
    secret: str | None = None


class QuotasConfig(_Section):
    timezone: str = "UTC"
    fail_mode: Literal["open", "closed"] = "open"
    redis_timeout_ms: int = Field(50, ge=5, le=5000)
    alert_thresholds: tuple[float, ...] = (50.0, 80.0, 95.0, 100.0)
    webhooks: tuple[WebhookConfig, ...] = ()
    rules: tuple[QuotaRuleConfig, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as UTC or Europe/Paris") from None
        return zone

    @field_validator("alert_thresholds")
    @classmethod
    def _thresholds(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        return alert_percentages(values)

    def behaviour(self) -> QuotaBehaviourConfig:
        return QuotaBehaviourConfig(fail_mode=self.fail_mode, alert_thresholds=self.alert_thresholds)


def alert_percentages(values: tuple[float, ...]) -> tuple[float, ...]:
    if any(not 0 < v <= 1000 for v in values):
        raise ValueError("thresholds are percentages between 0 and 1000")
    return tuple(sorted(set(values)))


class QuotaBehaviourConfig(_Section):
    """What quotas do when their store fails, and when budget alerts fire: changed in the console at run time
    (the configuration file's ``quotas.fail_mode`` and ``quotas.alert_thresholds`` until then)."""

    fail_mode: Literal["open", "closed"] = "open"
    alert_thresholds: tuple[float, ...] = Field((50.0, 80.0, 95.0, 100.0), max_length=20)

    @field_validator("alert_thresholds")
    @classmethod
    def _thresholds(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        return alert_percentages(values)


class ToolOptionsConfig(_Section):
    cache_ttl_seconds: float = Field(0.0, ge=0, le=86_400)
    requires_user_credential: bool = False


class McpAuthConfig(_Section):
    mode: Literal["none", "static", "oauth", "personal_token"] = "none"
    ownership: Literal["shared", "per_user"] = "shared"
    header: str = Field("Authorization", pattern=r"^[A-Za-z0-9-]{1,64}$")
    template: str = Field("Bearer {token}", pattern=r"\{token\}")
    query_param: str | None = None
    requires_user_auth: bool = False
    secret: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    send_resource: bool = True
    authorization_server: str | None = Field(None, pattern=r"^https?://")


class McpServerConfig(_Section):
    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    label: str = Field("", max_length=80)  # how the console shows it ("GitHub (work)"); empty: the name
    transport: Literal["stdio", "streamable_http", "sse"]
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    timeout_seconds: float = Field(60.0, gt=0, le=3600)
    enabled: bool = True
    tool_options: dict[str, ToolOptionsConfig] = Field(default_factory=dict)
    auth: McpAuthConfig = McpAuthConfig()

    @field_validator("name")
    @classmethod
    def _prefix_separator(cls, name: str) -> str:
        if "__" in name:
            raise ValueError("may not contain '__', which separates the server prefix from tool names")
        return name

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerConfig:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio server needs 'command'")
        if self.transport != "stdio" and not self.url:
            raise ValueError(f"a {self.transport} server needs 'url'")
        return self


class McpAccessRuleConfig(_Section):
    subject: str = Field(pattern=r"^(role|team|user|api_key):.+$",
                         description="role:<id or name>, team:<name>, user:<email>, api_key:<id>")
    pattern: str = Field(pattern=r"^(\*|[a-z0-9][a-z0-9_-]*__(\*|[^\s*]+))$")


class McpConfig(_Section):
    default_access: Literal["allow", "deny"] = "allow"
    allowed_origins: tuple[str, ...] = ()
    access_rules: tuple[McpAccessRuleConfig, ...] = ()
    # Each stateful client session gets its own session to every upstream it uses (a process for stdio);
    # beyond this many per upstream, further clients share the pooled session.
    sessions_per_server: int = Field(50, ge=0, le=10_000)
    # Users' OAuth tokens for upstreams are renewed this long before they expire.
    refresh_ahead_seconds: float = Field(60.0, ge=0, le=3600)


class VirtualToolConfig(_Section):
    tool: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*__\S+$", description="the upstream tool, server__tool")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    description: str | None = None


class VirtualServerConfig(_Section):
    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    tools: tuple[VirtualToolConfig, ...] = Field(min_length=1)


class ApiKeyImport(_Section):
    name: str = Field(min_length=1)
    owner: str = Field(min_length=3)
    secret: str = Field(min_length=36, pattern=r"^wdn_[A-Za-z0-9_-]+$")
    surfaces: tuple[Surface, ...] = ("ai", "mcp")
    allowed_models: tuple[str, ...] | None = None
    pinned_accounts: dict[str, str] = Field(default_factory=dict)


class _AuditChannelConfig(_Section):
    # Names the channel in logs and metrics and its position file in the spool.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    # How far (bytes of spooled events) the channel may fall behind before its oldest events are given up.
    max_lag_bytes: int = Field(256 << 20, ge=16 << 20, le=1 << 40)


class SyslogChannelConfig(_AuditChannelConfig):
    kind: Literal["syslog"]
    url: str = Field(pattern=r"^(udp|tcp|tls)://[^/:]+(:\d+)?/?$")  # the port defaults to 514, 6514 for tls
    facility: int = Field(13, ge=0, le=23)  # 13: log audit
    app_name: str = "warden"
    sd_id: str = Field("warden@32473", pattern=r"^[!#-<>-\\^-~]{1,32}$")  # your own name@<IANA enterprise number>
    ca_file: Path | None = None  # tls: the CA bundle the receiver's certificate is checked against


class WebhookChannelConfig(_AuditChannelConfig):
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: str | None = Field(None, min_length=16)
    timeout_seconds: float = Field(10.0, gt=0, le=120)


class NatsChannelConfig(_AuditChannelConfig):
    kind: Literal["nats"]
    url: str = Field("nats://127.0.0.1:4222", pattern=r"^(nats|tls)://")
    subject: str = Field("warden.audit", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    stream: str | None = Field("WARDEN_AUDIT", pattern=r"^[A-Za-z0-9_-]+$")  # created when missing; None: not


class OtlpChannelConfig(_AuditChannelConfig):
    """Requests exported as OpenTelemetry spans (GenAI semantic conventions) to an OTLP/HTTP collector."""

    kind: Literal["otlp"]
    url: str = Field("http://127.0.0.1:4318/v1/traces", pattern=r"^https?://")  # the full traces endpoint
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. a hosted backend's authorization header
    service_name: str = Field("warden", min_length=1)
    timeout_seconds: float = Field(10.0, gt=0, le=120)


AuditChannelConfig = Annotated[SyslogChannelConfig | WebhookChannelConfig | NatsChannelConfig | OtlpChannelConfig,
                               Field(discriminator="kind")]


class BodyOffloadConfig(_Section):
    """Where bodies over body_max_bytes go: an S3-compatible bucket when ``s3_bucket`` is set, else
    ``directory`` (default ``<data_dir>/audit-bodies``)."""

    directory: Path | None = None
    s3_endpoint: str | None = Field(None, pattern=r"^https?://")  # None: AWS's regional endpoint
    s3_bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_prefix: str = Field("warden-audit/", pattern=r"^[A-Za-z0-9!_.*'()/-]*$")

    @model_validator(mode="after")
    def _credentials(self) -> BodyOffloadConfig:
        if self.s3_bucket and not (self.s3_access_key_id and self.s3_secret_access_key):
            raise ValueError("s3_bucket needs s3_access_key_id and s3_secret_access_key")
        return self


class ClickHouseConfig(_Section):
    """ClickHouse for audit analytics at scale: events are written there as well (by a spool channel named
    ``clickhouse``) and the search and usage API reads from it."""

    url: str = Field(pattern=r"^https?://")  # the HTTP interface, e.g. http://clickhouse:8123
    database: str = Field("warden", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    username: str = "default"
    password: str | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    max_lag_bytes: int = Field(1 << 30, ge=16 << 20, le=1 << 40)


class AuditConfig(_Section):
    # Unwritten audit events the spool may hold (the database down for a while); then requests wait for room.
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20, le=1 << 40)
    # When the spool is full: "block" (requests wait for room) or "refuse" (new requests get 503
    # audit_unavailable: audit is mandatory). Either way no event is dropped.
    when_full: Literal["block", "refuse"] = "block"
    # Days audit events are kept (0: forever), by kind (the surface: ai, mcp, quota...) and for the rest.
    retention_days: int = Field(365, ge=0, le=36500)
    retention_days_by_kind: dict[str, int] = Field(default_factory=dict)
    capture: AuditCaptureConfig = AuditCaptureConfig()
    offload: BodyOffloadConfig = BodyOffloadConfig()
    clickhouse: ClickHouseConfig | None = None
    # Where audit events are forwarded as well (SIEMs, pipelines), each channel on its own.
    forward: tuple[AuditChannelConfig, ...] = ()

    @field_validator("forward")
    @classmethod
    def _unique_channels(cls, value: tuple[AuditChannelConfig, ...]) -> tuple[AuditChannelConfig, ...]:
        names = [channel.name for channel in value]
        if duplicated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"audit channel names must be unique; repeated: {', '.join(duplicated)}")
        if "clickhouse" in names:
            raise ValueError("the audit channel name 'clickhouse' is the ClickHouse sink's")
        return value

    @field_validator("retention_days_by_kind")
    @classmethod
    def _retention_days(cls, value: dict[str, int]) -> dict[str, int]:
        return retention_by_kind(value)

    def retention(self) -> AuditRetentionConfig:
        return AuditRetentionConfig(retention_days=self.retention_days,
                                    retention_days_by_kind=self.retention_days_by_kind)


def retention_by_kind(value: dict[str, int]) -> dict[str, int]:
    if bad := [kind for kind in value if not re.match(r"^[a-z0-9_-]{1,40}$", kind)]:
        raise ValueError(f"kinds are surfaces such as ai or mcp (lower-case letters, digits, _ and -): {bad[0]!r}")
    if any(days < 0 or days > 36500 for days in value.values()):
        raise ValueError("retention days must be between 0 (forever) and 36500")
    return value


class AuditRetentionConfig(_Section):
    """How long audit events are kept: changed in the console at run time (the configuration file's
    ``audit.retention_days`` and ``audit.retention_days_by_kind`` until then)."""

    retention_days: int = Field(365, ge=0, le=36500)
    retention_days_by_kind: dict[str, int] = Field(default_factory=dict, max_length=50)

    @field_validator("retention_days_by_kind")
    @classmethod
    def _retention_days(cls, value: dict[str, int]) -> dict[str, int]:
        return retention_by_kind(value)


class WardenConfig(_Section):
    """The whole validated configuration."""

    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    security: SecurityConfig = SecurityConfig()
    keys: ApiKeysConfig = ApiKeysConfig()
    quotas: QuotasConfig = QuotasConfig()
    mcp: McpConfig = McpConfig()
    audit: AuditConfig = AuditConfig()
    providers: tuple[ProviderConfig, ...] = ()
    models: tuple[ModelConfig, ...] = ()
    mcp_servers: tuple[McpServerConfig, ...] = ()
    mcp_virtual_servers: tuple[VirtualServerConfig, ...] = ()
    api_keys: tuple[ApiKeyImport, ...] = ()

    @property
    def database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data dir."""
        return self.database.url or f"sqlite:///{self.server.data_dir / 'warden.db'}"

    @model_validator(mode="after")
    def _references(self) -> WardenConfig:
        _unique("providers", [p.name for p in self.providers])
        _unique("models and their aliases", [n for m in self.models for n in (m.name, *m.aliases)])
        _unique("mcp_servers and mcp_virtual_servers",
                [s.name for s in self.mcp_servers] + [v.name for v in self.mcp_virtual_servers])
        _unique("api_keys", [k.name for k in self.api_keys])
        known = {p.name for p in self.providers}
        for model in self.models:
            for route in model.routes:
                if route.provider not in known:
                    raise ValueError(f"model {model.name!r} routes to unknown provider {route.provider!r}")
        return self


def _unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{section}: name {name!r} is declared twice")
        seen.add(name)


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> WardenConfig:
    """Build the configuration from defaults, the file (``path`` or ``WARDEN_CONFIG``) and the environment."""
    env = dict(os.environ if environ is None else environ)
    file_path = path or (Path(env["WARDEN_CONFIG"]) if env.get("WARDEN_CONFIG") else None)
    raw: dict[str, Any] = _read_file(file_path, env) if file_path else {}
    _overlay_environment(raw, env)
    try:
        return WardenConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _read_file(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r}: cannot be read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r}: not valid YAML ({exc})".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: top level must be a mapping of sections")
    substituted = _substitute(data, env, "")
    assert isinstance(substituted, dict)
    return substituted


def _substitute(value: Any, env: Mapping[str, str], where: str) -> Any:
    """Replace ``${VAR}`` in every string; an unset variable is an error naming where it is used."""
    if isinstance(value, dict):
        return {k: _substitute(v, env, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{where}: environment variable {name} is referenced but not set")
            return env[name]

        return _ENV_REFERENCE.sub(replace, value)
    return value


def _overlay_environment(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, value in env.items():
        target = _ENV_ALIASES.get(var) or _env_target(var)
        if target is None:
            continue
        section, key = target
        current = raw.setdefault(section, {})
        if not isinstance(current, dict):
            raise ConfigError(f"{section}: must be a mapping, got {type(current).__name__}")
        current[key] = _env_value(section, key, value)


def _env_target(var: str) -> tuple[str, str] | None:
    if not var.startswith("WARDEN_"):
        return None
    rest = var[len("WARDEN_") :].lower()
    for section, model in WardenConfig.model_fields.items():
        annotation = model.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, _Section)):
            continue
        prefix = section + "_"
        if rest.startswith(prefix) and rest[len(prefix) :] in annotation.model_fields:
            return section, rest[len(prefix) :]
    return None


def _env_value(section: str, key: str, value: str) -> Any:
    if key in ("cors_origins", "forwarded_allow_ips", "alert_thresholds", "allowed_origins", "outbound_allow"):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if value == "" and key in {"url", "console_host", "secret_key", "server_secret", "tls_cert_file",
                               "tls_key_file", "gateway_public_url", "metrics_token"} and section != "database":
        return None
    return value


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    value = error.get("input")
    shown = "<secret>" if any(w in key for w in ("secret", "api_key", "password", "token")) else repr(value)
    if isinstance(value, dict):
        shown = "{...}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: invalid value {shown}: {message}"
