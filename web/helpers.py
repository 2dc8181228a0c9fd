"""What every view needs: the session, the signed-in user, lookups that abort, pagination.

Lookups answer 404 for anything the viewer may not see, whether it exists or not: a private
league, another racer's model or entry looks exactly like a missing one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

from flask import abort, current_app, request
from flask_login import current_user
from sqlalchemy.orm import Session

from league.config import Settings
from league.errors import NotFound
from league.models import Entry, League, Race, User
from league.read import access
from league.rules import leagues, races
from league.storage import Storage
from web.extensions import db

T = TypeVar("T")
P = ParamSpec("P")
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000  # past any real list; keeps the SQL offset a sane number


def session() -> Session:
    """The request's database session (the view commits when it writes)."""
    s: Session = db.session  # type: ignore[assignment]
    return s


def settings() -> Settings:
    """The league settings the app was created with."""
    value: Settings = current_app.extensions["paddock.settings"]
    return value


def storage() -> Storage:
    """Content-addressed storage of models and replays."""
    return Storage(settings().storage_dir)


def viewer() -> User | None:
    """The signed-in user, or None for a visitor."""
    if current_user and current_user.is_authenticated:
        user: User = current_user._get_current_object()  # type: ignore[attr-defined]
        return user
    return None


def or_404(lookup: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``lookup(*args, **kwargs)``, or a 404 when the league says there is no such thing."""
    try:
        return lookup(*args, **kwargs)
    except NotFound:
        abort(404)


def get_league_or_404(slug: str, user: User | None = None) -> League:
    """The league ``slug`` if the viewer may see it, else 404."""
    return or_404(leagues.get_league, session(), slug, user or viewer())


def get_race_or_404(race_id: int, user: User | None = None) -> Race:
    """The race ``race_id`` if the viewer may see its league, else 404."""
    return or_404(races.get_race, session(), race_id, user or viewer())


def get_entry_or_404(entry_id: int, user: User | None = None) -> Entry:
    """An entry the viewer may see in full (its racer, the league's organizers), else 404."""
    return or_404(access.visible_entry, session(), entry_id, user or viewer())


def require_manager_or_404(league: League, user: User | None = None) -> User:
    """The viewer, if they manage ``league``; else 404 (organizer pages are not advertised)."""
    user = user or viewer()
    if user is None or not leagues.can_manage(session(), league, user):
        abort(404)
    return user


def managed_league(slug: str) -> tuple[League, User]:
    """The league ``slug`` and the viewer, if they manage it; else 404."""
    league = get_league_or_404(slug)
    return league, require_manager_or_404(league)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list."""

    items: Sequence[T]
    page: int  #: 1-based
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages there are (at least 1)."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def offset(self) -> int:
        """Index of the first item of this page in the whole list."""
        return (self.page - 1) * self.per_page

    def to_dict(self) -> dict[str, Any]:
        """The pagination block of an API list."""
        return {"page": self.page, "per_page": self.per_page, "total": self.total,
                "pages": self.pages}


def page_args(default_per_page: int = DEFAULT_PER_PAGE) -> tuple[int, int]:
    """``page`` and ``per_page`` from the query string, clamped to sane values."""
    page = request.args.get("page", 1, type=int) or 1
    per_page = request.args.get("per_page", default_per_page, type=int) or default_per_page
    return min(max(1, page), MAX_PAGE), min(max(1, per_page), MAX_PER_PAGE)


def paginate(items: Sequence[T], page: int, per_page: int) -> Page[T]:
    """Slice an already computed list into one page (a page past the end is empty)."""
    start = (page - 1) * per_page
    return Page(items[start:start + per_page], page, per_page, len(items))
