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

Signed-in users never get a page of an age: see *Pages per session* below.

Pages are kept per URL path, page number and racer filter, read as the views read them
(:func:`page_number`: ``01`` is page 1, junk is page 1, a number past :data:`MAX_PAGE` is that
page; :func:`racer_filter`), so spellings of one page share one kept copy, and a view that
finds its page past the end of its list, or no racer of that name, says so
(:func:`do_not_keep`): made-up page numbers and names cannot push the real pages out.

**Tables.** :mod:`league.read.cache` hands out the *same* list object for a race's leaderboard
(a season's standings, a rating table, a bracket) for as long as its version is unchanged.
Rendering 100 leaderboard rows costs more than everything else on the race page together, so
the rendered table is kept beside the list it was rendered from and reused while the league
hands out that very object: a new result or a disqualification makes a new list, and the table
is rendered again. Tables hold nothing that depends on the viewer, only on the data and the
site's URL prefix.

**Parts and items.** The same holds for a larger part of a page, such as everything a race
page shows below the site's header: it is kept beside the object it was rendered from *and*
the values of everything else it shows (the race's columns, the viewer's possible actions,
...), and reused only while both are unchanged. An item of a long list (a heat of a heat list)
is kept beside the values it shows. So a signed-in user's page is still rendered from fresh
data (their own header, messages and form tokens, the race and its heats as they are in the
database now), and only the work of turning unchanged values into the same HTML again is
saved.

**Pages per session.** A whole page can also be kept for one session (:func:`for_viewers`,
the race page): the view names every value the page shows, read in plain rows without loading
ORM objects (the race's, its league's and season's rows, the viewer's user row and
membership, the tables the league's caches hand out now, the time's effect on what the viewer
may do), and the page is served again only while all of them, and the session's user, epoch
and CSRF token, are what it was rendered from. So a signed-in racer's page is exactly what a
fresh render would make (their header and log-out form, their messages, their new entry, an
organizer's change in another process), without the ORM loads and the rendering.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from flask import session as cookie_session
from flask_login.config import COOKIE_NAME
from flask_login.utils import _create_identifier
from markupsafe import Markup

from league.read import cache
from web.helpers import MAX_PAGE, session
from web.security import EPOCH_KEY

DEFAULT_MAX_AGE_S = 1.0
MAX_PAGES = 256  # per app; the least recently used go first
MAX_FRAGMENTS = 256  # per app; the least recently used go first
MAX_PARTS = 256  # per app; the least recently used go first
MAX_VIEWER_PAGES = 256  # per app: whole pages kept per session (for_viewers); LRU
MAX_ITEMS = 12_000  # per app: every heat of a 10,000-heat race (about 2 KB each); LRU
CONFIG_KEY = "PUBLIC_PAGE_CACHE_S"
EXTENSION = "paddock.pagecache"
_USER_ID = "_user_id"  # Flask-Login's session key of the signed-in user's id
_DO_NOT_KEEP = "paddock_pagecache_do_not_keep"  # flask.g: this request's page is not kept
MAX_RACER_FILTER = 40  # characters of ?racer= a page reads (a user name is at most this long)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Page:
    stamp: tuple[Any, ...]
    rendered_at: float  #: time.monotonic()
    html: str


@dataclass(frozen=True)
class Kept:
    """One app's kept pages, tables and parts of pages."""

    pages: cache.Lru[Hashable, _Page] = field(default_factory=lambda: cache.Lru(MAX_PAGES))
    #: tables: (the object one was rendered from, the other values it shows, its HTML)
    fragments: cache.Lru[Hashable, tuple[object, Hashable, Markup]] = field(
        default_factory=lambda: cache.Lru(MAX_FRAGMENTS))
    #: parts of pages, the same way
    parts: cache.Lru[Hashable, tuple[object, Hashable, Markup]] = field(
        default_factory=lambda: cache.Lru(MAX_PARTS))
    #: items of long lists (a heat of a heat list), the same way
    items: cache.Lru[Hashable, tuple[object, Hashable, Markup]] = field(
        default_factory=lambda: cache.Lru(MAX_ITEMS))
    #: whole pages per session (:func:`for_viewers`): what they show, the session, the HTML
    viewer_pages: cache.Lru[Hashable, tuple[object, tuple[Any, ...], str]] = field(
        default_factory=lambda: cache.Lru(MAX_VIEWER_PAGES))


def init_app(app: Flask) -> None:
    """Keep pages and tables for ``app``, and have this process count its own commits in the
    league's data versions (:func:`league.read.cache.install`)."""
    cache.install()
    app.extensions[EXTENSION] = Kept()


def kept() -> Kept:
    """The current app's kept pages, tables and parts of pages."""
    found: Kept = current_app.extensions[EXTENSION]
    return found


def max_age() -> float:
    """How long a page may be served again, seconds (0: never)."""
    return float(current_app.config.get(CONFIG_KEY, DEFAULT_MAX_AGE_S))


def page_number() -> int:
    """The ``?page=`` of this request as pages read it: 1 when missing, not a number or below
    1, at most :data:`MAX_PAGE` (``01``, ``001`` and ``1`` are one page)."""
    page = request.args.get("page", 1, type=int) or 1
    return min(max(1, page), MAX_PAGE)


def racer_filter() -> str:
    """The ``?racer=`` of this request as pages read it: trimmed, at most
    :data:`MAX_RACER_FILTER` characters; "" without one."""
    return (request.args.get("racer") or "").strip()[:MAX_RACER_FILTER]


def do_not_keep() -> None:
    """Keep no copy of the page this request renders (a page past the end of its list)."""
    setattr(g, _DO_NOT_KEEP, True)


def _cacheable() -> bool:
    return _plain_read() and session_user_id() is None and max_age() > 0


def _plain_read() -> bool:
    """A GET or HEAD without a message waiting for the viewer and without a remember-me
    cookie (which would sign a user in while the page is served)."""
    return request.method in ("GET", "HEAD") and not cookie_session.get("_flashes") \
        and current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME) not in request.cookies


def session_user_id() -> int | None:
    """The id of the user this request's session is signed in as, read from the session
    alone (no query; :func:`web.security.load_user` still has to accept the session): None
    for a visitor."""
    value = cookie_session.get(_USER_ID)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _session_part() -> tuple[Any, ...]:
    """What a page takes from the session: its user, the session's epoch (``load_user``
    accepts it or not) and its CSRF token (the signed form of which the header's log-out
    form holds)."""
    return (cookie_session.get(_USER_ID), cookie_session.get(EPOCH_KEY, 0),
            cookie_session.get(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")))


def _from_its_browser() -> bool:
    """Whether a signed-in session still comes from the browser it was issued to (else
    Flask-Login's session protection has to see the request); True for a visitor."""
    return cookie_session.get(_USER_ID) is None \
        or cookie_session.get("_id") == _create_identifier()


def for_visitors(view: F, *, by_racer: bool = False) -> F:
    """Serve ``view``'s page from the cache to visitors who are not signed in; ``by_racer``:
    the page reads ``?racer=`` too (:func:`racer_filter`)."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _cacheable():
            return view(*args, **kwargs)
        pages = kept().pages
        # links depend on the site's prefix; only the arguments pages read (as they read them)
        # make a new key, so made-up query strings cannot push the real pages out
        key = (request.script_root, request.path, page_number(),
               racer_filter() if by_racer else "")
        stamp = cache.data_stamp(session())
        now = time.monotonic()
        page = pages.get(key)
        if page is not None and page.stamp == stamp and now - page.rendered_at < max_age():
            return page.html
        html = view(*args, **kwargs)
        # a page, not a redirect or another response; not one past the end of its list
        if isinstance(html, str) and not g.get(_DO_NOT_KEEP):
            pages.put(key, _Page(stamp, now, html))
        return html
    return wrapper  # type: ignore[return-value]


def for_viewers(view: F, values: Callable[..., object], *, by_racer: bool = False) -> F:
    """Serve ``view``'s page again, to the same session, only while nothing it shows changed:
    ``values(*args, **kwargs)`` reads everything the page shows besides the session (None
    when it cannot tell without rendering), and a kept page is served only while those values
    are equal (``==``; objects handed out by the league's caches compare as the very same
    object, see :class:`Same`) and the session's user, epoch and CSRF token are the same.

    Unlike :func:`for_visitors` no age is allowed: a kept page is exactly the page a fresh
    render would make from the same rows. A message waiting for the viewer, a CSRF token
    with a time limit (``WTF_CSRF_TIME_LIMIT``) or a session that no longer comes from the
    browser it was issued to (Flask-Login's session protection must see it) always makes a
    fresh page."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _plain_read() or current_app.config.get("WTF_CSRF_TIME_LIMIT") is not None \
                or not _from_its_browser():
            return view(*args, **kwargs)
        key = (request.script_root, request.path, page_number(),
               racer_filter() if by_racer else "", cookie_session.get(_USER_ID))
        shown = values(*args, **kwargs)
        if shown is not None:
            held = kept().viewer_pages.get(key)
            if held is not None and held[0] == shown and held[1] == _session_part():
                return held[2]
        html = view(*args, **kwargs)
        # the session part after rendering: the render may have made the session's CSRF token
        if shown is not None and isinstance(html, str) and not g.get(_DO_NOT_KEEP):
            kept().viewer_pages.put(key, (shown, _session_part(), html))
        return html
    return wrapper  # type: ignore[return-value]


class Same:
    """Compares equal only to a :class:`Same` of the very same object (a list the league's
    caches hand out: equal while it is the same object, never compared row by row)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


def cached_html(key: Hashable, source: object, render: Callable[[], str],
                values: Hashable = ()) -> Markup:
    """The HTML table ``render()`` made from ``source`` and ``values`` under ``key``, rendered
    again when ``source`` is not the object it was rendered from or ``values`` differ (``==``)
    from those it was rendered with."""
    return _reused(kept().fragments, key, source, render, values)


def cached_part(key: Hashable, source: object, values: Hashable,
                render: Callable[[], str]) -> Markup:
    """A part of a page, kept like a table (:func:`cached_html`) apart from the tables:
    ``values`` are everything it shows that ``source`` does not hold."""
    return _reused(kept().parts, key, source, render, values)


def cached_item(key: Hashable, values: Hashable, render: Callable[[], str]) -> Markup:
    """One item of a long list, rendered again only when ``values`` (all it shows) differ
    from those it was rendered from: a page of a list renders its new and changed items."""
    return _reused(kept().items, key, None, render, values)


def _reused(store: cache.Lru[Hashable, tuple[object, Hashable, Markup]], key: Hashable,
            source: object, render: Callable[[], str], values: Hashable) -> Markup:
    full_key = (request.script_root, key)
    held = store.get(full_key)
    if held is not None and held[0] is source and held[1] == values:
        return held[2]
    html = Markup(render())  # a template's own output, escaped as it was rendered
    store.put(full_key, (source, values, html))
    return html


def clear() -> None:
    """Forget the current app's kept pages, tables and parts."""
    kept().pages.clear()
    kept().fragments.clear()
    kept().parts.clear()
    kept().items.clear()
    kept().viewer_pages.clear()
