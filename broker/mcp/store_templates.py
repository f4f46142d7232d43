"""MCP Store templates: ready-made upstream servers kept as JSON files (``store_templates/``), each validated
against the store's JSON Schema, and turned into a server definition from what the installing user fills in."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import ValidationError

from broker.config import McpServerConfig
from broker.kernel.errors import FieldError, InvalidInput

SHIPPED = Path(__file__).resolve().parents[2] / "store_templates"
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class TemplateInvalid(Exception):
    """A template file that does not validate: which file, and what is wrong where."""


@dataclass(frozen=True, slots=True)
class StoreTemplate:
    """One template as its file holds it (``data``), with the inputs its definition names."""

    data: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def placeholders(self) -> set[str]:
        """The inputs named in the url, the arguments and the environment."""
        texts = [self.data.get("url") or "", *self.data.get("args", []), *self.data.get("env", {}).values()]
        return {name for text in texts for name in _PLACEHOLDER.findall(text)}

    def server(self, name: str, inputs: Mapping[str, str]) -> McpServerConfig:
        """The upstream definition for an install named ``name``, every ``{input}`` filled in; a missing input
        or a definition Warden would refuse is an InvalidInput naming the field."""
        missing = [FieldError(f"inputs.{input_['name']}", "required")
                   for input_ in self.data.get("inputs", []) if not inputs.get(input_["name"], "").strip()]
        if missing:
            raise InvalidInput("the template needs these inputs", missing)

        def filled(text: str) -> str:
            return _PLACEHOLDER.sub(lambda match: inputs[match.group(1)].strip(), text)

        auth = dict(self.data["auth"])
        definition: dict[str, Any] = {"name": name, "transport": self.data["transport"], "auth": auth}
        if self.data["transport"] == "stdio":
            definition |= {"command": self.data["command"], "args": [filled(a) for a in self.data.get("args", [])],
                           "env": {k: filled(v) for k, v in self.data.get("env", {}).items()}}
        else:
            definition["url"] = filled(self.data["url"])
        try:
            return McpServerConfig.model_validate(definition)
        except ValidationError as exc:
            raise InvalidInput("the server this template makes is not valid", [
                FieldError(".".join(str(part) for part in error["loc"]) or "name", error["msg"])
                for error in exc.errors()]) from None


def schema(directory: Path = SHIPPED) -> dict[str, Any]:
    return json.loads((directory / "schema.json").read_text())  # type: ignore[no-any-return]


def validate(data: Any, validator: Draft202012Validator) -> list[str]:
    """What is wrong with a template document (empty when nothing): the schema's findings, then the inputs
    named in its definition but not declared, or declared but never used."""
    problems = [f"{'/'.join(str(p) for p in error.absolute_path) or '(document)'}: {error.message}"
                for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))]
    if problems:
        return problems
    template = StoreTemplate(data)
    declared = {input_["name"] for input_ in data.get("inputs", [])}
    used = template.placeholders()
    problems += [f"inputs: {{{name}}} is used but not declared" for name in sorted(used - declared)]
    problems += [f"inputs: {name} is declared but never used" for name in sorted(declared - used)]
    return problems


def load_templates(directory: Path = SHIPPED) -> list[StoreTemplate]:
    """Every ``*.json`` template of ``directory`` (but the schema), validated, by id; an invalid file or two
    files with one id raise TemplateInvalid naming the file."""
    validator = Draft202012Validator(schema(directory))
    templates: dict[str, StoreTemplate] = {}
    for path in sorted(directory.glob("*.json")):
        if path.name == "schema.json":
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise TemplateInvalid(f"{path.name}: not JSON: {exc}") from None
        problems = validate(data, validator)
        if problems:
            raise TemplateInvalid(f"{path.name}: " + "; ".join(problems))
        if data["id"] in templates or path.stem != data["id"]:
            raise TemplateInvalid(f"{path.name}: the id {data['id']!r} must be unique and name its file")
        templates[data["id"]] = StoreTemplate(data)
    return list(templates.values())
