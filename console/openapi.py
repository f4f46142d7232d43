"""The OpenAPI 3.1 document of the management API, generated from the same route table that serves it."""

from __future__ import annotations

import re
from typing import Any

from console.endpoints import ApiRoute

_PARAM = re.compile(r"{([a-z_]+)}")

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}}}},
    }}},
}


def openapi_document(routes: list[ApiRoute], version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Warden management API", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "A Warden API key with the 'management' surface"},
                "session": {"type": "apiKey", "in": "cookie", "name": "warden_session",
                            "description": "Console session; unsafe methods also need the X-CSRF-Token header"},
            },
        },
    }


def _operation(route: ApiRoute, schemas: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {str(route.status): {"description": "Success"}}
    for status, text in (("401", "Not signed in"), ("403", "Not permitted"), ("404", "Not found"),
                         ("409", "Conflicts with the current state"), ("422", "Invalid input; names the fields"),
                         ("429", "Too many failed sign-ins"), ("503", "Database unavailable")):
        responses[status] = {"description": text, **error}
    operation: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        # Derived from method and path, so it is unique by construction.
        "operationId": route.method.lower() + re.sub(r"[^a-z0-9]+", "_", route.path.removeprefix("/api")).rstrip("_"),
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ],
        "responses": responses,
    }
    if route.public:
        operation["security"] = []
    else:
        operation["security"] = [{"apiKey": []}, {"session": []}]
    if route.body is not None:
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[route.body.__name__] = schema
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}},
        }
    return operation
