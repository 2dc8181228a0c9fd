"""Exceptions raised by the league's domain functions; the web layer maps each to a status."""

from __future__ import annotations


class LeagueError(Exception):
    """Base class of every error the league raises on purpose."""

    code = "error"  #: machine-readable code, used in the API's error object


class InvalidInput(LeagueError, ValueError):
    """Raised when a value given by a user is malformed or out of range."""

    code = "invalid"


class NotFound(LeagueError, LookupError):
    """Raised when a looked-up object does not exist (or may not be seen by this user)."""

    code = "not_found"


class Forbidden(LeagueError):
    """Raised when a user may not do what they asked."""

    code = "forbidden"


class Conflict(LeagueError):
    """Raised when the request clashes with the current state (a closed race, a taken name)."""

    code = "conflict"


class LimitExceeded(LeagueError):
    """Raised when a submission limit of a race is reached."""

    code = "limit_exceeded"


class StorageError(LeagueError):
    """Raised when a stored file is missing or does not match its digest."""

    code = "storage"
