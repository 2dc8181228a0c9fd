"""The organizer pages' forms: leagues, divisions, seasons, races, members and entries.

The validators mirror the league's own rules (``evaluator.race_settings.RaceConfig`` for races) so
that most mistakes are caught with a message next to the field before the league is asked;
what the league still refuses is attached to the field it concerns by :func:`attach_error`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    Field,
    FloatField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from evaluator.conditions import CUSTOM, DEFAULT_PRESET, LIMITS, PRESETS
from evaluator.conditions import LABELS as CONDITION_LABELS
from evaluator.errors import TrackError
from evaluator.race_settings import (
    BOT_SPEEDS_MPS,
    DEFAULT_BOT_SPEED_MPS,
    DEFAULT_BOTS,
    DEFAULT_FORMAT,
    DEFAULT_LAPS,
    DEFAULT_PENALTY_S,
    DEFAULT_RANKING,
    DEFAULT_TIME_CAP_S,
    DEFAULT_TRACK,
    DEFAULT_TRIALS,
    FORMAT_LABELS,
    FORMATS,
    MAX_BOTS,
    MAX_LAPS,
    MAX_OBSTACLES,
    MAX_SEED,
    MAX_TIME_CAP_S,
    MAX_TRACKS,
    MAX_TRIALS,
    MIN_TIME_CAP_S,
    PENALTIES_S,
    RANKING_LABELS,
    RANKINGS,
    Format,
    RaceConfigError,
    bots_json,
    parse_bots,
)
from evaluator.track_library import iter_tracks, library_names
from league.models import DEFAULT_POINTS, Division, MemberRole, Season, Visibility, utcnow
from league.rules.leagues import MAX_DIVISIONS, MAX_POINTS_PLACES
from league.rules.races import DEFAULT_ENTRIES_PER_DAY, KNOCKOUT_SIZES, OPTIONAL_RACE_RANGES
from league.rules.submissions import MAX_REASON_CHARS
from league.rules.text import MAX_DESCRIPTION_CHARS

# datetime-local inputs send and show "2026-06-01T12:00"; the first format is the one shown.
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M",
                    "%Y-%m-%d %H:%M:%S"]
BAD_DATETIME = "a date and time in UTC, like 2026-06-01T18:00"
VISIBILITIES = [(Visibility.PUBLIC.value, "Public: listed, anyone can see and join"),
                (Visibility.UNLISTED.value,
                 "Unlisted: anyone with the link can see it; joining needs the invite link"),
                (Visibility.PRIVATE.value, "Private: members only, joined with the invite link")]
RANKING_CHOICES = [(r.value, RANKING_LABELS[r][0]) for r in RANKINGS]
FORMAT_CHOICES = [(f.value, FORMAT_LABELS[f]) for f in FORMATS]
# The form is stricter than the league (races.OPTIONAL_RACE_RANGES) on two settings: rating
# rounds at least a minute and at most a week apart (the league: 0 s to a month), and entry
# limits of at least 1 (the league takes 0); blank is the form's "no limit".
MIN_ROUND_INTERVAL_S = 60
MAX_ROUND_INTERVAL_S = 7 * 24 * 3600
MAX_ENTRIES = OPTIONAL_RACE_RANGES["max_entries_total"][1]
MAX_HEATS_PER_ROUND = OPTIONAL_RACE_RANGES["heats_per_round"][1]
SECONDS_OF_PENALTY = f"{PENALTIES_S[0]:g} to {PENALTIES_S[1]:g} seconds"
# WTForms' own wording, the lower bound written as a whole number as it always was
TIME_CAP_OUT_OF_RANGE = f"Number must be between {MIN_TIME_CAP_S:g} and {MAX_TIME_CAP_S}."


def options(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """Choices of a select from (value, label) pairs."""
    return [SelectChoice(str(value), label) for value, label in pairs]


def _next_hour() -> dt.datetime:
    return utcnow().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)


def _this_minute() -> dt.datetime:
    """Now, to the minute (a datetime-local field shows no seconds)."""
    return utcnow().replace(second=0, microsecond=0)


def _week_later() -> dt.datetime:
    return _this_minute() + dt.timedelta(days=7)


def _season_end() -> dt.datetime:
    return _next_hour() + dt.timedelta(days=90)


def _random_seed() -> int:
    return secrets.randbelow(2**31)


def _when(label: str, default: Any, help_text: str = "UTC") -> DateTimeLocalField:
    return DateTimeLocalField(label, validators=[DataRequired(BAD_DATETIME)], default=default,
                              format=DATETIME_FORMATS, invalid_value_message=BAD_DATETIME,
                              description=help_text)


class MultiCheckboxField(SelectMultipleField):
    """A set of checkboxes (a multiple select that needs no ctrl-click)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class NewLeagueForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    slug = StringField("Address", validators=[Optional(), Length(3, 64)],
                       description="the league's address: /leagues/<address>; 3-64 lowercase "
                                   "letters, digits and '-'; blank: made from the name")
    description = TextAreaField("Description", validators=[Length(max=MAX_DESCRIPTION_CHARS)],
                                description="shown on the league page; plain text")
    visibility = SelectField("Visibility", choices=options(VISIBILITIES),
                             default=Visibility.PUBLIC.value)
    divisions = TextAreaField("Divisions", default="Division 1",
                              description="one per line, the top division first")

    def validate_divisions(self, field: Field) -> None:
        names = division_names(field.data or "")
        if not names:
            raise ValidationError("a league needs at least one division")
        if len(names) > MAX_DIVISIONS:
            raise ValidationError(f"at most {MAX_DIVISIONS} divisions")


