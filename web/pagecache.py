"""Whole pages for visitors without an account, kept per web process for a moment.

The race and league pages are what spectators load most, and what a crowd reloads while a
race is on. For a visitor who is not signed in (and has no message waiting to be shown) such
a page is the same for everyone, so each web process keeps the HTML it rendered, per URL, and
serves it again while both hold:

* the league's data stamp is unchanged (:func:`league.read.cache.data_stamp`: no commit in this
  process touched what public pages read, and no new result, entry, evaluation, race points
  or division appeared in the database), and
* it is younger than ``PUBLIC_PAGE_CACHE_S`` seconds (config; default 1, 0 turns the cache
  off), which bounds how long a change made by another process (an organizer renaming a
  race through another worker) takes to show.

Signed-in users always get a freshly rendered page.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask import session as cookie_session

from league.read import cache
from web.helpers import session, viewer

DEFAULT_MAX_AGE_S = 1.0
MAX_PAGES = 256  # per app and process; the least recently used go first
CONFIG_KEY = "PUBLIC_PAGE_CACHE_S"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Page:
    stamp: tuple[Any, ...]
    rendered_at: float  #: time.monotonic()
    html: str


_pages: weakref.WeakKeyDictionary[Flask, OrderedDict[tuple[str, str], _Page]] = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()


KEY_ARGS = ("page",)  # the query arguments the cached pages read


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
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        # links depend on the site's prefix; only the arguments pages read make a new key, so
        # made-up query strings cannot push the real pages out
        key = (request.script_root, request.path,
               tuple((k, request.args.get(k, "")) for k in KEY_ARGS))
        stamp = cache.data_stamp(session())
        now = time.monotonic()
        with _lock:
            pages = _pages.setdefault(app, OrderedDict())
            page = pages.get(key)
            if page is not None and page.stamp == stamp and now - page.rendered_at < max_age():
                pages.move_to_end(key)
                return page.html
        html = view(*args, **kwargs)
        if isinstance(html, str):  # a page, not a redirect or another response
            with _lock:
                pages[key] = _Page(stamp, now, html)
                pages.move_to_end(key)
                while len(pages) > MAX_PAGES:
                    pages.popitem(last=False)
        return html
    return wrapper  # type: ignore[return-value]


def clear() -> None:
    """Forget every kept page."""
    with _lock:
        _pages.clear()
