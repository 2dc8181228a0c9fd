"""Rating history

A new table, ``rating_history``: an entry's OpenSkill rating right after each heat that moved
it (``league.rules.headtohead.record_heat`` writes it from now on).

Backfill: every race's rated heats are replayed through the same Plackett-Luce update that
``record_heat`` applies, so existing races get their history too. The replay is deterministic:

1. every entry starts at the model's defaults (mu 25, sigma 25/3), as ``record_heat`` does;
2. heats are taken per race in the order they were rated (``heats.rated_at``, then
   ``heats.id``), with their stored finishing order (``heats.positions``, best first);
3. a heat whose stored result says every car failed (``policy_error``/``invalid_policy``) is
   skipped, as ``record_heat`` skips it; a heat without a stored result counts;
4. each rated entry gets one row with the new mu and sigma, stamped with the heat's
   ``rated_at``.

The current ``ratings`` rows are left as they are. The replay reproduces them when the heats were
recorded one after another (the normal case); heats recorded in the same instant are replayed
by id. Downgrading drops the table (the history is lost; ratings keep their current values).

Revision ID: 5b7e2c9d4a13
Revises: 31eb03b5c50c
Created: 2026-12-03 06:15:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from openskill.models import PlackettLuce

revision = '5b7e2c9d4a13'
down_revision = '31eb03b5c50c'
branch_labels = None
depends_on = None

FAILED = ("policy_error", "invalid_policy")  # evaluator.results.POLICY_ERROR, INVALID_POLICY
BATCH = 500  # history rows per insert

heats = sa.table("heats", sa.column("id", sa.Integer), sa.column("race_id", sa.Integer),
                 sa.column("round_no", sa.Integer), sa.column("stage", sa.String(16)),
                 sa.column("positions", sa.JSON), sa.column("rated_at", sa.DateTime))
jobs = sa.table("evaluation_jobs", sa.column("id", sa.Integer),
                sa.column("heat_id", sa.Integer))
results = sa.table("results", sa.column("job_id", sa.Integer), sa.column("data", sa.JSON))


def upgrade() -> None:
    history = op.create_table(
        'rating_history',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('race_id', sa.Integer(), nullable=False),
        sa.Column('entry_id', sa.Integer(), nullable=False),
        sa.Column('heat_id', sa.Integer(), nullable=False),
        sa.Column('round_no', sa.Integer(), nullable=False),
        sa.Column('stage', sa.String(length=16), nullable=False),
        sa.Column('mu', sa.Double(), nullable=False),
        sa.Column('sigma', sa.Double(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['entry_id'], ['entries.id'],
                                name=op.f('fk_rating_history_entry_id_entries'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['heat_id'], ['heats.id'],
                                name=op.f('fk_rating_history_heat_id_heats'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['race_id'], ['races.id'],
                                name=op.f('fk_rating_history_race_id_races'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rating_history')),
        sa.UniqueConstraint('heat_id', 'entry_id',
                            name=op.f('uq_rating_history_heat_id_entry_id')),
    )
    op.create_index('ix_rating_history_race_id_entry_id', 'rating_history',
                    ['race_id', 'entry_id'], unique=False)
    if not op.get_context().as_sql:  # offline SQL has no data to replay
        rows = _replay(op.get_bind())
        for i in range(0, len(rows), BATCH):
            op.bulk_insert(history, rows[i:i + BATCH])


def _replay(conn: sa.Connection) -> list[dict[str, Any]]:
    """The history rows of every rated heat, replayed in order (see the module docstring)."""
    failed_heats = {heat_id for heat_id, data in conn.execute(
        sa.select(jobs.c.heat_id, results.c.data).join(results, results.c.job_id == jobs.c.id)
        .where(jobs.c.heat_id.is_not(None))) if _all_failed(data)}
    model = PlackettLuce()
    current: dict[int, tuple[float, float]] = {}  # entry id -> (mu, sigma)
    rows: list[dict[str, Any]] = []
    for heat in conn.execute(
            sa.select(heats).where(heats.c.rated_at.is_not(None), heats.c.positions.is_not(None))
            .order_by(heats.c.race_id, heats.c.rated_at, heats.c.id)):
        order = list(heat.positions or [])
        if not order or heat.id in failed_heats:
            continue
        teams = [[model.rating(mu=m, sigma=s)] for m, s in
                 (current.get(e, (model.mu, model.sigma)) for e in order)]
        updated = model.rate(teams, ranks=[float(k) for k in range(1, len(order) + 1)])
        for eid, (new,) in zip(order, updated, strict=True):
            current[eid] = (new.mu, new.sigma)
            rows.append({"race_id": heat.race_id, "entry_id": eid, "heat_id": heat.id,
                         "round_no": heat.round_no, "stage": heat.stage, "mu": new.mu,
                         "sigma": new.sigma, "recorded_at": heat.rated_at})
    return rows


def _all_failed(data: Any) -> bool:
    """Whether a heat's stored result says every car failed (then it rated nobody)."""
    cars = data.get("cars") if isinstance(data, dict) else None
    statuses = [c.get("status") for c in cars if isinstance(c, dict)] \
        if isinstance(cars, list) else []
    return bool(statuses) and all(s in FAILED for s in statuses)


def downgrade() -> None:
    op.drop_index('ix_rating_history_race_id_entry_id', table_name='rating_history')
    op.drop_table('rating_history')
