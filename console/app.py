"""The console listener (default port 3001): management API, OpenAPI document, web pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ai_proxy.catalog import AiCatalog
from broker.authserver.server import McpAuthorizationServer
from broker.config import AuditRetentionConfig, QuotaBehaviourConfig
from broker.connections.pending import PendingAuthorizations
from broker.connections.service import Connections
from broker.edge.errors import EXCEPTION_HANDLERS
from broker.edge.health import HealthChecks
from broker.edge.metrics import HttpMetrics, MetricsMiddleware
from broker.kernel.audit.adapters.store import AuditQuery
from broker.kernel.audit.body_store import BodyStore
from broker.kernel.audit.capture_settings import AuditCaptureConfig
from broker.kernel.audit.ports import AuditSearch
from broker.kernel.clock import Clock
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.rules import QuotaRuleStore
from broker.kernel.settings import LiveSettings
from broker.mcp.access import AccessPolicy, AccessRuleStore
from broker.mcp.credentials import UserCredentials
from broker.mcp.live_calls import LiveCalls
from broker.mcp.pool import UpstreamPool
from broker.mcp.servers import McpServerStore
from broker.mcp.store_templates import StoreTemplates
from broker.mcp.virtual import VirtualServerStore
from broker.outbound import Outbound
from broker.sso import OidcSignIn
from console.admin_trail import AdminTrail
from console.ai_routes import AiCatalogRoutes
from console.audit_routes import AuditRoutes
from console.connection_routes import ConnectionRoutes
from console.endpoints import CSRF_HEADER, ApiRoute, Authenticator, to_starlette
from console.key_routes import KeyRoutes
from console.live_feed import LiveFeed
from console.mcp_access_routes import McpAccessRoutes
from console.mcp_calls_routes import McpCallRoutes
from console.mcp_routes import McpServerRoutes
from console.mcp_virtual_routes import McpVirtualRoutes
from console.mcp_wizard_routes import McpWizardRoutes
from console.navigation import CONSOLE_PAGES, NavigationRoutes
from console.oauth_server_routes import OAuthServerRoutes
from console.openapi import openapi_document
from console.pages import Pages
from console.quota_routes import QuotaRoutes
from console.role_routes import RoleRoutes
from console.security import SecurityHeadersMiddleware
from console.session_routes import CookiePolicy, SessionRoutes
from console.settings_routes import SettingsGroup, SettingsRoutes
from console.sso_routes import CALLBACK, SsoRoutes
from console.store_routes import StoreRoutes
from console.team_routes import TeamRoutes
from console.user_routes import UserRoutes

STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """The configuration the console reads."""

    cookie_secure: str
    cors_origins: tuple[str, ...]
    rotation_grace_hours: float
    version: str
    sso_label: str | None = None  # the single sign-on button's label, when an identity provider is configured
    gateway_url: str = "http://127.0.0.1:3000"  # for the client set-up guide
    gateway_url_is_public: bool = False  # configured (server.gateway_public_url), not the listener's own


@dataclass(frozen=True, slots=True)
class ConsoleServices:
    """The kernel services the console's API drives."""

    identity: Identity
    quotas: QuotaEngine
    quota_rules: QuotaRuleStore
    quota_rules_changed: Callable[[], Awaitable[None]]
    mcp_servers: McpServerStore
    mcp_pool: UpstreamPool
    mcp_servers_changed: Callable[[], Awaitable[None]]
    mcp_access_rules: AccessRuleStore
    mcp_access: AccessPolicy
    mcp_access_changed: Callable[[], Awaitable[None]]
    audit: AuditQuery
    mcp_credentials: UserCredentials
    mcp_virtual_servers: VirtualServerStore
    mcp_virtuals_changed: Callable[[], Awaitable[None]]
    connections: Connections
    outbound: Outbound
    mcp_oauth: McpAuthorizationServer
    sso: OidcSignIn | None
    ai_catalog: AiCatalog
    audit_search: AuditSearch
    audit_bodies: BodyStore
    admin_trail: AdminTrail
    pending: PendingAuthorizations  # short-lived single-use grants shared by the instances (live feed tickets)
    capture_settings: LiveSettings[AuditCaptureConfig]
    quota_settings: LiveSettings[QuotaBehaviourConfig]
    retention_settings: LiveSettings[AuditRetentionConfig]
    live_calls: LiveCalls
    store_templates: StoreTemplates
    health: HealthChecks