def division_names(text: str) -> list[str]:
    """The division names of a one-per-line text (blank lines left out)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


class LeagueSettingsForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    description = TextAreaField("Description", validators=[Length(max=MAX_DESCRIPTION_CHARS)],
                                description="shown on the league page; plain text")
    visibility = SelectField("Visibility", choices=options(VISIBILITIES))
    telemetry_public = BooleanField(
        "Public telemetry: spectators also see what each policy commanded",
        description="off (the default): the commands in replays go only to each car's racer "
                    "and to the organizers")


class DivisionForm(FlaskForm):
    name = StringField("Division name", validators=[Length(max=80)])


class SeasonForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=80)], default="Season",
                       description="e.g. \"2026 spring\"")
    starts_at = _when("Starts", _next_hour)
    ends_at = _when("Ends", _season_end, "UTC; races of the season should close by then")
    points_table = StringField(
        "Points table", default=", ".join(str(p) for p in DEFAULT_POINTS),
        validators=[DataRequired()],
        description="points for 1st, 2nd, 3rd… place within a division, comma-separated, "
                    "highest first; places beyond the list get 0")
    promote = IntegerField("Promoted per division", default=2, validators=[
        InputRequired("a whole number, 0 or more"), NumberRange(0, 1000)])
    relegate = IntegerField("Relegated per division", default=2, validators=[
        InputRequired("a whole number, 0 or more"), NumberRange(0, 1000)])
    movement = SelectField("Counted as", default="racers",
                           choices=options([("racers", "racers"),
                                            ("percent", "percent of the division")]),
                           description="at the season's end the top racers of each division "
                                       "move up, the bottom ones down")

    def validate_ends_at(self, field: Field) -> None:
        if field.data and self.starts_at.data and field.data <= self.starts_at.data:
            raise ValidationError("a season must end after it starts")

    def validate_points_table(self, field: Field) -> None:
        field.data = ", ".join(str(p) for p in parse_points(field.data or ""))

    def _at_most_100_percent(self, field: Field) -> None:
        if self.movement.data == "percent" and field.data is not None and field.data > 100:
            raise ValidationError("at most 100 percent")

    validate_promote = validate_relegate = _at_most_100_percent

    @property
    def points(self) -> list[int]:
        """The points table as numbers."""
        return parse_points(self.points_table.data or "")


def parse_points(text: str) -> list[int]:
    """A comma-separated points table as numbers; raise ``ValidationError`` when it is not
    whole numbers >= 0, highest first."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValidationError("whole numbers >= 0 separated by commas, like 25, 18, 15")
    points = [int(p) for p in parts]
    if len(points) > MAX_POINTS_PLACES:
        raise ValidationError(f"at most {MAX_POINTS_PLACES} places")
    if points != sorted(points, reverse=True):
        raise ValidationError("highest first: each place gets no more points than the one "
                              "before")
    return points


