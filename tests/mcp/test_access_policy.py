from __future__ import annotations

import pytest

from broker.kernel.errors import InvalidInput
from broker.kernel.identity.models import ApiKey, Permissions, Principal, User
from broker.mcp.access import AccessPolicy, AccessRule, matches, validate_pattern

USER = User("u1", "u@example.com", "", False, 0.0, True)
KEY = ApiKey("k1", "k", "wdn_x", "u1", None, frozenset({"mcp"}), None, None, None, None, None, None, None, 0.0)


def principal(roles: frozenset[str] = frozenset(), teams: tuple[str, ...] = (), key: ApiKey | None = KEY) -> Principal:
    return Principal(USER, None, key, Permissions(role_ids=roles), "api_key", teams)


@pytest.mark.parametrize(("pattern", "tool", "expected"), [
    ("*", "github__create_issue", True),
    ("github__*", "github__create_issue", True),
    ("github__*", "gitlab__create_issue", False),
    ("github__create_issue", "github__create_issue", True),
    ("github__create_issue", "github__create_issue_comment", False),
])
def test_pattern_grammar(pattern: str, tool: str, expected: bool) -> None:
    assert matches(pattern, tool) is expected


@pytest.mark.parametrize("pattern", ["", "github", "github__", "git*", "*__x", "a b__c"])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidInput):
        validate_pattern(pattern)


def test_default_applies_only_when_no_rule_names_the_caller() -> None:
    assert AccessPolicy(default_allow=True).decide(principal(), "x__y").allowed
    assert not AccessPolicy(default_allow=False).decide(principal(), "x__y").allowed


def test_grants_from_roles_teams_and_user_combine() -> None:
    policy = AccessPolicy(default_allow=False)
    policy.replace([AccessRule("1", "role", "developer", "github__*"), AccessRule("2", "team", "t1", "jira__*"),
                    AccessRule("3", "user", "u1", "slack__post")])
    caller = principal(frozenset({"developer"}), ("t1",))
    assert all(policy.decide(caller, t).allowed for t in ("github__a", "jira__b", "slack__post"))
    assert not policy.decide(caller, "slack__read").allowed
    assert not policy.decide(principal(), "github__a").allowed  # rules exist, none for this caller: no default


def test_rules_on_the_key_narrow_what_the_user_may_do() -> None:
    policy = AccessPolicy(default_allow=True)
    policy.replace([AccessRule("1", "api_key", "k1", "github__read")])
    assert policy.decide(principal(), "github__read").allowed
    denied = policy.decide(principal(), "github__write")
    assert not denied.allowed and "key" in denied.reason
    assert policy.decide(principal(key=None), "github__write").allowed
