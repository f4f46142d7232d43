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
from broker.kernel.clock import Clock
from broker.kernel.errors import Conflict, FieldError, InvalidInput, NotFound
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database

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


def problems_of(data: Any, validator: Draft202012Validator) -> list[tuple[str, str]]:
    """What is wrong with a template document, as (where, what) (empty when nothing): the schema's findings,
    then the inputs named in its definition but not declared, or declared but never used."""
    problems = [(".".join(str(p) for p in error.absolute_path), error.message)
                for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])]
    if problems:
        return problems
    template = StoreTemplate(data)
    declared = {input_["name"] for input_ in data.get("inputs", [])}
    used = template.placeholders()
    problems += [("inputs", f"{{{name}}} is used but not declared") for name in sorted(used - declared)]
    problems += [("inputs", f"{name} is declared but never used") for name in sorted(declared - used)]
    return problems


def validate(data: Any, validator: Draft202012Validator) -> list[str]:
    """The problems of a template document as lines (``where: what``)."""
    return [f"{where or '(document)'}: {what}" for where, what in problems_of(data, validator)]


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


class StoreTemplates:
    """The shipped templates and those admins added for their organisation; the added ones are kept in the
    store, so every instance offers the same Store without being told."""

    def __init__(self, shipped: list[StoreTemplate], db: Database, clock: Clock, directory: Path = SHIPPED) -> None:
        self._shipped = {template.id: template for template in shipped}
        self._db = db
        self._clock = clock
        self._validator = Draft202012Validator(schema(directory))

    async def all(self) -> list[tuple[StoreTemplate, bool]]:
        """Every template with whether it is a private (added) one: the shipped first, then the added by id."""
        added = await self._db.fetch("SELECT document FROM store_templates ORDER BY id")
        return [(template, False) for template in self._shipped.values()] + \
            [(StoreTemplate(json.loads(row["document"])), True) for row in added]

    async def get(self, template_id: str) -> StoreTemplate | None:
        if template_id in self._shipped:
            return self._shipped[template_id]
        row = await self._db.fetchrow("SELECT document FROM store_templates WHERE id = ?", template_id)
        return StoreTemplate(json.loads(row["document"])) if row else None

    async def add(self, document: dict[str, Any], created_by: str | None) -> StoreTemplate:
        """A template validated as the shipped ones are (the same schema, inputs declared and used); the
        problems are named by where they are in the document (``template.<path>``)."""
        problems = problems_of(document, self._validator)
        if problems:
            raise InvalidInput("the template is not valid", [
                FieldError("template" + (f".{where}" if where else ""), what) for where, what in problems])
        template_id = str(document["id"])
        if template_id in self._shipped:
            raise Conflict(f"{template_id!r} is a shipped template's id")
        try:
            await self._db.execute("INSERT INTO store_templates (id, document, created_by, created_at)"
                                   " VALUES (?, ?, ?, ?)", template_id, json.dumps(document), created_by,
                                   self._clock.now())
        except UniqueViolation as exc:
            raise Conflict(f"a template {template_id!r} exists already") from exc
        return StoreTemplate(document)

    async def delete(self, template_id: str) -> None:
        if template_id in self._shipped:
            raise Conflict(f"{template_id!r} is shipped with Warden and cannot be removed")
        if not await self._db.execute("DELETE FROM store_templates WHERE id = ?", template_id):
            raise NotFound(f"no added template {template_id!r}")
