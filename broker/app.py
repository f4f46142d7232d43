"""Composition root: ``create_app(config)`` builds every adapter and service and wires them together.

Only this module knows which adapters are in use. Everything opened here is closed here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import get_args

import anyio
import clickhouse_connect
from clickhouse_connect.driver.asyncclient import AsyncClient
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.types import ASGIApp

from ai_proxy.catalog import AiCatalog
from ai_proxy.catalog_store import AiCatalogStore
from ai_proxy.chat import ChatCompletions
from ai_proxy.metrics import AiMetrics
from ai_proxy.models import ModelList
from ai_proxy.routing import ModelRouter
from broker.config import (
    AuditChannelConfig,
    AuditRetentionConfig,
    NatsChannelConfig,
    OtlpChannelConfig,
    QuotaBehaviourConfig,
    SyslogChannelConfig,
    WardenConfig,
    WebhookChannelConfig,
)
from broker.connections.oauth import OAuthClient
from broker.connections.pending import PendingAuthorizations, RedisPendingAuthorizations, StorePendingAuthorizations
from broker.edge.health import Check, HealthChecks
from broker.edge.metrics import CircuitStates, HealthStates, HttpMetrics
from broker.gateway import build_gateway
from broker.kernel.audit.adapters.clickhouse import ClickHouseAudit, ClickHouseChannel, ClickHouseRetention
from broker.kernel.audit.adapters.store import AuditQuery, StoreAuditSink
from broker.kernel.audit.adapters.store_search import StoreAuditSearch
from broker.kernel.audit.body_store import BodyStore, LocalBodyStore, S3BodyStore
from broker.kernel.audit.capture import SETTINGS_NAME as CAPTURE_SETTINGS
from broker.kernel.audit.capture import BodyCapture
from broker.kernel.audit.capture_settings import AuditCaptureConfig
from broker.kernel.audit.channels.nats import NatsChannel
from broker.kernel.audit.channels.otlp import OtlpChannel
from broker.kernel.audit.channels.syslog import SyslogChannel
from broker.kernel.audit.channels.webhook import WebhookChannel
from broker.kernel.audit.forwarder import AuditChannel, AuditForwarder, ForwardMetrics
from broker.kernel.audit.ports import AuditSearch
from broker.kernel.audit.retention import AuditRetention
from broker.kernel.audit.spool import AuditSpool, SpoolInUse, SpoolMetrics
from broker.kernel.bus.memory import LocalBroadcast
from broker.kernel.bus.ports import Broadcast, Message
from broker.kernel.bus.redis import RedisBroadcast
from broker.kernel.clock import Clock, SystemClock
from broker.kernel.crypto import KeyHasher, PasswordHashing, SecretBox, SecretKeyError
from broker.kernel.events import KernelEvents
from broker.kernel.identity.keys import INVALIDATE_CHANNEL, ApiKeyRegistry, KeyCache, PrincipalCache
from broker.kernel.identity.maintenance import IdentityUpkeep, UpkeepPolicy
from broker.kernel.identity.passwords import PasswordPolicy, Passwords
from broker.kernel.identity.roles import RoleCatalog
from broker.kernel.identity.service import Identity
from broker.kernel.identity.sessions import ConsoleSessions, SessionPolicy
from broker.kernel.identity.setup import FirstRunSetup
from broker.kernel.identity.teams import TeamDirectory
from broker.kernel.identity.users import UserDirectory
from broker.kernel.quota.adapters.memory import MemoryCounters
from broker.kernel.quota.adapters.redis import RedisCounters, quota_redis
from broker.kernel.quota.alerts import BudgetAlerts
from broker.kernel.quota.engine import QuotaEngine, QuotaPolicy
from broker.kernel.quota.errors import CounterStoreDown
from broker.kernel.quota.ports import CounterStore
from broker.kernel.quota.rulebook import RuleBook
from broker.kernel.quota.rules import QuotaRuleStore
from broker.kernel.settings import LiveSettings, SettingsStore
from broker.kernel.store.migrations import migrate
from broker.kernel.store.ports import Database
from broker.kernel.vault import SecretVault
from broker.mcp.runtime import McpRuntime, open_mcp
from broker.mcp.store_templates import StoreTemplate, StoreTemplates, load_templates
from broker.mcp.upstream import Health
from broker.outbound import Outbound
from broker.reconcile import reconcile_api_keys, reconcile_quota_rules
from broker.secrets_file import load_server_secrets
from broker.sso import OidcSettings, OidcSignIn
from broker.storage import StartupError, open_database, open_redis, redact_url
from broker.webhooks import WebhookSender, WebhookTarget
from console.admin_trail import AdminTrail
from console.app import ConsoleServices, ConsoleSettings, build_console

log = logging.getLogger(__name__)
QUOTA_RULES_CHANNEL = "quota.rules"


def warden_version() -> str:
    try:
        return version("warden")
    except PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True, slots=True)
class Warden:
    """A running Warden: its two ASGI apps and the services behind them."""

    config: WardenConfig
    kernel: Kernel
    mcp: McpRuntime
    gateway: ASGIApp
    console: Starlette
    chat: ChatCompletions
    ai_catalog: AiCatalog

    @property
    def identity(self) -> Identity:
        return self.kernel.identity


def build_identity(config: WardenConfig, db: Database, broadcast: Broadcast, hasher: KeyHasher,
                   clock: Clock) -> Identity:
    passwords = Passwords(PasswordHashing(), PasswordPolicy(config.security.password_min_length))
    users = UserDirectory(db, passwords, clock)
    keys = ApiKeyRegistry(db, hasher, broadcast, clock, KeyCache(config.keys.cache_ttl_seconds, clock))
    roles = RoleCatalog(db, clock, changed=keys.invalidate)
    principals = PrincipalCache(config.keys.cache_ttl_seconds, clock)
    broadcast.subscribe(INVALIDATE_CHANNEL, principals.on_invalidate)
    security = config.security
    sessions = ConsoleSessions(db, users, passwords, clock, SessionPolicy(
        ttl_seconds=security.session_ttl_hours * 3600, bind_ip=security.session_bind_ip,
        max_failures=security.login_max_failures, lockout_seconds=security.lockout_minutes * 60,
    ))
    return Identity(users, TeamDirectory(db, clock), roles, keys, sessions, FirstRunSetup(db, users, roles, clock),
                    principals)


@dataclass(frozen=True, slots=True)
class Kernel:
    """The shared kernel without the HTTP surfaces (what CLI commands need)."""

    config: WardenConfig
    db: Database
    redis: Redis | None
    broadcast: Broadcast
    identity: Identity
    vault: SecretVault
    events: KernelEvents
    upkeep: IdentityUpkeep
    box: SecretBox
    registry: CollectorRegistry
    quotas: QuotaEngine
    quota_rules: QuotaRuleStore
    webhooks: WebhookSender
    audit: StoreAuditSink
    forwarders: list[AuditForwarder]
    capture: BodyCapture
    capture_settings: LiveSettings[AuditCaptureConfig]
    quota_settings: LiveSettings[QuotaBehaviourConfig]  # fail mode and alert thresholds
    retention_settings: LiveSettings[AuditRetentionConfig]  # how long audit events are kept
    bodies: BodyStore  # where captured bodies over body_max_bytes are offloaded
    search: AuditSearch
    hasher: KeyHasher
    pending: PendingAuthorizations  # OAuth authorizations and sign-ins in flight (Redis when configured)

    async def reload_quota_rules(self, message: Message | None = None) -> None:
        self.quotas.rules.replace(await self.quota_rules.all())

    async def quota_rules_changed(self) -> None:
        """Reload the rules on every instance."""
        await self.broadcast.publish(QUOTA_RULES_CHANNEL, {})


@asynccontextmanager
async def open_kernel(config: WardenConfig, clock: Clock | None = None) -> AsyncIterator[Kernel]:
    """Check the secret key, the database and Redis (naming the one that fails), migrate, seed, reconcile."""
    clock = clock or SystemClock()
    try:
        secrets = load_server_secrets(config)
    except (SecretKeyError, OSError, ValueError, KeyError) as exc:
        raise StartupError(f"secret key: {exc}") from exc
    db = await open_database(config)
    redis: Redis | None = None
    counters_redis: Redis | None = None
    try:
        redis = await open_redis(config)
        if config.redis.url:
            counters_redis = quota_redis(config.redis.url, config.quotas.redis_timeout_ms / 1000)
        await migrate(db)
        broadcast: Broadcast = RedisBroadcast(redis, config.redis.timeout_seconds) if redis else LocalBroadcast()
        hasher = KeyHasher(secrets.server_secret)
        identity = build_identity(config, db, broadcast, hasher, clock)
        events = KernelEvents(db, broadcast, clock)
        upkeep = IdentityUpkeep(db, identity.keys, identity.sessions, events, clock, UpkeepPolicy(
            config.keys.purge_after_days, config.keys.inactivity_days, config.keys.expiry_warning_days,
        ))
        await identity.roles.seed_builtins()
        await reconcile_api_keys(identity, config.api_keys)
        registry = CollectorRegistry()
        quota_rules = QuotaRuleStore(db, clock)
        await reconcile_quota_rules(identity, quota_rules, config.quotas.rules)
        webhooks = WebhookSender([WebhookTarget(w.url, w.secret) for w in config.quotas.webhooks])
        try:
            spool = AuditSpool(config.server.data_dir / "audit-spool", config.audit.spool_max_bytes,
                               [channel.name for channel in config.audit.forward]
                               + (["clickhouse"] if config.audit.clickhouse else []))
        except SpoolInUse as exc:
            raise StartupError(str(exc)) from exc
        registry.register(SpoolMetrics(spool))
        bodies = _body_store(config)
        audit = StoreAuditSink(db, spool, bodies, config.audit.when_full == "refuse", registry)
        capture = BodyCapture(config.audit.capture)
        forward_metrics = ForwardMetrics(registry)
        forwarders = [AuditForwarder(spool, _audit_channel(channel), channel.max_lag_bytes, forward_metrics)
                      for channel in config.audit.forward]
        search: AuditSearch = StoreAuditSearch(db)
        settings = SettingsStore(db, clock)
        capture_live = LiveSettings(CAPTURE_SETTINGS, AuditCaptureConfig, capture.settings, settings,
                                    broadcast).follow(capture.apply)
        retention_live = LiveSettings("audit_retention", AuditRetentionConfig, config.audit.retention(), settings,
                                      broadcast)  # the purge reads it at each pass
        await capture_live.load()
        await retention_live.load()
        clickhouse = _clickhouse(config, _clickhouse_retention(retention_live, capture_live))
        if clickhouse is not None:  # its TTLs follow both
            for live in (capture_live, retention_live):
                live.follow(lambda _: clickhouse.retain(_clickhouse_retention(retention_live, capture_live)))
        if clickhouse is not None and config.audit.clickhouse is not None:
            search = clickhouse  # the analytics engine answers searches when there is one
            forwarders.append(AuditForwarder(spool, ClickHouseChannel(clickhouse),
                                             config.audit.clickhouse.max_lag_bytes, forward_metrics,
                                             timeout=config.audit.clickhouse.timeout_seconds * 3))
        counters: CounterStore = MemoryCounters()
        if counters_redis is not None:
            counters = await _prepared_redis_counters(counters_redis, config)
        quotas = QuotaEngine(counters, RuleBook(), clock, QuotaPolicy(
            config.quotas.timezone, config.quotas.fail_mode, config.quotas.alert_thresholds,
        ), registry, BudgetAlerts(events, audit, webhooks.send))
        quota_live = LiveSettings("quota_behaviour", QuotaBehaviourConfig, config.quotas.behaviour(), settings,
                                  broadcast).follow(lambda b: quotas.apply(b.fail_mode, b.alert_thresholds))
        await quota_live.load()
        box = SecretBox(secrets.key_ring)
        kernel = Kernel(config, db, redis, broadcast, identity, SecretVault(db, box, clock), events, upkeep, box,
                        registry, quotas, quota_rules, webhooks, audit, forwarders, capture, capture_live, quota_live,
                        retention_live, bodies, search, hasher,
                        RedisPendingAuthorizations(redis, config.redis.timeout_seconds) if redis is not None
                        else StorePendingAuthorizations(db, clock))
        await kernel.reload_quota_rules()
        broadcast.subscribe(QUOTA_RULES_CHANNEL, kernel.reload_quota_rules)
        try:
            yield kernel
        finally:
            webhooks.close()
            kernel.audit.close()
            spool.close()
            with anyio.CancelScope(shield=True):
                await bodies.aclose()
                if clickhouse is not None:
                    await clickhouse.close()
        with anyio.CancelScope(shield=True):
            await identity.keys.flush_last_used()
    finally:
        with anyio.CancelScope(shield=True):
            for client in (redis, counters_redis):
                if client is not None:
                    await client.aclose()
            await db.close()


@asynccontextmanager
async def create_app(config: WardenConfig, clock: Clock | None = None) -> AsyncIterator[Warden]:
    """Open the kernel, build both listeners' apps, run background upkeep; close it all on exit."""
    clock = clock or SystemClock()
    templates = load_templates()  # first: a broken template file stops the start before anything is opened
    async with open_kernel(config, clock) as kernel, open_mcp(
        kernel.db, kernel.redis, kernel.box, kernel.hasher, kernel.identity, kernel.quotas, kernel.audit,
        kernel.broadcast, clock, config, warden_version(), kernel.pending, kernel.capture,
    ) as mcp:
        ai_catalog = AiCatalog(AiCatalogStore(kernel.db, clock, kernel.box), ModelRouter(), kernel.broadcast)
        await ai_catalog.start(config.providers, config.models)
        warden = _wire(config, kernel, mcp, ai_catalog, clock, templates)
        async with anyio.create_task_group() as background:
            background.start_soon(kernel.broadcast.run)
            background.start_soon(_upkeep_loop, kernel.upkeep, config.keys.maintenance_interval_seconds)
            background.start_soon(kernel.quotas.watch_store)
            background.start_soon(kernel.webhooks.run)
            background.start_soon(kernel.audit.run)
            for forwarder in kernel.forwarders:
                background.start_soon(forwarder.run)
            periods = kernel.retention_settings
            background.start_soon(AuditRetention(
                kernel.db, clock, lambda: (periods.current.retention_days, periods.current.retention_days_by_kind),
                kernel.bodies, lambda: kernel.capture.settings.body_retention_days).run)
            try:
                yield warden
            finally:
                with anyio.CancelScope(shield=True):
                    await warden.chat.close()
                kernel.audit.close()  # the writer drains what is queued, then returns
                with anyio.move_on_after(10, shield=True):
                    await kernel.audit.drained.wait()
                background.cancel_scope.cancel()


