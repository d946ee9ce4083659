"""Baseline: the tables as stores had them before their schema was versioned (commit 10c17fa).

A store made by `metadata.create_all` of that time is stamped at this revision, not migrated: the
names of constraints and indexes here are those create_all gave them.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("first_name", sa.String(length=255)),
        sa.Column("last_name", sa.String(length=255)),
        sa.Column("title", sa.String(length=255)),
        sa.Column("location", sa.String(length=255)),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
    )
    op.create_index("ix_contacts_organization_id", "contacts", ["organization_id"])
    op.create_table(
        "contact_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "value", name="uq_contact_email"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
    )
    op.create_index("ix_contact_emails_contact_id", "contact_emails", ["contact_id"])
    op.create_index("ix_contact_emails_value", "contact_emails", ["value"])
    op.create_table(
        "contact_phones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
    )
    op.create_index("ix_contact_phones_contact_id", "contact_phones", ["contact_id"])
    op.create_table(
        "contact_microsoft",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("user_principal_name", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("user_type", sa.String(length=16)),
        sa.Column("licenses", sa.Text()),
        sa.Column("created_in_microsoft", sa.String(length=32)),
        sa.Column("last_password_change", sa.String(length=32)),
        sa.Column("last_sign_in", sa.String(length=32)),
        sa.Column("mailbox_storage_used_bytes", sa.BigInteger()),
        sa.Column("mailbox_item_count", sa.BigInteger()),
        sa.Column("mailbox_warning_quota_bytes", sa.BigInteger()),
        sa.Column("mailbox_quota_bytes", sa.BigInteger()),
        sa.Column("mailbox_last_activity", sa.String(length=10)),
        sa.Column("mailbox_has_archive", sa.Boolean()),
        sa.Column("mailbox_report_date", sa.String(length=10)),
        sa.Column("manage_url", sa.Text()),
        sa.PrimaryKeyConstraint("contact_id"),
        sa.UniqueConstraint("tenant_id", "user_id", name="uq_contact_microsoft_user"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
    )
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=255)),
        sa.Column("default_domain", sa.String(length=255)),
        sa.Column("initial_domain", sa.String(length=255)),
        sa.Column("relationship", sa.String(length=8)),
        sa.Column("data_source", sa.String(length=64)),
        sa.Column("manage_url", sa.Text()),
        sa.Column("street", sa.String(length=255)),
        sa.Column("city", sa.String(length=128)),
        sa.Column("state", sa.String(length=128)),
        sa.Column("postal_code", sa.String(length=32)),
        sa.Column("country", sa.String(length=8)),
        sa.Column("phone", sa.String(length=64)),
        sa.Column("verified_domains", sa.Text()),
        sa.Column("reports_concealed", sa.Boolean()),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("vanished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "tenant_matches",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.Integer()),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16)),
        sa.Column("decided_by", sa.String(length=255)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
    )
    op.create_table(
        "tenant_suggestions",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("organization_name", sa.String(length=255), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "rank"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
    )
    op.create_table(
        "match_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.Integer()),
        sa.Column("user_id", sa.String(length=36)),
        sa.Column("contact_id", sa.Integer()),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_match_decisions_tenant_id", "match_decisions", ["tenant_id"])
    op.create_table(
        "contact_decisions",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("contact_id", sa.Integer()),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
    )
    op.create_table(
        "held_users",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("user_principal_name", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=255)),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("candidate_contact_ids", sa.Text()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id"),
    )
    op.create_table(
        "licenses",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("sku_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.Integer()),
        sa.Column("part_number", sa.String(length=128)),
        sa.Column("product_name", sa.String(length=255)),
        sa.Column("capability_status", sa.String(length=16)),
        sa.Column("consumed", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Integer(), nullable=False),
        sa.Column("suspended", sa.Integer(), nullable=False),
        sa.Column("warning", sa.Integer(), nullable=False),
        sa.Column("unused", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "sku_id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"]),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
    )
    op.create_table(
        "data_sources",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "sync_runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tenants_total", sa.Integer(), nullable=False),
        sa.Column("tenants_failed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "sync_results",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("organization_id", sa.Integer()),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "tenant_id"),
    )
    op.create_table(
        "tenant_sync_state",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("organization_id", sa.Integer()),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "sync_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("contact_id", sa.Integer()),
        sa.Column("user_id", sa.String(length=36)),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sync_log_run_id", "sync_log", ["run_id"])
    op.create_index("ix_sync_log_tenant_id", "sync_log", ["tenant_id"])


TABLES = ("organizations", "contacts", "contact_emails", "contact_phones", "contact_microsoft", "tenants",
          "tenant_matches", "tenant_suggestions", "match_decisions", "contact_decisions", "held_users",
          "licenses", "data_sources", "sync_runs", "sync_results", "tenant_sync_state", "sync_log")


def downgrade() -> None:
    for table in reversed(TABLES):  # dependants first; their indexes go with them
        op.drop_table(table)
