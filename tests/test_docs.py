"""The documentation keeps up with the code: every configuration key and API operation is described."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import BaseModel

from broker.config import WardenConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"


def sections() -> list[tuple[str, type[BaseModel]]]:
    found = []
    for name, field in WardenConfig.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.append((name, annotation))
    return found


@pytest.mark.parametrize(("section", "model"), sections())
def test_every_configuration_key_is_documented(section: str, model: type[BaseModel]) -> None:
    text = (DOCS / "configuration.md").read_text()
    assert f"## `{section}`" in text
    missing = [key for key in model.model_fields if f"| `{key}` |" not in text]
    assert missing == []


def test_every_management_operation_is_documented() -> None:
    from broker.edge.health import HealthChecks
    from broker.kernel.clock import SystemClock
    from console.app import ConsoleServices, ConsoleSettings, api_routes

    services = ConsoleServices(*[None] * len(dataclasses.fields(ConsoleServices)))  # type: ignore[arg-type]
    services = dataclasses.replace(services, store_templates=[], health=HealthChecks({}, 0))
    routes = api_routes(services, SystemClock(), ConsoleSettings("auto", (), 24, "0"))
    text = (DOCS / "management-api.md").read_text()
    missing = [f"{r.method} {r.path}" for r in routes if f"`{r.method} {r.path}`" not in text]
    assert missing == []
