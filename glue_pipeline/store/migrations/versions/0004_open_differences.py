"""Open differences: the documented values a sync replaced with Microsoft's, kept until they agree again.

- open_differences: one row per (tenant_id, contact_id, field) with the user, the documented
  value (store_value), Microsoft's latest value, when the difference was first and last seen
  and the run that last saw it (the rules are in glue_pipeline/store/differences.py). Its
  primary key serves the reads by tenant; the index on contact_id serves the cascade that
  deletes a contact's rows with the contact.

A new table: existing rows are untouched, and the table starts empty (the next sync of a tenant
records the differences it finds).

Revision ID: 0004_open_differences
Revises: 0003_operations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_open_differences"
down_revision = "0003_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_differences",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("store_value", sa.Text(), nullable=False),
        sa.Column("microsoft_value", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "contact_id", "field"),
    )
    op.create_index("ix_open_differences_contact_id", "open_differences", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_open_differences_contact_id", table_name="open_differences")
    op.drop_table("open_differences")