def _wire(config: WardenConfig, kernel: Kernel, mcp: McpRuntime, ai_catalog: AiCatalog, clock: Clock,
          templates: list[StoreTemplate]) -> Warden:
    checks: dict[str, Check] = {"database": kernel.db.ping}
    if kernel.redis is not None:
        checks["redis"] = _redis_ping(kernel.redis)
    if config.audit.clickhouse is not None:
        checks["clickhouse"] = kernel.search.ping  # the search port is ClickHouse's then
    metrics = HttpMetrics(kernel.registry, config.security.metrics_token)
    health = HealthChecks(checks, time.time())
    models = ModelList(kernel.identity, kernel.quotas, ai_catalog.router, kernel.audit, int(time.time()))
    chat = ChatCompletions(kernel.identity, kernel.quotas, ai_catalog.router, kernel.audit, mcp.outbound, clock,
                           AiMetrics(kernel.registry), kernel.capture)
    kernel.registry.register(CircuitStates("warden_ai_provider_circuit_state", "provider", chat.circuit_states))
    kernel.registry.register(CircuitStates("warden_mcp_upstream_circuit_state", "server", lambda: {
        upstream.name: upstream.breaker.state for upstream in mcp.pool.connections()}))
    kernel.registry.register(HealthStates(lambda: {upstream.name: upstream.health
                                                   for upstream in mcp.pool.connections()}, get_args(Health)))
    gateway = build_gateway(health, metrics, models, chat, mcp.app, mcp.authorization.resource_metadata())
    services = ConsoleServices(kernel.identity, kernel.quotas, kernel.quota_rules, kernel.quota_rules_changed,
                               mcp.store, mcp.pool, mcp.servers_changed, mcp.access_rules, mcp.access,
                               mcp.access_changed, AuditQuery(kernel.db), mcp.connections, mcp.virtual_store,
                               mcp.virtuals_changed, mcp.connections, mcp.outbound, mcp.authorization,
                               _single_sign_on(config, kernel, mcp.outbound, clock), ai_catalog,
                               kernel.search, kernel.bodies, AdminTrail(kernel.audit), kernel.pending,
                               kernel.capture_settings, kernel.quota_settings, kernel.retention_settings,
                               mcp.live_calls,
                               StoreTemplates(templates, kernel.db, clock), health)
    console = build_console(services, clock, metrics, ConsoleSettings(
        config.security.cookie_secure, config.security.cors_origins, config.keys.rotation_grace_hours,
        warden_version(), config.security.oidc.label if config.security.oidc else None,
        config.server.gateway_url, config.server.gateway_public_url is not None,
    ))
    return Warden(config, kernel, mcp, gateway, console, chat, ai_catalog)


