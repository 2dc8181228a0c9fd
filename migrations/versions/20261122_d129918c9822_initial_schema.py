"""initial schema

Revision ID: d129918c9822
Revises: (none)
Created: 2026-11-22 01:19:19.776368
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd129918c9822'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('leagues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('invite_code', sa.String(length=32), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_leagues_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leagues')),
    sa.UniqueConstraint('slug', name=op.f('uq_leagues_slug'))
    )
    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('model_metadata', sa.JSON(), nullable=False),
    sa.Column('validation', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_models_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models')),
    sa.UniqueConstraint('owner_id', 'name', 'version', name=op.f('uq_models_owner_id_name_version'))
    )
    op.create_index(op.f('ix_models_sha256'), 'models', ['sha256'], unique=False)
    op.create_table('divisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('league_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['league_id'], ['leagues.id'], name=op.f('fk_divisions_league_id_leagues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_divisions')),
    sa.UniqueConstraint('league_id', 'tier', name=op.f('uq_divisions_league_id_tier'))
    )
    op.create_table('seasons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('league_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('points_table', sa.JSON(), nullable=False),
    sa.Column('promote', sa.Integer(), nullable=False),
    sa.Column('relegate', sa.Integer(), nullable=False),
    sa.Column('movement_in_percent', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('finalized_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['league_id'], ['leagues.id'], name=op.f('fk_seasons_league_id_leagues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seasons'))
    )
    op.create_table('division_moves',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('season_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('from_division_id', sa.Integer(), nullable=True),
    sa.Column('to_division_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['from_division_id'], ['divisions.id'], name=op.f('fk_division_moves_from_division_id_divisions')),
    sa.ForeignKeyConstraint(['season_id'], ['seasons.id'], name=op.f('fk_division_moves_season_id_seasons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['to_division_id'], ['divisions.id'], name=op.f('fk_division_moves_to_division_id_divisions')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_division_moves_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_division_moves'))
    )
    op.create_table('memberships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('league_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('division_id', sa.Integer(), nullable=True),
    sa.Column('joined_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['division_id'], ['divisions.id'], name=op.f('fk_memberships_division_id_divisions')),
    sa.ForeignKeyConstraint(['league_id'], ['leagues.id'], name=op.f('fk_memberships_league_id_leagues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
    sa.UniqueConstraint('league_id', 'user_id', name=op.f('uq_memberships_league_id_user_id'))
    )
    op.create_table('races',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('league_id', sa.Integer(), nullable=False),
    sa.Column('season_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('track', sa.String(length=120), nullable=False),
    sa.Column('track_digest', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('laps', sa.Integer(), nullable=False),
    sa.Column('min_laps', sa.Integer(), nullable=True),
    sa.Column('ranking', sa.String(length=16), nullable=False),
    sa.Column('off_track_penalty', sa.Double(), nullable=False),
    sa.Column('collision_penalty', sa.Double(), nullable=False),
    sa.Column('trials', sa.Integer(), nullable=False),
    sa.Column('time_cap', sa.Double(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('obstacles', sa.Integer(), nullable=False),
    sa.Column('opens_at', sa.DateTime(), nullable=False),
    sa.Column('closes_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('max_entries_per_day', sa.Integer(), nullable=True),
    sa.Column('max_entries_total', sa.Integer(), nullable=True),
    sa.Column('round_interval_s', sa.Integer(), nullable=False),
    sa.Column('heats_per_round', sa.Integer(), nullable=False),
    sa.Column('knockout_size', sa.Integer(), nullable=False),
    sa.Column('rounds_played', sa.Integer(), nullable=False),
    sa.Column('last_round_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['league_id'], ['leagues.id'], name=op.f('fk_races_league_id_leagues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['season_id'], ['seasons.id'], name=op.f('fk_races_season_id_seasons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_races'))
    )
    op.create_table('entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('race_id', sa.Integer(), nullable=False),
    sa.Column('racer_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.Column('disqualified_at', sa.DateTime(), nullable=True),
    sa.Column('disqualified_reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_entries_model_id_models')),
    sa.ForeignKeyConstraint(['race_id'], ['races.id'], name=op.f('fk_entries_race_id_races'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['racer_id'], ['users.id'], name=op.f('fk_entries_racer_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entries'))
    )
    op.create_index(op.f('ix_entries_race_id'), 'entries', ['race_id'], unique=False)
    op.create_index(op.f('ix_entries_racer_id'), 'entries', ['racer_id'], unique=False)
    op.create_table('heats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('race_id', sa.Integer(), nullable=False),
    sa.Column('round_no', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('entry_ids', sa.JSON(), nullable=False),
    sa.Column('positions', sa.JSON(), nullable=True),
    sa.Column('rated_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['race_id'], ['races.id'], name=op.f('fk_heats_race_id_races'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_heats'))
    )
    op.create_index(op.f('ix_heats_race_id'), 'heats', ['race_id'], unique=False)
    op.create_table('race_divisions',
    sa.Column('race_id', sa.Integer(), nullable=False),
    sa.Column('division_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['division_id'], ['divisions.id'], name=op.f('fk_race_divisions_division_id_divisions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['race_id'], ['races.id'], name=op.f('fk_race_divisions_race_id_races'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('race_id', 'division_id', name=op.f('pk_race_divisions'))
    )
    op.create_table('race_points',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('race_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('division_id', sa.Integer(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=True),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('awarded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['division_id'], ['divisions.id'], name=op.f('fk_race_points_division_id_divisions')),
    sa.ForeignKeyConstraint(['race_id'], ['races.id'], name=op.f('fk_race_points_race_id_races'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_race_points_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_race_points')),
    sa.UniqueConstraint('race_id', 'user_id', name=op.f('uq_race_points_race_id_user_id'))
    )
    op.create_table('evaluation_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=True),
    sa.Column('heat_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=120), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
    sa.Column('queued_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('failure_kind', sa.String(length=16), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=False),
    sa.Column('log', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_evaluation_jobs_entry_id_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['heat_id'], ['heats.id'], name=op.f('fk_evaluation_jobs_heat_id_heats'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_jobs'))
    )
    op.create_index(op.f('ix_evaluation_jobs_entry_id'), 'evaluation_jobs', ['entry_id'], unique=False)
    op.create_index('ix_evaluation_jobs_status_queued_at', 'evaluation_jobs', ['status', 'queued_at'], unique=False)
    op.create_table('ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('race_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('mu', sa.Double(), nullable=False),
    sa.Column('sigma', sa.Double(), nullable=False),
    sa.Column('heats', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_ratings_entry_id_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['race_id'], ['races.id'], name=op.f('fk_ratings_race_id_races'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ratings')),
    sa.UniqueConstraint('race_id', 'entry_id', name=op.f('uq_ratings_race_id_entry_id'))
    )
    op.create_table('replays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('trial', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['evaluation_jobs.id'], name=op.f('fk_replays_job_id_evaluation_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replays')),
    sa.UniqueConstraint('job_id', 'trial', name=op.f('uq_replays_job_id_trial'))
    )
    op.create_table('results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ranking_time_s', sa.Double(), nullable=True),
    sa.Column('ranking_laps', sa.Integer(), nullable=False),
    sa.Column('best_lap_s', sa.Double(), nullable=True),
    sa.Column('off_track_count', sa.Integer(), nullable=False),
    sa.Column('collision_count', sa.Integer(), nullable=False),
    sa.Column('penalty_s', sa.Double(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_results_entry_id_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['evaluation_jobs.id'], name=op.f('fk_results_job_id_evaluation_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_results')),
    sa.UniqueConstraint('job_id', name=op.f('uq_results_job_id'))
    )
    op.create_index(op.f('ix_results_entry_id'), 'results', ['entry_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_results_entry_id'), table_name='results')
    op.drop_table('results')
    op.drop_table('replays')
    op.drop_table('ratings')
    op.drop_index('ix_evaluation_jobs_status_queued_at', table_name='evaluation_jobs')
    op.drop_index(op.f('ix_evaluation_jobs_entry_id'), table_name='evaluation_jobs')
    op.drop_table('evaluation_jobs')
    op.drop_table('race_points')
    op.drop_table('race_divisions')
    op.drop_index(op.f('ix_heats_race_id'), table_name='heats')
    op.drop_table('heats')
    op.drop_index(op.f('ix_entries_racer_id'), table_name='entries')
    op.drop_index(op.f('ix_entries_race_id'), table_name='entries')
    op.drop_table('entries')
    op.drop_table('races')
    op.drop_table('memberships')
    op.drop_table('division_moves')
    op.drop_table('seasons')
    op.drop_table('divisions')
    op.drop_index(op.f('ix_models_sha256'), table_name='models')
    op.drop_table('models')
    op.drop_table('leagues')
    op.drop_table('api_tokens')
    op.drop_table('users')
