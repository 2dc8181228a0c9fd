"""What a web process keeps between requests: whole pages for visitors, and the rendered
longest tables. :func:`init_app` installs it (with the league's data versions) on an app.

**Pages.** The race and league pages are what spectators load most, and what a crowd reloads
while a race is on. For a visitor who is not signed in (and has no message waiting to be
shown) such a page is the same for everyone, so each web process keeps the HTML it rendered,
per URL, and serves it again while both hold:

* the league's data stamp is unchanged (:func:`league.read.cache.data_stamp`: no commit in this
  process touched what public pages read, and no new result, entry, evaluation, race points
  or division appeared in the database), and
* it is younger than ``PUBLIC_PAGE_CACHE_S`` seconds (config; default 1, 0 turns the cache
  off), which bounds how long a change made by another process (an organizer renaming a
  race through another worker) takes to show.

Signed-in users always get a freshly rendered page.

**Tables.** :mod:`league.read.cache` hands out the *same* list object for a race's leaderboard
(a season's standings) for as long as its version is unchanged. Rendering 100 leaderboard rows
costs more than everything else on the race page together, so the rendered table is kept
beside the list it was rendered from and reused while the league hands out that very object: a
new result or a disqualification makes a new list, and the table is rendered again. Tables
hold nothing that depends on the viewer, only on the data and the site's URL prefix.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask import session as cookie_session
from markupsafe import Markup

from league.read import cache
from web.helpers import session, viewer

DEFAULT_MAX_AGE_S = 1.0
MAX_PAGES = 256  # per app; the least recently used go first
MAX_FRAGMENTS = 256  # per app; the least recently used go first
CONFIG_KEY = "PUBLIC_PAGE_CACHE_S"
EXTENSION = "paddock.pagecache"
KEY_ARGS = ("page",)  # the query arguments the cached pages read

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Page:
    stamp: tuple[Any, ...]
    rendered_at: float  #: time.monotonic()
    html: str


@dataclass(frozen=True)
class Kept:
    """One app's kept pages and tables."""

    pages: cache.Lru[Hashable, _Page] = field(default_factory=lambda: cache.Lru(MAX_PAGES))
    #: (the object a table was rendered from, its HTML)
    fragments: cache.Lru[Hashable, tuple[object, Markup]] = field(
        default_factory=lambda: cache.Lru(MAX_FRAGMENTS))


def init_app(app: Flask) -> None:
    """Keep pages and tables for ``app``, and have this process count its own commits in the
    league's data versions (:func:`league.read.cache.install`)."""
    cache.install()
    app.extensions[EXTENSION] = Kept()


def kept() -> Kept:
    """The current app's kept pages and tables."""
    found: Kept = current_app.extensions[EXTENSION]
    return found


def max_age() -> float:
    """How long a page may be served again, seconds (0: never)."""
    return float(current_app.config.get(CONFIG_KEY, DEFAULT_MAX_AGE_S))


def _cacheable() -> bool:
    return request.method in ("GET", "HEAD") and viewer() is None \
        and not cookie_session.get("_flashes") and max_age() > 0


def for_visitors(view: F) -> F:
    """Serve ``view``'s page from the cache to visitors who are not signed in."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _cacheable():
            return view(*args, **kwargs)
        pages = kept().pages
        # links depend on the site's prefix; only the arguments pages read make a new key, so
        # made-up query strings cannot push the real pages out
        key = (request.script_root, request.path,
               tuple((k, request.args.get(k, "")) for k in KEY_ARGS))
        stamp = cache.data_stamp(session())
        now = time.monotonic()
        page = pages.get(key)
        if page is not None and page.stamp == stamp and now - page.rendered_at < max_age():
            return page.html
        html = view(*args, **kwargs)
        if isinstance(html, str):  # a page, not a redirect or another response
            pages.put(key, _Page(stamp, now, html))
        return html
    return wrapper  # type: ignore[return-value]


def cached_html(key: Hashable, source: object, render: Callable[[], str]) -> Markup:
    """The HTML ``render()`` made from ``source`` under ``key``, rendered again only when
    ``source`` is not the object it was rendered from."""
    fragments = kept().fragments
    full_key = (request.script_root, key)
    held = fragments.get(full_key)
    if held is not None and held[0] is source:
        return held[1]
    html = Markup(render())  # a template's own output, escaped as it was rendered
    fragments.put(full_key, (source, html))
    return html


def clear() -> None:
    """Forget the current app's kept pages and tables."""
    kept().pages.clear()
    kept().fragments.clear()