def track_choices() -> list[SelectChoice]:
    """The tracks a race can use: the shipped library, then imported tracks."""
    try:
        return options((t.name, f"{t.title} ({t.name})" if t.title != t.name else t.name)
                       for t in iter_tracks())
    except TrackError:  # an unreadable import catalog: the library still works
        return options((name, name) for name in library_names())


class RaceForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=120)],
                       description="blank: the track's name")
    track = SelectField("Track", validate_choice=False, default=DEFAULT_TRACK)
    format = SelectField("Format", choices=options(FORMAT_CHOICES), default=DEFAULT_FORMAT.value,
                         description="time trial: each entry alone on track; head-to-head: "
                                     "entries race each other in rated rounds; head-to-bot: "
                                     "each entry races built-in bot cars, ranked by time")
    laps = IntegerField("Laps", default=DEFAULT_LAPS, validators=[
        DataRequired(f"a whole number from 1 to {MAX_LAPS}"), NumberRange(1, MAX_LAPS)])
    ranking = SelectField("Ranking", choices=options(RANKING_CHOICES),
                          default=DEFAULT_RANKING.value,
                          description="total time: the sum of the laps (the usual); best lap: "
                                      "the fastest single lap; average lap: the mean lap. "
                                      "Penalties count in lap times; an entry is ranked by its "
                                      "best trial")
    min_laps = IntegerField("Minimum laps", validators=[Optional(), NumberRange(1, MAX_LAPS)],
                            description="laps a trial needs to be ranked; blank: all of them")
    off_track_penalty = FloatField(
        "Off-track penalty (s)", default=DEFAULT_PENALTY_S,
        validators=[InputRequired(SECONDS_OF_PENALTY), NumberRange(*PENALTIES_S)],
        description=f"seconds the car stands still after leaving the track, "
                    f"{PENALTIES_S[0]:g}-{PENALTIES_S[1]:g}")
    collision_penalty = FloatField(
        "Collision penalty (s)", default=DEFAULT_PENALTY_S,
        validators=[InputRequired(SECONDS_OF_PENALTY), NumberRange(*PENALTIES_S)],
        description="seconds the car stands still after hitting a car or a box from behind")
    trials = IntegerField("Trials", default=DEFAULT_TRIALS, validators=[
        DataRequired(f"a whole number from 1 to {MAX_TRIALS}"), NumberRange(1, MAX_TRIALS)],
        description="time trial: runs per entry, each with its own fixed seed")
    time_cap = FloatField("Time cap (s)", default=DEFAULT_TIME_CAP_S, validators=[
        DataRequired(f"{MIN_TIME_CAP_S:g} to {MAX_TIME_CAP_S:g} seconds"),
        NumberRange(MIN_TIME_CAP_S, MAX_TIME_CAP_S, message=TIME_CAP_OUT_OF_RANGE)],
        description="simulated seconds after which a run is over (\"time up\")")
    obstacles = IntegerField("Obstacles", default=0,
                             validators=[InputRequired(f"a whole number from 0 to {MAX_OBSTACLES}"),
                                         NumberRange(0, MAX_OBSTACLES)],
                             description=f"static boxes on the track, 0-{MAX_OBSTACLES}")
    bot_count = IntegerField(
        "Bots", default=DEFAULT_BOTS, validators=[Optional(), NumberRange(1, MAX_BOTS)],
        description=f"head-to-bot: bot cars on the track with each entry, 1-{MAX_BOTS}")
    bot_speeds = StringField(
        "Bot speeds (m/s)", default=f"{DEFAULT_BOT_SPEED_MPS:g}",
        description=f"head-to-bot: one top speed for every bot, or one a bot separated by "
                    f"commas (like 1.2, 1.6, 2), {BOT_SPEEDS_MPS[0]:g}-{BOT_SPEEDS_MPS[1]:g}")
    conditions_preset = SelectField(
        "Preset", default=str(DEFAULT_PRESET),
        choices=options([(name, name) for name in PRESETS] + [(CUSTOM, "custom (below)")]),
        description="what varies between trials, drawn from each trial's seed: start "
                    "position and heading, sensor noise, grip, actuation latency, steering "
                    "bias; none: nothing but a small start jitter (docs/ORGANIZERS.md)")
    seed = IntegerField("Seed", default=_random_seed,
                        validators=[InputRequired("a whole number, 0 or more"),
                                    NumberRange(0, MAX_SEED)],
                        description="the trials' seeds derive from it: every entry races the "
                                    "same conditions")
    seed_public = BooleanField(
        "Publish the seed while the race is open",
        description="off (the default): the seed stays secret until the race closes, and "
                    "racers practise at home on a practice seed")
    mystery_track = BooleanField(
        "Mystery track: hide the track until the race closes",
        description="racers see its length and width only; its name, drawing, replays and "
                    "analysis are shown once the race closes")
    opens_at = _when("Opens", _this_minute, "UTC; submissions are taken from then")
    closes_at = _when("Closes", _week_later, "UTC; the leaderboard freezes and season points "
                                             "are awarded")
    season = SelectField("Season", coerce=int, default=0)
    divisions = MultiCheckboxField("Divisions", coerce=int,
                                   description="none ticked: open to every racer")
    max_entries_per_day = IntegerField("Entries per racer per day",
                                       default=DEFAULT_ENTRIES_PER_DAY,
                                       validators=[Optional(), NumberRange(1, MAX_ENTRIES)],
                                       description=f"UTC days; {DEFAULT_ENTRIES_PER_DAY} for a "
                                                   "new race; blank: no limit")
    max_entries_total = IntegerField("Entries per racer in total",
                                     validators=[Optional(), NumberRange(1, MAX_ENTRIES)],
                                     description="blank: no limit")
    round_interval_s = IntegerField("Round interval (s)", default=600, validators=[
        InputRequired("a number of seconds"),
        NumberRange(MIN_ROUND_INTERVAL_S, MAX_ROUND_INTERVAL_S)],
        description="head-to-head: seconds between rating rounds")
    heats_per_round = IntegerField("Heats per round", default=1, validators=[
        InputRequired(f"a whole number from 1 to {MAX_HEATS_PER_ROUND}"),
        NumberRange(1, MAX_HEATS_PER_ROUND)],
        description="head-to-head: seat-swapped heats each pairing races per round")
    knockout_size = SelectField("Knockout size", coerce=int, default=0,
                                choices=options((n, str(n) if n else "no knockout")
                                                for n in KNOCKOUT_SIZES),
                                description="head-to-head: the best-rated entries race a final "
                                            "bracket after the race closes")

    def fill_conditions(self, conditions: dict[str, Any] | None) -> None:
        """Show ``conditions`` (a race's, or the default preset's) in the form's fields."""
        values = conditions or PRESETS[DEFAULT_PRESET].to_dict()
        self.conditions_preset.data = values.get("preset", CUSTOM)
        for name in LIMITS:
            self[f"cond_{name}"].data = values.get(name)

    def conditions(self) -> str | dict[str, Any]:
        """The race conditions chosen: a preset's name, or the custom values (a blank one:
        that variation is off)."""
        if self.conditions_preset.data != CUSTOM:
            return str(self.conditions_preset.data)
        return {"preset": CUSTOM, **{name: self[f"cond_{name}"].data for name in LIMITS
                                     if self[f"cond_{name}"].data is not None}}

    def set_choices(self, seasons: Iterable[Season], divisions: Iterable[Division]) -> None:
        """Offer the tracks and the league's seasons and divisions."""
        self.track.choices = track_choices()
        for name in MORE_TRACKS:
            self[name].choices = [SelectChoice("", "none"), *self.track.choices]
        self.season.choices = options([(0, "No season")] + [(s.id, s.name) for s in seasons])
        self.divisions.choices = options((d.id, d.name) for d in divisions)

    def validate_track(self, field: Field) -> None:
        if field.data not in {c.value for c in self.track.choices or []}:
            raise ValidationError(f"unknown track {field.data!r}: choose one from the list")

    def validate(self, extra_validators: Any = None) -> bool:
        """The fields' own checks, then the tracks after the first
        (:meth:`check_more_tracks`)."""
        ok = super().validate(extra_validators)
        return self.check_more_tracks() and ok

    def check_more_tracks(self) -> bool:
        """Tracks 2 to :data:`MAX_TRACKS`: known tracks, each once, time trials only; an
        error goes next to the field it concerns."""
        known = {c.value for c in self.track.choices or []}
        seen = [self.track.data]
        ok = True
        for name in MORE_TRACKS:
            field = self[name]
            if not field.data:
                continue
            problem = ("" if field.data in known else
                       f"unknown track {field.data!r}: choose one from the list")
            if not problem and field.data in seen:
                problem = f"{field.data} is already a track of this race: each track once"
            if not problem and self.format.data == Format.HEAD_TO_HEAD:
                problem = "several tracks are for time trials; a head-to-head race runs on one"
            if problem:
                field.errors = [*field.errors, problem]
                ok = False
            seen.append(field.data)
        return ok

    def extra_tracks(self) -> list[str]:
        """The tracks chosen after the first, in order (blank choices left out)."""
        return [self[name].data for name in MORE_TRACKS if self[name].data]

    def fill_tracks(self, extra_tracks: list[dict[str, Any]] | None) -> None:
        """Show a race's tracks after the first in the form's fields."""
        names = [t["track"] for t in extra_tracks or []]
        for k, name in enumerate(MORE_TRACKS):
            self[name].data = names[k] if k < len(names) else ""

    def validate_min_laps(self, field: Field) -> None:
        if field.data is not None and self.laps.data is not None and field.data > self.laps.data:
            raise ValidationError("at most the number of laps")

    def validate_closes_at(self, field: Field) -> None:
        if field.data and self.opens_at.data and field.data <= self.opens_at.data:
            raise ValidationError("a race must close after it opens")

    def validate_bot_speeds(self, field: Field) -> None:
        if self.format.data == Format.HEAD_TO_BOT and not self.bot_count.errors:
            self.bots()

    def bots(self) -> list[dict[str, float]]:
        """The bot cars chosen (a head-to-bot race; none for the other formats), in their
        JSON shape; raise ``ValidationError`` saying what is wrong with the speeds."""
        if self.format.data != Format.HEAD_TO_BOT:
            return []
        texts = [t.strip() for t in (self.bot_speeds.data or "").split(",")]
        try:
            speeds = [float(t) for t in texts]
        except ValueError:
            raise ValidationError("speeds in m/s, one for every bot or one a bot separated "
                                  "by commas, like 1.5 or 1.2, 1.6, 2") from None
        count = self.bot_count.data
        if len(speeds) == 1:
            speeds *= count or DEFAULT_BOTS
        elif count is not None and count != len(speeds):
            raise ValidationError(f"{len(speeds)} speeds for {count} bots: give one speed for "
                                  "every bot, or one a bot")
        try:
            return bots_json(parse_bots(speeds))
        except RaceConfigError as err:
            raise ValidationError(str(err).removeprefix("bots: ")) from None

    def fill_bots(self, bots: list[dict[str, Any]] | None) -> None:
        """Show a head-to-bot race's bot cars in the form's fields."""
        if bots:
            self.bot_count.data = len(bots)
            speeds = {b["speed"] for b in bots}
            self.bot_speeds.data = ", ".join(f"{b['speed']:g}" for b in
                                             (bots[:1] if len(speeds) == 1 else bots))

    def settings(self) -> dict[str, Any]:
        """The race-engine settings and limits, named as ``races.create_race`` names them."""
        return {**{name: self[name].data for name in RACE_SETTINGS},
                "conditions": self.conditions(), "extra_tracks": self.extra_tracks(),
                "bots": self.bots()}


