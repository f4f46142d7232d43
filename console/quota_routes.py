"""``/api/quotas``: rate-limit and budget rules, and how much of each a subject has used."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from broker.kernel.errors import FieldError, InvalidInput
from broker.kernel.identity.service import Identity, require
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.models import SUBJECT_KINDS, Counted, Rule, Subject
from broker.kernel.quota.rules import QuotaRuleStore
from broker.kernel.quota.subjects import subjects_for
from console.endpoints import ApiRoute, Call
from console.schemas import CreateQuotaRule, UpdateQuotaRule


def rule_view(rule: Rule, source: str) -> dict[str, Any]:
    return {"id": rule.id, "label": rule.label, "subject_kind": rule.subject_kind, "subject_id": rule.subject_id,
            "metric": rule.metric, "window": rule.window, "period": rule.period, "limit": rule.limit,
            "surface": rule.surface, "enabled": rule.enabled, "precheck": rule.precheck, "source": source}


def usage_view(counted: Counted) -> dict[str, Any]:
    return {"rule_id": counted.rule.id, "rule": counted.rule.label, "subject": str(counted.subject),
            "used": counted.used, "limit": counted.rule.limit, "remaining": counted.remaining,
            "resets_in_seconds": round(counted.resets_in, 3)}


class QuotaRoutes:
    """Handlers for quota rules and usage."""

    def __init__(self, identity: Identity, engine: QuotaEngine, rules: QuotaRuleStore,
                 rules_changed: Callable[[], Awaitable[None]]) -> None:
        self._identity = identity
        self._engine = engine
        self._rules = rules
        self._rules_changed = rules_changed

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/quotas/rules", self.index, "List quota rules (quotas:manage)", "quotas"),
            ApiRoute("POST", "/api/quotas/rules", self.create, "Create a rate limit or budget (quotas:manage)",
                     "quotas", body=CreateQuotaRule, status=201),
            ApiRoute("PATCH", "/api/quotas/rules/{rule_id}", self.update, "Change a rule (quotas:manage)",
                     "quotas", body=UpdateQuotaRule),
            ApiRoute("DELETE", "/api/quotas/rules/{rule_id}", self.delete, "Delete a rule (quotas:manage)",
                     "quotas", status=204),
            ApiRoute("GET", "/api/quotas/usage", self.usage,
                     "Usage of every rule on ?subject=kind:id, with the budget alert thresholds"
                     " (quotas:manage)", "quotas"),
            ApiRoute("GET", "/api/quotas/mine", self.mine,
                     "How much of each limit and budget the caller has left", "quotas"),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "quotas:manage")
        return {"items": [rule_view(d["rule"], d["source"]) for d in await self._rules.describe()]}

    async def create(self, call: Call) -> dict[str, Any]:
        require(call.actor, "quotas:manage")
        body: CreateQuotaRule = call.body
        rule = await self._rules.create(Rule("", body.subject_kind, body.subject_id, body.metric, body.limit,
                                             body.window, body.period, body.surface, body.enabled, body.precheck))
        await self._rules_changed()
        return rule_view(rule, "api")

    async def update(self, call: Call) -> dict[str, Any]:
        require(call.actor, "quotas:manage")
        rule = await self._rules.update(call.path("rule_id"), call.body.model_dump(exclude_unset=True))
        await self._rules_changed()
        return rule_view(rule, "api")

    async def delete(self, call: Call) -> None:
        require(call.actor, "quotas:manage")
        await self._rules.delete(call.path("rule_id"))
        await self._rules_changed()

    async def usage(self, call: Call) -> dict[str, Any]:
        require(call.actor, "quotas:manage")
        kind, _, ident = call.request.query_params.get("subject", "").partition(":")
        if kind not in SUBJECT_KINDS or not ident:
            raise InvalidInput("invalid subject", [FieldError("query.subject", "must be kind:id, e.g. user:<id>")])
        counted = await self._engine.usage(Subject(kind, ident))
        return {"items": [usage_view(c) for c in counted],
                "alert_thresholds": list(self._engine.policy.alert_thresholds)}

    async def mine(self, call: Call) -> dict[str, Any]:
        items = []
        subjects = list(subjects_for(call.actor))
        if call.actor.user is not None:
            keys = await self._identity.keys.visible(call.actor.user.id)
            subjects += [Subject("api_key", k.id) for k in keys if Subject("api_key", k.id) not in subjects]
        for subject in subjects:
            items += [usage_view(c) for c in await self._engine.usage(subject)]
        return {"items": items}
