"""The rules in force, kept in memory; finds the bindings (rule x subject) a request is counted under.

Bindings are remembered per (subject, surface), so the common case — the same key, user and team
making request after request — costs one dictionary lookup per subject.
"""

from __future__ import annotations

from collections import defaultdict

from broker.kernel.quota.models import Rule, Subject, Surface
from broker.kernel.quota.slots import Binding

_MAX_REMEMBERED = 100_000


class RuleBook:
    """Every enabled rule, indexed by subject kind."""

    def __init__(self, rules: list[Rule] | None = None) -> None:
        self._by_kind: dict[str, list[Rule]] = defaultdict(list)
        self._bindings: dict[tuple[Subject, Surface], list[Binding]] = {}
        self._charged: dict[tuple[Subject, Surface], list[Binding]] = {}
        self.replace(rules or [])

    def replace(self, rules: list[Rule]) -> None:
        by_kind: dict[str, list[Rule]] = defaultdict(list)
        for rule in sorted(rules, key=lambda r: r.id):
            if rule.enabled:
                by_kind[rule.subject_kind].append(rule)
        self._by_kind = by_kind
        self._bindings, self._charged = {}, {}

    def bindings(self, subjects: tuple[Subject, ...], surface: Surface) -> list[Binding]:
        """Every binding a request is admitted under."""
        found: list[Binding] = []
        for subject in subjects:
            known = self._bindings.get((subject, surface))
            found += known if known is not None else self._bind(subject, surface)[0]
        return found

    def charged(self, subjects: tuple[Subject, ...], surface: Surface) -> list[Binding]:
        """The bindings that count tokens or USD, charged after the call."""
        found: list[Binding] = []
        for subject in subjects:
            known = self._charged.get((subject, surface))
            found += known if known is not None else self._bind(subject, surface)[1]
        return found

    def _bind(self, subject: Subject, surface: Surface) -> tuple[list[Binding], list[Binding]]:
        if len(self._bindings) >= _MAX_REMEMBERED:
            self._bindings, self._charged = {}, {}
        every = [Binding(rule, subject) for rule in self._by_kind.get(subject.kind, ())
                 if rule.applies_to(subject, surface)]
        charged = [b for b in every if b.rule.metric != "requests"]
        self._bindings[(subject, surface)], self._charged[(subject, surface)] = every, charged
        return every, charged
