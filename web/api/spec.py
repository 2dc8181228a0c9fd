"""The OpenAPI 3.1 document, generated from the route registry and the pydantic models.

Paths, methods, summaries (each view's docstring), parameters, request bodies, responses per
status and security come from :class:`web.api.registry.Operation`; every schema comes from
pydantic (``models_json_schema``, references under ``#/components/schemas/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from evaluator.version import PADDOCK_VERSION
from web.api.registry import PATH_STRINGS, Auth, Binary, Document, Operation
from web.api.schemas import MAX_ID, Error

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearer"
_RULE_ARG = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}  # ids: see the registry
DESCRIPTION = """\
The league for scripts: list tracks, leagues and races, upload a model to a race, follow its
evaluation, fetch results and replays; organizers create leagues, seasons and races and manage
entries.

Authenticate with a personal API token: `Authorization: Bearer pdk_...`. Reading public data
needs no token. A token has a scope, chosen when it is made: `read` tokens only read (any other
method answers 403), `submit` tokens also upload and organize; an expired or revoked token
answers 401. Errors are `{"error": {"code", "message"}}`. Lists take `page` and `per_page`
and answer `{"items": [...], "pagination": {...}}`. Times are ISO 8601 in UTC.
""" + f"""
Ids are 1 to {MAX_ID}; a path with any other number names nothing (404). Names are shown to
everyone: they are NFKC-normalised and runs of whitespace count as one space; control
characters (the names' `pattern`), format (bidi, zero-width), private-use and unassigned
characters are refused, and a required name needs a visible character. A reason needs a
visible character too; invisible characters are dropped from it, as from descriptions.
Lengths count the text as sent.
"""


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/races/<int:race_id>`` → ``/races/{race_id}``."""
    return _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule)


def build_document(operations: Sequence[Operation], base_path: str) -> dict[str, Any]:
    """The OpenAPI document of ``operations``, served under ``base_path``."""
    refs, defs = models_json_schema(_models(operations), ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = defs.get("$defs", {})
    build = _Builder(refs, schemas)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(openapi_path(op.rule), {})[op.method.lower()] = build.operation(op)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Paddock API", "version": PADDOCK_VERSION, "description": DESCRIPTION},
        "servers": [{"url": base_path}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "http", "scheme": "bearer",
                "description": "a personal API token (pdk_...), shown once when created"}},
        },
    }


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Error, "serialization"): None}
    for op in operations:
        for model in (op.query, op.body):
            if model is not None:
                found[(model, "validation")] = None
        for body in op.responses.values():
            if isinstance(body, type) and issubclass(body, BaseModel):
                found[(body, "serialization")] = None
    return list(found)


class _Builder:
    """Operation objects, with references into the generated component schemas."""

    def __init__(self, refs: Mapping[tuple[Any, JsonSchemaMode], Any],
                 schemas: Mapping[str, Any]) -> None:
        self.refs = refs
        self.schemas = schemas

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        """The schema object referring to ``model``'s component."""
        return dict(self.refs[(model, mode)])

    def component(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        """``model``'s component schema itself."""
        name = self.refs[(model, mode)]["$ref"].rsplit("/", 1)[-1]
        schema: dict[str, Any] = self.schemas[name]
        return schema

    def operation(self, op: Operation) -> dict[str, Any]:
        """The operation object of ``op``."""
        out: dict[str, Any] = {"operationId": op.endpoint, "tags": [op.tag],
                               "summary": op.summary}
        if op.description:
            out["description"] = op.description
        params = _path_parameters(op.rule) + self.query_parameters(op)
        if params:
            out["parameters"] = params
        if op.body is not None:
            media = "multipart/form-data" if op.multipart else "application/json"
            out["requestBody"] = {"required": True, "content": {
                media: {"schema": self.ref(op.body, "validation")}}}
        responses = {str(status): self.response(status, body)
                     for status, body in sorted(op.responses.items())}
        for status in op.errors:
            responses[str(status)] = self.error_response(status)
        out["responses"] = responses
        out["security"] = {Auth.REQUIRED: [{SECURITY_SCHEME: []}],
                           Auth.OPTIONAL: [{}, {SECURITY_SCHEME: []}],
                           Auth.NONE: []}[op.auth]
        return out

    def query_parameters(self, op: Operation) -> list[dict[str, Any]]:
        """The query parameters: the fields of the operation's query model."""
        if op.query is None:
            return []
        schema = self.component(op.query, "validation")
        required = set(schema.get("required", []))
        params = []
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                     "schema": {k: v for k, v in prop.items()
                                                if k != "description"}}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
        return params

    def response(self, status: int, body: Any) -> dict[str, Any]:
        """A success response: JSON through its model, or raw bytes."""
        out: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if body is Binary:
            out["content"] = {Binary.media_type: {"schema": {
                "type": "string", "contentMediaType": Binary.media_type}}}
            out["headers"] = {"Content-Disposition": {
                "description": "attachment; filename=...", "schema": {"type": "string"}}}
        elif body is Document:
            out["content"] = {"application/json": {"schema": {"type": "object"}}}
        else:
            out["content"] = {"application/json": {"schema": self.ref(body, "serialization")}}
        return out

    def error_response(self, status: int) -> dict[str, Any]:
        """An error response: the Error schema, with the headers that go with the status."""
        out: dict[str, Any] = {"description": HTTPStatus(status).phrase, "content": {
            "application/json": {"schema": self.ref(Error, "serialization")}}}
        if status == 401:
            out["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if status == 429:
            out["headers"] = {"Retry-After": {"description": "seconds to wait",
                                              "schema": {"type": "string"}}}
        return out


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    return [{"name": m.group("name"), "in": "path", "required": True,
             "schema": _path_schema(m.group("converter") or "", m.group("name"))}
            for m in _RULE_ARG.finditer(rule)]


def _path_schema(converter: str, name: str) -> dict[str, Any]:
    """An id's bounds, a slug's or a racer's name's pattern, else any string."""
    if converter in _CONVERTER_SCHEMAS:
        return dict(_CONVERTER_SCHEMAS[converter])
    if name in PATH_STRINGS:
        return {"type": "string", "pattern": PATH_STRINGS[name].pattern.pattern}
    return {"type": "string"}
