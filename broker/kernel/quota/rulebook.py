"""The rules in force, kept in memory and indexed by subject kind; reloaded when an admin changes them."""

from __future__ import annotations

from collections import defaultdict

from broker.kernel.quota.models import Rule, Subject, Surface


class RuleBook:
    """Finds every enabled rule that applies to a request's subjects."""

    def __init__(self, rules: list[Rule] | None = None) -> None:
        self._by_kind: dict[str, list[Rule]] = defaultdict(list)
        self.replace(rules or [])

    def replace(self, rules: list[Rule]) -> None:
        by_kind: dict[str, list[Rule]] = defaultdict(list)
        for rule in sorted(rules, key=lambda r: r.id):
            if rule.enabled:
                by_kind[rule.subject_kind].append(rule)
        self._by_kind = by_kind

    def applicable(self, subjects: tuple[Subject, ...], surface: Surface) -> list[tuple[Rule, Subject]]:
        return [
            (rule, subject)
            for subject in subjects
            for rule in self._by_kind.get(subject.kind, ())
            if rule.applies_to(subject, surface)
        ]
