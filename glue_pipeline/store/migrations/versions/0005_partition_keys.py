"""Partition keys: tenants.partition_key, each tenant's key in the Dagster UI (its name and a
short id, store/partition_keys.py), unique. Existing tenants get theirs at the next discovery,
which also moves their Dagster partitions from the tenant id to the key.

Revision ID: 0005_partition_keys
Revises: 0004_open_differences
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_partition_keys"
down_revision = "0004_open_differences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("partition_key", sa.String(length=128)))
        batch.create_unique_constraint("uq_tenants_partition_key", ["partition_key"])


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_constraint("uq_tenants_partition_key", type_="unique")
        batch.drop_column("partition_key")
