"""The API's blueprint and route registry, and the OpenAPI document's own route.

Every view is registered through :data:`api` (:class:`web.api.registry.Registry`), which
records what the OpenAPI document at ``/api/v1/openapi.json`` says about it. The whole API
shares one rate limit per token (or address), ``RATELIMIT_API``; uploads also count against
``RATELIMIT_UPLOAD``, one budget per user shared with the website's uploads
(:data:`web.extensions.upload_budget`).
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint

from web.api import errors
from web.api.registry import Auth, Document, Registry
from web.extensions import limit, limiter

PREFIX = "/api/v1"

bp = Blueprint("api", __name__, url_prefix=PREFIX)
api = Registry(bp)
limiter.shared_limit(lambda: limit("api"), scope="api")(bp)
errors.init_blueprint(bp)


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once per process: routes are fixed at import)."""
    from web.api.spec import build_document

    return build_document(api.operations, PREFIX)


@api.route("/openapi.json", tag="meta", auth=Auth.NONE, responses={200: Document})
def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API, generated from its code."""
    return document()