def _condition_field(name: str) -> Field:
    """The form field of one race-conditions bound (used when the preset is custom)."""
    lo, hi = LIMITS[name]
    label, unit = CONDITION_LABELS[name]
    kind = IntegerField if isinstance(lo, int) else FloatField
    return kind(label, validators=[Optional(), NumberRange(lo, hi)],
                description=f"{unit}, {lo:g} to {hi:g}")


for _name in LIMITS:  # cond_start_offset_m, ..., one field per bound
    setattr(RaceForm, f"cond_{_name}", _condition_field(_name))

#: a time trial on several tracks: the fields of the tracks after the first (track_2, ...)
MORE_TRACKS = tuple(f"track_{k}" for k in range(2, MAX_TRACKS + 1))
for _k, _name in enumerate(MORE_TRACKS, start=2):
    setattr(RaceForm, _name, SelectField(
        f"Track {_k}", validate_choice=False, default="",
        description="time trials: every entry races every track, ranked by the sum of its "
                    "tracks' times" if _k == 2 else ""))


RACE_SETTINGS = ("track", "format", "laps", "ranking", "min_laps", "off_track_penalty",
                 "collision_penalty", "trials", "time_cap", "obstacles", "seed",
                 "seed_public", "mystery_track",
                 "max_entries_per_day", "max_entries_total", "round_interval_s",
                 "heats_per_round", "knockout_size")


