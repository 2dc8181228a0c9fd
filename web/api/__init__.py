"""The JSON API under /api/v1: bearer tokens, JSON errors, an OpenAPI document.

One blueprint (:mod:`web.api.blueprint`), its views in one module per area; each module
registers its views on the blueprint when it is imported, which is what importing them here
is for.
"""

from __future__ import annotations

from web.api import catalog, entries, evaluations, live, races  # noqa: F401  (they register views)
from web.api.blueprint import bp

__all__ = ["bp"]
