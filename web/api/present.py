"""League objects as the API's response models (:mod:`web.api.schemas`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.race_settings import Format, Ranking
from evaluator.track import Track as TrackData
from league import models as m
from league.errors import NotFound
from league.read import cache, heats, matchups, replays, secrets
from league.rules import headtohead, knockout, leaderboard, leagues, races
from web.api import entry_schemas as es
from web.api import heat_schemas as hs
from web.api import schemas as s
from web.helpers import Page, paginate
from web.links import link_maker


def pagination(page: Page[Any]) -> s.Pagination:
    """The pagination block of a list."""
    return s.Pagination(**page.to_dict())


def track(t: TrackData) -> s.Track:
    """A track's summary."""
    return s.Track.model_validate(
        {**t.summary(), "source": "library" if t.source == "library" else "imported"})


def league_summary(league: m.League) -> s.LeagueSummary:
    """A league as lists show it."""
    return s.LeagueSummary(id=league.id, slug=league.slug, name=league.name,
                           description=league.description, visibility=league.visibility,
                           created_at=league.created_at,
                           divisions=[s.Division.model_validate(d) for d in league.divisions])


def season(season: m.Season, league: m.League) -> s.Season:
    """A season of ``league``."""
    return s.Season(id=season.id, league=league.slug, name=season.name, status=season.status,
                    starts_at=season.starts_at, ends_at=season.ends_at,
                    points_table=list(season.points_table), promote=season.promote,
                    relegate=season.relegate, movement_in_percent=season.movement_in_percent,
                    finalized_at=season.finalized_at)


def league_detail(session: Session, league: m.League, user: m.User | None) -> s.League:
    """A league with its seasons and what the caller may do in it."""
    manager = leagues.can_manage(session, league, user)
    return s.League(**league_summary(league).model_dump(),
                    seasons=[season(x, league) for x in league.seasons],
                    member=leagues.membership(session, league, user) is not None,
                    can_manage=manager, invite_code=league.invite_code if manager else None)


def race(session: Session, race: m.Race, viewer: m.User | None) -> s.Race:
    """A race with its settings and window, less what it keeps secret from ``viewer``
    (:mod:`league.read.secrets`): a secret seed is null and a practice seed given instead; a
    hidden mystery track gives its length and width only."""
    hidden = secrets.race_secrets(session, race, viewer)
    shape = secrets.track_shape(race)
    settings = {**race.config(), **({"seed": None} if hidden.seed else {}),
                **({"track": None, "extra_tracks": None} if hidden.track else {})}
    return s.Race(**settings, id=race.id, name=race.name, league=race.league.slug,
                  season_id=race.season_id, status=race.status, opens_at=race.opens_at,
                  closes_at=race.closes_at, closed_at=race.closed_at,
                  track_digest=None if hidden.track else race.track_digest,
                  tracks=None if hidden.track else race.all_tracks,
                  seed_public=race.seed_public, mystery_track=race.mystery_track,
                  practice_seed=races.practice_seed(race) if hidden.seed else None,
                  track_length_m=shape.length_m if shape else None,
                  track_width_m=shape.width_m if shape else None,
                  division_ids=sorted(d.id for d in race.divisions),
                  max_entries_per_day=race.max_entries_per_day,
                  max_entries_total=race.max_entries_total,
                  round_interval_s=race.round_interval_s, heats_per_round=race.heats_per_round,
                  knockout_size=race.knockout_size, rounds_played=race.rounds_played)


def closed_race(session: Session, r: m.Race, points: Sequence[m.RacePoints],
                viewer: m.User | None) -> s.ClosedRace:
    """A closed race and the season points it awarded."""
    names = dict(session.execute(sa.select(m.User.id, m.User.name).where(
        m.User.id.in_([p.user_id for p in points]))).all())
    return s.ClosedRace(race=race(session, r, viewer), points=[
        s.RacePoints(user_id=p.user_id, racer=names.get(p.user_id, ""),
                     division_id=p.division_id, position=p.position, points=p.points)
        for p in points])


def race_leaderboard(session: Session, r: m.Race, page: int, per_page: int) -> s.Leaderboard:
    """One page of a time trial's leaderboard, or of a head-to-head race's rating table
    with its knockout bracket."""
    if r.format == Format.HEAD_TO_HEAD:
        table = paginate(headtohead.rating_table(session, r), page, per_page)
        bracket = knockout.knockout_bracket(session, r) if r.knockout_size >= 2 else None
        return s.Leaderboard(s.HeadToHeadLeaderboard(
            format=Format.HEAD_TO_HEAD, race_id=r.id, pagination=pagination(table),
            items=[s.RatingRow.model_validate(asdict(row)) for row in table.items],
            bracket=None if bracket is None or bracket.size == 0
            else s.Bracket.model_validate(asdict(bracket))))
    rows = paginate(cache.race_leaderboard_cached(session, r), page, per_page)
    return s.Leaderboard(s.TimeTrialLeaderboard(
        format=Format(r.format), race_id=r.id, ranking=Ranking(r.ranking),
        pagination=pagination(rows),
        items=[s.LeaderboardRow.model_validate(row.to_dict()) for row in rows.items]))