def _single_sign_on(config: WardenConfig, kernel: Kernel, outbound: Outbound, clock: Clock) -> OidcSignIn | None:
    oidc = config.security.oidc
    if oidc is None:
        return None
    settings = OidcSettings(oidc.issuer.rstrip("/"), oidc.client_id, oidc.client_secret,
                            config.server.console_url + "/auth/oidc/callback", oidc.scopes, oidc.email_claim,
                            oidc.create_users, oidc.groups_claim, dict(oidc.group_roles), dict(oidc.group_teams))
    return OidcSignIn(settings, OAuthClient(outbound, clock), kernel.pending, kernel.box, clock, kernel.identity,
                      kernel.db)


def _clickhouse_retention(retention: LiveSettings[AuditRetentionConfig], capture: LiveSettings[AuditCaptureConfig]
                          ) -> ClickHouseRetention:
    return ClickHouseRetention(retention.current.retention_days, retention.current.retention_days_by_kind,
                               capture.current.body_retention_days)


def _clickhouse(config: WardenConfig, retention: ClickHouseRetention) -> ClickHouseAudit | None:
    settings = config.audit.clickhouse
    if settings is None:
        return None

    async def connect() -> AsyncClient:
        return await clickhouse_connect.get_async_client(
            dsn=settings.url, username=settings.username, password=settings.password or "", compress="lz4",
            connect_timeout=settings.timeout_seconds, send_receive_timeout=settings.timeout_seconds)

    return ClickHouseAudit(connect, settings.database, retention, timeout=settings.timeout_seconds)


