"""The MCP Store's shipped templates: each validates against the schema, in both languages, and becomes a
server definition Warden accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from broker.kernel.errors import InvalidInput
from broker.mcp.store_templates import SHIPPED, StoreTemplate, TemplateInvalid, load_templates, schema, validate

TEMPLATES = load_templates()
POPULAR = {"github", "linear", "notion", "slack", "sentry", "atlassian", "stripe", "cloudflare", "filesystem",
           "fetch"}


def test_a_dozen_popular_services_ship() -> None:
    ids = {t.id for t in TEMPLATES}
    assert len(ids) >= 12 and ids >= POPULAR


def test_the_schema_is_a_valid_json_schema() -> None:
    Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
@pytest.mark.parametrize("language", ["en", "zh"])
def test_each_template_reads_in_both_languages(template: StoreTemplate, language: str) -> None:
    data = template.data
    texts = [data["name"], data["description"], data["notes"], *(i["label"] for i in data.get("inputs", []))]
    assert all(text[language].strip() for text in texts)
    if language == "zh":  # translated, not copied: each description carries Chinese characters
        assert any("\u4e00" <= ch <= "\u9fff" for ch in data["description"]["zh"] + data["notes"]["zh"])


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
def test_each_template_becomes_a_server_warden_accepts(template: StoreTemplate) -> None:
    examples = {i["name"]: i.get("example", "x") for i in template.data.get("inputs", [])}
    server = template.server(f"{template.id}-work", examples)
    assert server.transport == template.data["transport"]
    assert server.auth.mode == template.data["auth"]["mode"]
    filled = [server.url or "", *server.args, *server.env.values()]
    assert not any(re.search(r"\{[a-z][a-z0-9_]*\}", text) for text in filled)  # every input filled in


def test_a_missing_input_is_named() -> None:
    filesystem = next(t for t in TEMPLATES if t.id == "filesystem")
    with pytest.raises(InvalidInput) as refused:
        filesystem.server("files", {"directory": "  "})
    assert [f.field for f in refused.value.fields] == ["inputs.directory"]
    with pytest.raises(InvalidInput) as refused:
        filesystem.server("bad__name", {"directory": "/srv"})
    assert refused.value.fields[0].field == "name"


def broken(tmp_path: Path, **changes: object) -> Path:
    (tmp_path / "schema.json").write_text((SHIPPED / "schema.json").read_text())
    data = {**json.loads((SHIPPED / "filesystem.json").read_text()), **changes}
    (tmp_path / f"{data['id']}.json").write_text(json.dumps(data))
    return tmp_path


@pytest.mark.parametrize(("changes", "problem"), [
    ({"name": {"en": "Files"}}, "'zh' is a required property"),
    ({"url": "https://example.com/mcp"}, "should not be valid"),  # stdio with a URL
    ({"transport": "streamable_http"}, "'url' is a required property"),
    ({"args": ["{directory}", "{other}"]}, "{other} is used but not declared"),
    ({"args": []}, "directory is declared but never used"),
    ({"icon": {"glyph": "FS", "color": "green"}}, "does not match"),
    ({"category": "games"}, "is not one of"),
])
def test_a_broken_template_is_refused_naming_its_file_and_problem(tmp_path: Path, changes: dict[str, object],
                                                                  problem: str) -> None:
    with pytest.raises(TemplateInvalid) as refused:
        load_templates(broken(tmp_path, **changes))
    assert "filesystem.json" in str(refused.value) and problem in str(refused.value)


def test_validate_reports_nothing_for_a_good_template() -> None:
    validator = Draft202012Validator(schema())
    assert validate(json.loads((SHIPPED / "github.json").read_text()), validator) == []
