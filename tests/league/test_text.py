"""Cleaning names and descriptions users type."""

from __future__ import annotations

import pytest

from league.errors import InvalidInput
from league.rules import leagues
from league.rules.text import clean_description, clean_name


@pytest.mark.parametrize("raw", [
    "Evil\u202eCorp",  # right-to-left override
    "Zero\u200bWidth",  # zero-width space
    "Joi\u200dner",  # zero-width joiner
    "\ufeffBOM",
    "Bell\x07",
    "Iso\u2066late",  # left-to-right isolate
])
def test_names_with_invisible_or_direction_characters_are_refused(raw):
    with pytest.raises(InvalidInput, match="invisible or direction-changing"):
        clean_name(raw, "a league name", 120)


def test_names_are_normalised_and_trimmed():
    assert clean_name("  Ｐａｄｄｏｃｋ \t  Cup ", "a name", 40) == "Paddock Cup"  # NFKC + spaces
    assert clean_name("ﬁnal", "a name", 40) == "final"
    with pytest.raises(InvalidInput, match="a name has 1 to 5 characters"):
        clean_name("toolong", "a name", 5)
    with pytest.raises(InvalidInput):
        clean_name("   ", "a name", 5)
    assert clean_name("", "a name", 5, required=False) == ""


def test_descriptions_keep_lines_and_drop_invisible_characters():
    text = "First line\u200b  \r\nSecond\u202e line\n\n\n\nThird"
    assert clean_description(text) == "First line\nSecond line\n\nThird"
    with pytest.raises(InvalidInput, match="at most 10"):
        clean_description("x" * 11, 10)


def test_league_names_go_through_the_cleaner(session, make):
    org = make.user(session, "org", "organizer")
    with pytest.raises(InvalidInput):
        leagues.create_league(session, org, "spoof", "Admin\u202e")
    league = leagues.create_league(session, org, "fine", " Fine   League ",
                                   description="<b>bold</b>\u200b", divisions=(" Top ",))
    assert league.name == "Fine League"
    assert league.description == "<b>bold</b>"  # kept as text; templates escape it
    assert [d.name for d in league.divisions] == ["Top"]