def _body_store(config: WardenConfig) -> BodyStore:
    offload = config.audit.offload
    if offload.s3_bucket and offload.s3_access_key_id and offload.s3_secret_access_key:
        return S3BodyStore(offload.s3_endpoint, offload.s3_bucket, offload.s3_region, offload.s3_access_key_id,
                           offload.s3_secret_access_key, offload.s3_prefix)
    return LocalBodyStore(offload.directory or config.server.data_dir / "audit-bodies")


def _audit_channel(config: AuditChannelConfig) -> AuditChannel:
    match config:
        case SyslogChannelConfig():
            return SyslogChannel(config.name, config.url, config.facility, config.app_name, config.sd_id,
                                 config.ca_file)
        case WebhookChannelConfig():
            return WebhookChannel(config.name, config.url, config.secret, config.timeout_seconds)
        case NatsChannelConfig():
            return NatsChannel(config.name, config.url, config.subject, config.stream)
        case OtlpChannelConfig():
            return OtlpChannel(config.name, config.url, config.headers, config.service_name, warden_version(),
                               config.timeout_seconds)


async def _prepared_redis_counters(client: Redis, config: WardenConfig) -> RedisCounters:
    counters = RedisCounters(client, config.quotas.redis_timeout_ms / 1000)
    try:
        await counters.prepare()
    except CounterStoreDown as exc:
        raise StartupError(f"redis {redact_url(config.redis.url or '')}: quota scripts could not be loaded"
                           f" ({exc})") from exc
    return counters


def _redis_ping(redis: Redis) -> Callable[[], Awaitable[None]]:
    async def ping() -> None:
        await redis.ping()

    return ping


async def _upkeep_loop(upkeep: IdentityUpkeep, interval: float) -> None:
    while True:
        try:
            report = await upkeep.run_once()
            if any((report.purged, report.disabled_inactive, report.expiry_warnings)):
                log.info("identity upkeep: %s", report)
        except Exception:
            log.exception("identity upkeep pass failed")
        await anyio.sleep(interval)
