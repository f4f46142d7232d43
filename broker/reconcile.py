"""Resources declared in the configuration file, reconciled into the store at start (deployment as code)."""

from __future__ import annotations

import logging

from broker.config import ApiKeyImport, McpAccessRuleConfig, QuotaRuleConfig
from broker.kernel.errors import NotFound
from broker.kernel.identity.keys import KeySpec
from broker.kernel.identity.service import Identity
from broker.kernel.quota.models import ANY, Rule
from broker.kernel.quota.rules import QuotaRuleStore
from broker.mcp.access import AccessRuleStore
from broker.storage import StartupError

log = logging.getLogger(__name__)


async def reconcile_api_keys(identity: Identity, declared: tuple[ApiKeyImport, ...]) -> int:
    """Import each declared key (hashed like any other); a missing owner is created without a password."""
    for item in declared:
        found = await identity.users.find_by_email(item.owner)
        owner = found[0] if found else await identity.users.create(item.owner, item.owner.split("@")[0])
        if found is None:
            log.info("created user %s as owner of declared API key %r", owner.email, item.name)
        spec = KeySpec(item.name, owner.id, None, frozenset(item.surfaces),
                       frozenset(item.allowed_models) if item.allowed_models is not None else None,
                       pinned_accounts=dict(item.pinned_accounts))
        await identity.keys.import_secret(spec, item.secret)
    return len(declared)


async def reconcile_quota_rules(identity: Identity, store: QuotaRuleStore,
                                declared: tuple[QuotaRuleConfig, ...]) -> int:
    """Make the file's quota rules the store's ``config`` rules; users by email and teams by name."""
    rules = []
    for index, item in enumerate(declared):
        kind, _, ident = item.subject.partition(":")
        try:
            subject_id = await _subject_id(identity, kind, ident)
        except NotFound as exc:
            raise StartupError(f"quotas.rules[{index}].subject: {exc.message}") from exc
        rules.append(Rule("", kind, subject_id, item.metric, item.limit, item.window, item.period,  # type: ignore[arg-type]
                          item.surface, item.enabled, item.precheck))
    return await store.reconcile_config(rules)


async def reconcile_mcp_access_rules(identity: Identity, store: AccessRuleStore,
                                     declared: tuple[McpAccessRuleConfig, ...]) -> None:
    """Make the file's MCP access rules the store's ``config`` rules; names and emails resolved to ids."""
    wanted = []
    for index, item in enumerate(declared):
        kind, _, ident = item.subject.partition(":")
        try:
            if kind == "role":
                role = await identity.roles.find_by_name(ident)
                subject_id = role.id if role else (await identity.roles.get(ident)).id
            else:
                subject_id = await _subject_id(identity, kind, ident)
        except NotFound as exc:
            raise StartupError(f"mcp.access_rules[{index}].subject: {exc.message}") from exc
        wanted.append((kind, subject_id, item.pattern))
    await store.reconcile_config(wanted)


async def _subject_id(identity: Identity, kind: str, ident: str) -> str:
    if ident == ANY:
        return ANY
    if kind == "user" and "@" in ident:
        return await identity.user_by_email(ident)
    if kind == "team":
        team = await identity.teams.find_by_name(ident)
        return team.id if team else ident
    return ident
