"""The API's own errors: refused fields, malformed bodies and missing tokens, answered as
``{"error": {"code", "message"}}`` like every other error under /api (see :mod:`web.errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint
from pydantic import ValidationError

from web.errors import json_error

MAX_FIELD_ERRORS = 3  # a message names at most this many fields
AUTHENTICATE = 'Bearer realm="paddock"'


class ApiError(Exception):
    """Raised by the API's views and helpers to answer with an error status."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def invalid_fields(err: ValidationError) -> ApiError:
    """A 400 naming each refused field and why: ``laps: input should be a valid integer``."""
    parts = []
    for e in err.errors()[:MAX_FIELD_ERRORS]:
        where = ".".join(str(p) for p in e["loc"]) or "the request body"
        parts.append(f"{where}: {_lower_first(e['msg'])}")
    more = len(err.errors()) - MAX_FIELD_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return ApiError(400, "invalid", "; ".join(parts))


def bad_body(message: str) -> ApiError:
    """A 400 for a body that could not be read at all."""
    return ApiError(400, "bad_request", message)


def unauthorized(message: str) -> ApiError:
    """A 401 asking for a bearer token."""
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": AUTHENTICATE})


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _answer(err: ApiError) -> Any:
    response = json_error(err.status, err.code, err.message)
    response.headers.update(err.headers)
    return response


def init_blueprint(bp: Blueprint) -> None:
    """Answer :class:`ApiError` raised in ``bp``'s views."""
    bp.register_error_handler(ApiError, _answer)
