"""Operations: pausing a tenant, a failed tenant's cause, a run's own failure, run heartbeats.

- tenants.paused_at, paused_by, pause_reason: a tenant an operator paused is not synced.
- sync_results.cause: why a tenant failed (vocabulary.FailureCause), checked like the other
  vocabularies; rows written before this revision keep NULL.
- sync_runs.error: why a run failed outside its tenants (its process died, it was cancelled).
- run_heartbeats: one row per live run, for run monitoring.

Every new column may be NULL, so existing rows need no value. SQLite adds the columns with ALTER
TABLE and copies sync_results (batch mode) to add its CHECK constraint; PostgreSQL alters in place.

Revision ID: 0003_operations
Revises: 0002_vocabulary_checks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_operations"
down_revision = "0002_vocabulary_checks"
branch_labels = None
depends_on = None

# The words of vocabulary.FailureCause as of this revision.
CAUSES = ("consent_revoked", "tenant_gone", "permission_missing", "credentials", "transient", "certificate",
          "store", "unexpected")


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("paused_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("paused_by", sa.String(length=255)))
        batch.add_column(sa.Column("pause_reason", sa.Text()))
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("error", sa.Text()))
    with op.batch_alter_table("sync_results") as batch:
        batch.add_column(sa.Column("cause", sa.String(length=32)))
        batch.create_check_constraint("ck_sync_results_cause", sa.column("cause").in_(CAUSES))
    op.create_table(
        "run_heartbeats",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("job_name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )


def downgrade() -> None:
    op.drop_table("run_heartbeats")
    with op.batch_alter_table("sync_results") as batch:
        batch.drop_constraint("ck_sync_results_cause", type_="check")
        batch.drop_column("cause")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("error")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("pause_reason")
        batch.drop_column("paused_by")
        batch.drop_column("paused_at")