def policy_model(model: m.PolicyModel) -> es.PolicyModel:
    """An uploaded model file's details."""
    return es.PolicyModel(id=model.id, name=model.name, version=model.version,
                         sha256=model.sha256, size_bytes=model.size_bytes,
                         metadata=dict(model.model_metadata), created_at=model.created_at)


def evaluation_summary(job: m.EvaluationJob) -> es.EvaluationSummary:
    """A job's state, without its result."""
    return es.EvaluationSummary(
        id=job.id, kind=job.kind, status=job.status, attempts=job.attempts,
        max_attempts=job.max_attempts, queued_at=job.queued_at, started_at=job.started_at,
        finished_at=job.finished_at, failure_kind=job.failure_kind,
        failure_reason=job.failure_reason,
        result_status=job.result.status if job.result is not None else None)


def entry(session: Session, e: m.Entry) -> es.Entry:
    """An entry with its model, its status and every evaluation."""
    status = leaderboard.entry_status(session, e).to_dict()
    return es.Entry(id=e.id, race_id=e.race_id, racer=e.racer.name, user_id=e.racer_id,
                   model=policy_model(e.model), submitted_at=e.submitted_at,
                   disqualified=e.disqualified, disqualified_reason=e.disqualified_reason,
                   status=es.EntryStatus.model_validate(status),
                   evaluations=[evaluation_summary(j) for j in e.jobs])


def evaluation(session: Session, job: m.EvaluationJob,
               viewer: m.User | None) -> es.Evaluation:
    """A job's state, its replays and its result exactly as stored."""
    race = replays.race_of(session, job)
    if race is None:  # a job without entry or heat: nothing a caller may look at
        raise NotFound(f"no evaluation job {job.id}")
    return es.Evaluation(
        **evaluation_summary(job).model_dump(), entry_id=job.entry_id, heat_id=job.heat_id,
        race_id=race.id,
        replays=[es.ReplayInfo(trial=r.trial, size_bytes=r.size_bytes)
                 for r in replays.job_replays(session, job)],
        # passed through as stored (the model skips validating it), less what the race
        # keeps secret from the caller (a secret seed, a hidden mystery track)
        result=cast(Any, None if job.result is None else secrets.shown_result(
            job.result.data, secrets.race_secrets(session, race, viewer))))


def me(user: m.User) -> s.Me:
    """The calling user."""
    return s.Me(id=user.id, name=user.name, email=user.email, role=str(user.role),
                can_organize=user.can_organize, created_at=user.created_at)


def heat_list(rows: Sequence[heats.HeatRow], page: Page[Any]) -> hs.HeatList:
    """One page of a race's heats, with links to the replays of those raced."""
    replay = link_maker("api.get_replay", "job_id", numeric=True)
    watch = link_maker("replays.job", "job_id", numeric=True)
    return hs.HeatList(pagination=pagination(page), items=[
        hs.Heat(id=h.heat_id, race_id=h.race_id, title=h.title, created_at=h.created_at,
                raced=h.raced, evaluation_id=h.job_id,
                evaluation_status=m.JobStatus(h.job_status) if h.job_status else None,
                winner_id=h.winner_id,
                replay=replay(h.job_id) if h.raced else None,
                watch=watch(h.job_id) if h.raced else None,
                cars=[hs.HeatCar.model_validate(asdict(car)) for car in h.cars])
        for h in rows])


def racer_matchups(race_id: int, found: matchups.Matchups) -> hs.Matchups:
    """A racer's record, heats, rating history and versions in a head-to-head race."""
    return hs.Matchups(
        race_id=race_id, racer=found.racer,
        opponents=[hs.Opponent(racer=o.racer, won=o.won, lost=o.lost, heats=o.heats)
                   for o in found.opponents],
        heats=[hs.MatchupHeat(heat_id=h.heat_id, label=h.label, model=h.model,
                              position=h.position, cars=h.cars, opponents=list(h.opponents),
                              rated_at=h.rated_at) for h in found.heats],
        history=[hs.RatingPoint(label=p.label, model=p.model, mu=p.mu, sigma=p.sigma,
                                rating=p.conservative) for p in found.history],
        versions=[hs.VersionMark(model=v.model, submitted_at=v.submitted_at, point=v.point)
                  for v in found.versions])
