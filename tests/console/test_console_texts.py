"""Every text the console shows exists in English and in Chinese, with the same placeholders."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import get_args

from broker.config import ModelConfig
from broker.connections.links import LinkState
from broker.kernel.breaker import BreakerState
from broker.kernel.identity.models import ApiKey
from broker.kernel.identity.permissions import PERMISSIONS
from broker.mcp.probe import Verdict
from broker.mcp.upstream import Health
from console.connection_routes import SHARED_STATES
from console.navigation import CONSOLE_PAGES
from console.schemas import CreateAccessRule, CreateQuotaRule, SurfaceName

CONSOLE = Path(__file__).resolve().parents[2] / "console"
LANGUAGES = ("en", "zh")


def texts(language: str) -> dict[str, str]:
    return json.loads((CONSOLE / "static" / "i18n" / f"{language}.json").read_text())  # type: ignore[no-any-return]


def keys_in_use() -> set[str]:
    """Keys named literally in the scripts and markup, plus the families scripts build from data."""
    used: set[str] = set()
    for script in (CONSOLE / "static" / "app").rglob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z0-9_.]+)"', script.read_text()))
    for page in (CONSOLE / "pages").glob("*.html"):
        used |= set(re.findall(r'data-i18n="([a-z0-9_.]+)"', page.read_text()))
    used |= {page.label for page in CONSOLE_PAGES}
    used |= {f"nav.group.{page.group}" for page in CONSOLE_PAGES}
    used |= {f"permission.{name}" for name in PERMISSIONS}
    used |= {f"surface.{s}" for s in get_args(SurfaceName)} | {f"surface.{s}.hint" for s in get_args(SurfaceName)}
    used |= {f"theme.{name}" for name in ("system", "light", "dark")}
    used |= {f"key_state.{state}" for state in key_states()}
    schema = json.loads((CONSOLE.parent / "store_templates" / "schema.json").read_text())["properties"]
    used |= {f"category.{c}" for c in schema["category"]["enum"]}
    used |= {f"transport.{t}" for t in schema["transport"]["enum"]}
    used |= {f"auth_mode.{m}" for m in schema["auth"]["properties"]["mode"]["enum"]}
    used |= {f"ownership.{o}" for o in schema["auth"]["properties"]["ownership"]["enum"]}
    used |= {f"health.{state}" for state in get_args(Health)} | {f"breaker.{state}" for state in get_args(BreakerState)}
    used |= {f"verdict.{verdict}" for verdict in get_args(Verdict)}
    used |= {f"routing.{mode}" for mode in get_args(ModelConfig.model_fields["routing"].annotation)}
    used |= {f"routing.{mode}.hint" for mode in get_args(ModelConfig.model_fields["routing"].annotation)}
    quota_rule = CreateQuotaRule.model_fields
    for family, field in (("metric", "metric"), ("surface", "surface"), ("kind", "subject_kind")):
        used |= {f"quotas.{family}.{value}" for value in get_args(quota_rule[field].annotation)}
    used |= {f"quotas.period.{value}" for value in get_args(get_args(quota_rule["period"].annotation)[0])}
    used |= {f"source.{source}" for source in ("config", "api")}  # ai_proxy/catalog_store.py
    used |= {f"link_state.{state}" for state in {*get_args(LinkState), *SHARED_STATES.values()}}
    used |= {f"logs.surface.{s}" for s in ("ai", "mcp", "admin")}
    used |= {f"outcome.{o}" for o in ("ok", "error", "refused", "tool_error", "input_required", "unaudited")}
    used |= {f"access.kind.{kind}" for kind in get_args(CreateAccessRule.model_fields["subject_kind"].annotation)}
    used |= {f"body.{part}" for part in ("request", "response", "arguments", "result")}
    used |= {f"dependency.{name}" for name in ("database", "redis", "clickhouse")}  # broker/app.py's checks
    return used


def key_states() -> set[str]:
    """What ``ApiKey.state`` answers: its literal states, and ``disabled_<reason>`` for the one reason set
    (``broker/kernel/identity/maintenance.py``: unused for too long)."""
    source = inspect.getsource(ApiKey.state)
    return set(re.findall(r'"([a-z_]+)"', source)) | {"disabled_inactive"}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    english, chinese = texts("en"), texts("zh")
    assert english.keys() == chinese.keys()
    for key, text in english.items():
        assert text.strip() and chinese[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", chinese[key])), key


def test_every_text_in_use_is_translated_and_none_is_left_over() -> None:
    used = keys_in_use()
    english = texts("en")
    assert used - english.keys() == set(), "shown but not translated"
    assert english.keys() - used == set(), "translated but never shown"
    assert {"active", "revoked", "expired", "rotating"} <= key_states()


def test_every_console_page_has_its_module() -> None:
    """The shell loads pages/<path>.js for a page (pages/overview.js for "/")."""
    for page in CONSOLE_PAGES:
        name = "overview" if page.path == "/" else page.path.removeprefix("/")
        assert (CONSOLE / "static" / "app" / "pages" / f"{name}.js").is_file(), page.path