def api_routes(services: ConsoleServices, clock: Clock, settings: ConsoleSettings) -> list[ApiRoute]:
    identity = services.identity
    return [
        *SessionRoutes(identity, CookiePolicy(settings.cookie_secure), clock, settings.sso_label).routes(),
        *NavigationRoutes(services.health, settings.gateway_url, settings.gateway_url_is_public).routes(),
        *UserRoutes(identity).routes(),
        *TeamRoutes(identity).routes(),
        *RoleRoutes(identity).routes(),
        *KeyRoutes(identity, clock, settings.rotation_grace_hours).routes(),
        *QuotaRoutes(identity, services.quotas, services.quota_rules, services.quota_rules_changed).routes(),
        *AiCatalogRoutes(services.ai_catalog, services.outbound).routes(),
        *McpServerRoutes(services.mcp_servers, services.mcp_pool, services.mcp_servers_changed,
                         services.outbound, services.connections).routes(),
        *McpAccessRoutes(identity, services.mcp_access_rules, services.mcp_access, services.mcp_pool,
                         services.mcp_credentials, services.mcp_access_changed).routes(),
        *McpVirtualRoutes(services.mcp_virtual_servers, services.mcp_pool, services.mcp_virtuals_changed).routes(),
        *McpCallRoutes(services.audit, services.audit_search, services.live_calls, services.pending).routes(),
        *AuditRoutes(services.audit, services.audit_search, services.audit_bodies).routes(),
        *SettingsRoutes([
            SettingsGroup("audit", services.capture_settings, AuditCaptureConfig, "Body capture per surface,"
                          " body_max_bytes, redaction_patterns ([{name, pattern}], RE2) and body_retention_days"),
            SettingsGroup("quotas", services.quota_settings, QuotaBehaviourConfig, "The quota fail mode (open: let"
                          " requests through while the quota store is down; closed: refuse them) and the budget alert"
                          " thresholds in per cent"),
            SettingsGroup("retention", services.retention_settings, AuditRetentionConfig, "Days audit events are"
                          " kept (0: forever): retention_days, and retention_days_by_kind for kinds (surfaces) kept"
                          " otherwise"),
        ]).routes(),
        *LiveFeed(services.audit_search, services.pending).routes(),
        *StoreRoutes(services.store_templates).routes(),
        *McpWizardRoutes(services.outbound, services.connections).routes(),
        *_connection_routes(services, settings).routes(),
        *OAuthServerRoutes(services.mcp_oauth, services.identity).routes(),
    ]


def _sso_routes(services: ConsoleServices, clock: Clock, settings: ConsoleSettings) -> list[BaseRoute]:
    if services.sso is None:
        return []
    sso = SsoRoutes(services.sso, services.identity, CookiePolicy(settings.cookie_secure), clock)
    return [Route("/auth/oidc/login", sso.login, methods=["GET"]),
            Route(CALLBACK, sso.callback, methods=["GET"])]


def _connection_routes(services: ConsoleServices, settings: ConsoleSettings) -> ConnectionRoutes:
    return ConnectionRoutes(services.identity, services.connections, services.mcp_pool, services.mcp_access,
                            services.outbound, CookiePolicy(settings.cookie_secure))


def build_console(services: ConsoleServices, clock: Clock, metrics: HttpMetrics,
                  settings: ConsoleSettings) -> Starlette:
    identity = services.identity
    table = api_routes(services, clock, settings)
    document = openapi_document(table, settings.version)
    auth = Authenticator(identity)
    # A change to a resource the API can also read (at the same path) is recorded with it before and after.
    readers = {route.path: route.handler for route in table if route.method == "GET"}
    pages = Pages(identity)
    oauth_server = OAuthServerRoutes(services.mcp_oauth, identity)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes: list[BaseRoute] = [
        Route("/api/openapi.json", openapi, methods=["GET"]),
        *(to_starlette(route, auth, services.admin_trail,
                       readers.get(route.path) if route.method in ("PUT", "PATCH", "DELETE") else None)
          for route in table),
        # Before the console's pages: /connections/<server>/connect is not one of the connections page's views.
        Route("/connections/{server}/connect", _connection_routes(services, settings).connect, methods=["GET"]),
        *(Route(path, pages.console, methods=["GET"]) for page in CONSOLE_PAGES
          for path in ((page.path,) if page.path == "/" else (page.path, page.path + "/{rest:path}"))),
        Route("/setup", pages.setup, methods=["GET"]),
        Route("/login", pages.login, methods=["GET"]),
        Route("/oauth/callback", _connection_routes(services, settings).callback, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", oauth_server.metadata, methods=["GET"]),
        Route("/oauth/register", oauth_server.register, methods=["POST"]),
        Route("/oauth/authorize", oauth_server.authorize, methods=["GET"]),
        Route("/oauth/token", oauth_server.token, methods=["POST"]),
        Route("/oauth/revoke", oauth_server.revoke, methods=["POST"]),
        *_sso_routes(services, clock, settings),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(MetricsMiddleware, metrics=metrics, listener="console"),
        Middleware(SecurityHeadersMiddleware),
    ]
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["authorization", "content-type", CSRF_HEADER],
        ))
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers=EXCEPTION_HANDLERS)
