"""Rendered HTML of the longest tables (leaderboards, standings), kept per web process.

:mod:`league.read.cache` hands out the *same* list object for a race's leaderboard (a season's
standings) for as long as its version is unchanged. Rendering 100 leaderboard rows costs more
than everything else on the race page together, so the rendered table is kept beside the list
it was rendered from and reused while the league hands out that very object: a new result or
a disqualification makes a new list, and the table is rendered again. Tables hold nothing
that depends on the viewer, only on the data and the site's URL prefix.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from flask import request
from markupsafe import Markup

MAX_FRAGMENTS = 256  # per process; the least recently used go first

_fragments: OrderedDict[Hashable, tuple[object, Markup]] = OrderedDict()
_lock = threading.Lock()


def cached_html(key: Hashable, source: object, render: Callable[[], str]) -> Markup:
    """The HTML ``render()`` made from ``source`` under ``key``, rendered again only when
    ``source`` is not the object it was rendered from."""
    full_key = (request.script_root, key)
    with _lock:
        held = _fragments.get(full_key)
        if held is not None and held[0] is source:
            _fragments.move_to_end(full_key)
            return held[1]
    html = Markup(render())  # a template's own output, escaped as it was rendered
    with _lock:
        _fragments[full_key] = (source, html)
        _fragments.move_to_end(full_key)
        while len(_fragments) > MAX_FRAGMENTS:
            _fragments.popitem(last=False)
    return html


def clear() -> None:
    """Forget every rendered fragment."""
    with _lock:
        _fragments.clear()
