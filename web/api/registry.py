"""The API's route registry: one decorator registers a view on the blueprint and records the
operation the OpenAPI document describes, and parses and serializes through the very models
that document names, so the document cannot drift from what the API does.

A view declares its path, method, who may call it, its query and body models and its
response model per status; it receives the parsed ``query``, ``body`` and the ``caller``
as keyword arguments, and returns a response model instance (status 200), a pair
``(instance, status)``, or a ready :class:`flask.Response` for a binary body.

Path parameters are bounded as the document states them. An integer (``<int:race_id>``) is
an id, 1 to :data:`MAX_ID`: any other number matches no route, so it is answered 404 like a
missing object, never handed to the database. A string parameter named in
:data:`PATH_STRINGS` (a league's slug, a racer's name) must match its pattern, or it is
answered 404 once the token and the request have been checked (as a lookup would), without
a query.
"""

from __future__ import annotations

import enum
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ValidationError

from league.rules.accounts import NAME_RE
from league.rules.leagues import SLUG_RE
from web.api.auth import caller, require_caller
from web.api.errors import ApiError, bad_body, invalid_fields
from web.api.schemas import MAX_ID

_INT_ARG = "<int:"
_BOUNDED_INT_ARG = f"<int(min=1, max={MAX_ID}):"


@dataclass(frozen=True)
class PathString:
    """What a string path parameter may be: a value that does not match names nothing."""

    pattern: re.Pattern[str]
    what: str  #: what it names, for the 404 message ("league")


#: String path parameters by name, with the pattern the document states for them.
PATH_STRINGS = {"slug": PathString(SLUG_RE, "league"), "name": PathString(NAME_RE, "racer")}


class Auth(enum.StrEnum):
    """Who may call an operation."""

    NONE = "none"  #: nobody is identified (the OpenAPI document)
    OPTIONAL = "optional"  #: anyone; a token identifies the caller (and must be valid)
    REQUIRED = "required"  #: a valid token is needed


class Binary:
    """A response body of raw bytes (``application/octet-stream``), as an attachment."""

    media_type = "application/octet-stream"


class Document:
    """A response body that is a JSON object described elsewhere (the OpenAPI document)."""


Body = type[BaseModel] | type[Binary] | type[Document]


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the OpenAPI document describes it."""

    rule: str  #: Flask rule under the blueprint's prefix, e.g. ``/races/<int:race_id>``
    method: str
    endpoint: str
    tag: str
    summary: str
    description: str
    auth: Auth
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    multipart: bool
    responses: Mapping[int, Body]
    errors: tuple[int, ...]


@dataclass
class Registry:
    """The operations of one blueprint."""

    blueprint: Blueprint
    operations: list[Operation] = field(default_factory=list)

    def route(self, rule: str, method: str = "GET", *, tag: str,
              auth: Auth = Auth.OPTIONAL, query: type[BaseModel] | None = None,
              body: type[BaseModel] | None = None, multipart: bool = False,
              responses: Mapping[int, Body], errors: tuple[int, ...] = (),
              rate_limit: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register the decorated view for ``method`` on ``rule`` and record its operation.

        ``errors`` lists the error statuses besides those every operation may answer: 429
        (rate limit), 401 (a bad token, unless ``auth`` is NONE), 400 (with a query or
        body) and 413 (with a body). ``rate_limit`` is a limit of ``web.extensions.limiter``
        (such as ``upload_budget``) applied besides the API's own.
        """
        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            doc = inspect.cleandoc(view.__doc__ or "")
            summary, _, description = doc.partition("\n")
            op = Operation(rule, method.upper(), view.__name__, tag, summary.strip(),
                           description.strip(), auth, query, body, multipart,
                           dict(responses), _all_errors(auth, query, body, errors))
            wrapped = _wrap(view, op)
            if rate_limit is not None:
                wrapped = rate_limit(wrapped)
            self.blueprint.add_url_rule(rule.replace(_INT_ARG, _BOUNDED_INT_ARG), op.endpoint,
                                        wrapped, methods=[op.method])
            self.operations.append(op)
            return view
        return decorate


def _all_errors(auth: Auth, query: type[BaseModel] | None, body: type[BaseModel] | None,
                errors: tuple[int, ...]) -> tuple[int, ...]:
    codes = set(errors) | {429}
    if auth != Auth.NONE:
        codes.add(401)
    if query is not None or body is not None:
        codes.add(400)
    if body is not None:
        codes.add(413)
    return tuple(sorted(codes))


def _wrap(view: Callable[..., Any], op: Operation) -> Callable[..., Any]:
    @functools.wraps(view)
    def handle(**path: Any) -> Any:
        kwargs: dict[str, Any] = dict(path)
        if op.auth == Auth.REQUIRED:
            kwargs["caller"] = require_caller()
        elif op.auth == Auth.OPTIONAL:
            kwargs["caller"] = caller()
        if op.query is not None:
            kwargs["query"] = _parse(op.query, request.args.to_dict(), strict=False)
        if op.body is not None:
            kwargs["body"] = _form(op.body) if op.multipart else _json(op.body)
        _check_path(path)
        return _respond(op, view(**kwargs))
    return handle


def _check_path(path: Mapping[str, Any]) -> None:
    """404 for a string path parameter that cannot name anything (see :data:`PATH_STRINGS`)."""
    for name, value in path.items():
        rule = PATH_STRINGS.get(name)
        if rule is not None and not rule.pattern.fullmatch(value):
            raise ApiError(404, "not_found", f"no {rule.what} {value!r}")


def _parse(model: type[BaseModel], data: Any, *, strict: bool) -> BaseModel:
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as err:
        raise invalid_fields(err) from err


def _json(model: type[BaseModel]) -> BaseModel:
    """The JSON body, validated strictly: a string is never taken for a number."""
    data = request.get_data(cache=True)
    try:
        return model.model_validate_json(data or b"{}", strict=True)
    except ValidationError as err:
        if any(e["type"] == "json_invalid" for e in err.errors()):
            raise bad_body("the request body is not valid JSON") from err
        raise invalid_fields(err) from err


def _form(model: type[BaseModel]) -> BaseModel:
    """A multipart form: files as bytes, text fields as text."""
    data: dict[str, Any] = {key: value for key, value in request.form.items()}
    for key, upload in request.files.items():
        data[key] = upload.read()
    return _parse(model, data, strict=False)


def _respond(op: Operation, value: Any) -> Any:
    """Serialize what the view returned through the model declared for its status."""
    if isinstance(value, Response):
        return value
    body, status = value if isinstance(value, tuple) else (value, 200)
    declared = op.responses.get(status)
    if declared is Document and isinstance(body, dict):
        payload = body
    elif isinstance(declared, type) and issubclass(declared, BaseModel) and \
            isinstance(body, declared):
        payload = body.model_dump(mode="json")
    else:  # a defect of the view, never of the request
        raise TypeError(f"{op.endpoint} answered {status} with {type(body).__name__}, "
                        f"which its operation does not declare")
    response = jsonify(payload)
    response.status_code = status
    return response
