"""Cleaning the text users give: names and descriptions shown to everyone.

Names are NFKC-normalised and may not carry control or format characters (bidi overrides,
zero-width joiners and spaces, BOMs), which could make one name look like another or reverse
the text around it on a page. Runs of whitespace collapse to one space. Descriptions keep
their line breaks but lose the same invisible characters.
"""

from __future__ import annotations

import re
import unicodedata

from league.errors import InvalidInput

_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
MAX_DESCRIPTION_CHARS = 4000


def _invisible(ch: str) -> bool:
    """Control (Cc), format (Cf: bidi, zero-width), private-use and unassigned characters."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs")


def has_invisible(text: str) -> bool:
    """Whether ``text`` holds control, format (bidi, zero-width) or unassigned characters."""
    return any(_invisible(ch) for ch in text)


def clean_name(text: str, what: str, max_chars: int, *, required: bool = True) -> str:
    """``text`` as a one-line display name; raise :class:`InvalidInput` when it is not one.

    ``what`` names the field in the message ("a league name has 1 to 120 characters").
    """
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be text")
    text = unicodedata.normalize("NFKC", text)
    if any(_invisible(ch) and ch not in "\t\n\r" for ch in text):
        raise InvalidInput(f"{what} may not contain invisible or direction-changing "
                           "characters")
    text = _SPACES.sub(" ", text).strip()
    low = 1 if required else 0
    if not low <= len(text) <= max_chars:
        raise InvalidInput(f"{what} has {low} to {max_chars} characters")
    return text


def clean_description(text: str, max_chars: int = MAX_DESCRIPTION_CHARS) -> str:
    """``text`` as a multi-line description: invisible characters dropped, lines trimmed."""
    if not isinstance(text, str):
        raise InvalidInput("a description must be text")
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "".join(ch for ch in text if ch in "\n\t" or not _invisible(ch))
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    text = _BLANK_LINES.sub("\n\n", text)
    if len(text) > max_chars:
        raise InvalidInput(f"a description has at most {max_chars} characters")
    return text
