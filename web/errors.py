"""Error responses: an HTML page on the site, ``{"error": {"code", "message"}}`` under /api.

League errors map to statuses by their code; every API error has the one shape above.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from league.errors import LeagueError

API_PREFIX = "/api/"
# How a league error reads as an HTTP status.
ERROR_STATUS = {"invalid": 400, "forbidden": 403, "not_found": 404, "conflict": 409,
                "limit_exceeded": 429, "storage": 500}
# Machine-readable codes of HTTP errors raised by Flask itself.
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large",
              415: "unsupported_media_type", 429: "rate_limited", 500: "server_error"}


def is_api_request() -> bool:
    """Whether the request is for the JSON API (errors answer in JSON there)."""
    return request.path.startswith(API_PREFIX)


def json_error(status: int, code: str, message: str) -> Any:
    """The API's error response."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _message(err: HTTPException) -> str:
    if err.code == 413:
        return "the request is too large (a model file has at most 16 MiB)"
    if err.code == 429:
        return f"too many requests: the limit is {err.description}; try again later"
    return str(err.description or err.name)


def _names_nothing(err: MethodNotAllowed) -> bool:
    """Whether a 405's URL names nothing with any of its allowed methods either: its path
    has the shape of a route of another method but a value the route refuses (an id of 0),
    which is a 404. The URL map checks a rule's method before its values."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in err.valid_methods or ():
        try:
            adapter.match(method=method)
        except NotFound:
            continue
        except HTTPException:  # a redirect, or another method: the URL names something
            return False
        return False
    return True


def _http_error(err: HTTPException) -> Any:
    if err.code is None or err.code < 400:
        return err
    if isinstance(err, MethodNotAllowed) and _names_nothing(err):
        err = NotFound()
    if is_api_request():
        response = json_error(err.code, HTTP_CODES.get(err.code, "error"), _message(err))
        for name in ("Retry-After", "Allow"):
            value = dict(err.get_headers()).get(name)
            if value:
                response.headers[name] = value
        return response
    return render_template("errors/error.html", status=err.code, title=err.name,
                           message=_message(err)), err.code


def _csrf_error(err: CSRFError) -> Any:
    message = "the form expired or did not come from this site; reload the page and try again"
    if is_api_request():
        return json_error(400, "csrf", message)
    return render_template("errors/error.html", status=400, title="Form expired",
                           message=message), 400


def _league_error(err: LeagueError) -> Any:
    status = ERROR_STATUS.get(err.code, 400)
    if is_api_request():
        return json_error(status, err.code, str(err))
    return render_template("errors/error.html", status=status, title="That did not work",
                           message=str(err)), status


def init_app(app: Flask) -> None:
    """Register the error handlers on ``app``."""
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(LeagueError, _league_error)
