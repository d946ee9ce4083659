"""Weighed organizations: tenant_sync_state.weighed_organizations, for a tenant without a match
the organizations its suggestions weighed (JSON ids). Its fingerprint covers their contact
domains instead of every organization's, so contacts created elsewhere do not plan it again.
Existing rows get NULL: each such tenant is planned once more at its next sync.

Revision ID: 0007_weighed_organizations
Revises: 0006_devices
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_weighed_organizations"
down_revision = "0006_devices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenant_sync_state") as batch:
        batch.add_column(sa.Column("weighed_organizations", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("tenant_sync_state") as batch:
        batch.drop_column("weighed_organizations")
