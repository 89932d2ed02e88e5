"""The OpenAPI schema at /openapi.json, made true to what the service does: FastAPI's generated schema (with the
security schemes `deps.caller` declares) plus 401 and the key-less alternative where they apply, the error
envelope on every error answer, optional parameters that are absent rather than null, the upload's file limits
from the settings, and bodiless HEAD answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from image2model.core.generators import generator_classes
from image2model.core.settings import Settings

ERROR_ENVELOPE = {
    "title": "Error",
    "type": "object",
    "description": "Every error answer of the service has this shape.",
    "required": ["error", "error_code", "message", "status_code", "details"],
    "properties": {
        "error": {"type": "boolean", "const": True},
        "error_code": {"type": "string", "examples": ["JOB_NOT_FOUND"]},
        "message": {"type": "string", "description": "What went wrong, in words a user can act on."},
        "status_code": {"type": "integer"},
        "details": {"type": "object"},
    },
}

SERVER_REFUSALS = (
    "\n\nAny request may also be refused before it reaches an operation, with the same error envelope: "
    "`408 REQUEST_TIMEOUT` when its headers or body arrive too slowly, `431 HEADERS_TOO_LARGE`, and "
    "`503 TOO_MANY_CONNECTIONS` (with `Retry-After`) when the process holds its limit of connections."
)

_UNAUTHORIZED = {
    "description": "UNAUTHORIZED: a missing or invalid API key or signed link (`WWW-Authenticate`)"
}


def _drop_null(parameter: dict[str, Any]) -> None:
    """An optional query or header parameter is absent, never `null` (FastAPI writes `anyOf: [T, null]`)."""
    branches = parameter.get("schema", {}).get("anyOf")
    if branches is None:
        return
    kept = [b for b in branches if b.get("type") != "null"]
    if len(kept) == 1:
        extra = {k: v for k, v in parameter["schema"].items() if k != "anyOf"}
        parameter["schema"] = {**kept[0], **extra}


def build_schema(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's schema of `app`, corrected as this module's docstring says."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=(app.description or "") + SERVER_REFUSALS,
        routes=app.routes,
    )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_ENVELOPE
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            parameters = operation.get("parameters", [])
            for parameter in parameters:
                _drop_null(parameter)
            if "security" in operation:  # it reads the caller's key (deps.caller)
                if not settings.auth_enabled or any(p["name"] == "token" for p in parameters):
                    operation["security"].append({})  # no key at all: auth off, or a signed link's `token`
                operation["responses"].setdefault("401", dict(_UNAUTHORIZED))
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    response["content"] = error_content
            if method == "head":
                for response in operation["responses"].values():
                    response.pop("content", None)
    upload = schema["paths"]["/api/v1/upload/"]["post"]["requestBody"]["content"]["multipart/form-data"]
    _describe_upload_form(upload["schema"], settings)
    return schema


_OPTION_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "choice": "string"}


def _describe_upload_form(form: dict[str, Any], settings: Settings) -> None:
    """The upload's fields as this server takes them: its file limit, its generators' names, formats and options
    (an option's range is the widest any generator takes), and no other field."""
    specs = [cls.spec for cls in generator_classes(settings).values()]
    properties = form["properties"]
    properties["files"]["maxItems"] = settings.max_files
    properties["generator"]["enum"] = sorted(spec.name for spec in specs)
    formats = sorted({f for spec in specs for f in spec.formats})
    properties["formats"]["pattern"] = f"^({'|'.join(formats)})(,({'|'.join(formats)}))*$"
    for spec in specs:
        for option in spec.options:
            described = properties.setdefault(
                option.name, {"type": _OPTION_TYPES[option.kind], "description": option.description}
            )
            if option.choices:
                described["enum"] = sorted({*described.get("enum", ()), *option.choices}, key=str)
            for bound, pick in (("minimum", min), ("maximum", max)):
                value = getattr(option, bound)
                if value is not None:
                    described[bound] = pick(described.get(bound, value), value)
    form["additionalProperties"] = False


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve `build_schema`'s schema (built once, on first request) at /openapi.json and in /docs."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