# Where a refusal of the league belongs on a form, by the words it starts with (a message
# that starts with a field's name, like "laps must be ...", goes to that field by itself).
RACE_ERROR_FIELDS = (("a race name", "name"), ("a race must close", "closes_at"),
                     ("unknown track", "track"), ("a race's track", "track"),
                     ("tracks", MORE_TRACKS[0]), ("bots", "bot_speeds"),
                     ("that season", "season"), ("that division", "divisions"),
                     ("this race has entries", "form"), ("a closed race", "form"),
                     ("conditions must", "conditions_preset"),
                     ("unknown race conditions", "conditions_preset"),
                     *((f"{name} must", f"cond_{name}") for name in LIMITS))
LEAGUE_ERROR_FIELDS = (("a slug", "slug"), ("the slug", "slug"), ("a league name", "name"),
                       ("a division name", "divisions"), ("a description", "description"),
                       ("visibility", "visibility"))
SEASON_ERROR_FIELDS = (("a season name", "name"), ("a season must end", "ends_at"),
                       ("a points table", "points_table"))


def attach_error(form: FlaskForm, message: str,
                 hints: Iterable[tuple[str, str]] = RACE_ERROR_FIELDS) -> None:
    """Show a refusal of the league next to the field it concerns, else above the form."""
    name = next((n for prefix, n in hints if message.startswith(prefix)), "") or next(
        (f.short_name for f in form if message.startswith(f"{f.short_name} ")), "")
    if name and name in form:
        form[name].errors = [*form[name].errors, message]
    else:
        form.form_errors.append(message)


class MemberForm(FlaskForm):
    role = SelectField("Role", choices=options([(MemberRole.MEMBER.value, "member"),
                                                (MemberRole.ORGANIZER.value, "organizer")]))
    division = SelectField("Division", coerce=int)

    def set_choices(self, divisions: Iterable[Division]) -> None:
        """Offer the league's divisions (0: none)."""
        self.division.choices = options([(0, "none")] + [(d.id, d.name) for d in divisions])


class ActionForm(FlaskForm):
    """A button that posts: the form carries only its CSRF token."""


class CloseRaceForm(FlaskForm):
    confirm = BooleanField("Yes, close this race now",
                           validators=[DataRequired("tick the box to confirm")])


class DisqualifyForm(FlaskForm):
    reason = StringField("Reason", validators=[DataRequired("a disqualification needs a reason"),
                                               Length(max=MAX_REASON_CHARS)])


class JoinForm(FlaskForm):
    code = HiddenField()
