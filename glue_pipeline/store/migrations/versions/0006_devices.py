"""Devices: Intune managed devices documented as configurations.

- configurations: the documentation side of a device (name, type, serial number, manufacturer,
  model, operating system, its primary contact), created_by store or microsoft;
- configuration_microsoft: the Microsoft overlay of a configuration linked to an Intune device
  (unique per tenant and device id), with its status (active, removed);
- configuration_decisions and held_devices: an analyst's standing decision for a device, and the
  devices the last sync held for one;
- match_decisions gains device_id and configuration_id, and its action the words link_device and
  approve_device; sync_log gains configuration_id and device_id, and its action the device words.

New tables start empty and new columns NULL; no existing row changes. The two CHECK constraints
are replaced (SQLite copies the two tables to do so, keeping their rows and indexes).

Revision ID: 0006_devices
Revises: 0005_partition_keys
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006_devices"
down_revision = "0005_partition_keys"
branch_labels = None
depends_on = None

DECISION_ACTIONS = ("accept", "match", "ignore", "unignore", "create_organization", "link_user", "approve_create")
LOG_ACTIONS = ("contact_created", "contact_updated", "contact_ambiguous", "contact_held", "contact_unlinked",
               "user_removed", "users_skipped", "value_cleaned", "tenant_note", "tenant_held", "tenant_unchanged",
               "tenant_failed")
DEVICE_DECISION_ACTIONS = ("link_device", "approve_device")
DEVICE_LOG_ACTIONS = ("configuration_created", "configuration_updated", "device_ambiguous", "device_held",
                      "device_removed", "devices_skipped")


def upgrade() -> None:
    op.create_table(
        "configurations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("organization_id", sa.Integer(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(length=255)),
        sa.Column("configuration_type", sa.String(length=32)),
        sa.Column("serial_number", sa.String(length=128)),
        sa.Column("manufacturer", sa.String(length=255)),
        sa.Column("model", sa.String(length=255)),
        sa.Column("operating_system", sa.String(length=64)),
        sa.Column("os_version", sa.String(length=64)),
        sa.Column("mac_address", sa.String(length=17)),
        sa.Column("primary_contact_id", sa.Integer(), sa.ForeignKey("contacts.id")),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(sa.column("created_by").in_(("store", "microsoft")), name="ck_configurations_created_by"),
    )
    op.create_index("ix_configurations_organization_id", "configurations", ["organization_id"])
    op.create_table(
        "configuration_microsoft",
        sa.Column("configuration_id", sa.Integer(), sa.ForeignKey("configurations.id"), primary_key=True),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("azure_ad_device_id", sa.String(length=36)),
        sa.Column("user_id", sa.String(length=36)),
        sa.Column("user_principal_name", sa.String(length=320)),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("compliance_state", sa.String(length=32)),
        sa.Column("owner_type", sa.String(length=16)),
        sa.Column("enrolled_at", sa.String(length=32)),
        sa.Column("last_check_in", sa.String(length=32)),
        sa.Column("is_encrypted", sa.Boolean()),
        sa.Column("total_storage_bytes", sa.BigInteger()),
        sa.Column("free_storage_bytes", sa.BigInteger()),
        sa.Column("wifi_mac_address", sa.String(length=17)),
        sa.Column("ethernet_mac_address", sa.String(length=17)),
        sa.Column("imei", sa.String(length=32)),
        sa.Column("manage_url", sa.Text()),
        sa.UniqueConstraint("tenant_id", "device_id", name="uq_configuration_microsoft_device"),
        sa.CheckConstraint(sa.column("status").in_(("active", "removed")), name="ck_configuration_microsoft_status"),
    )
    op.create_table(
        "configuration_decisions",
        sa.Column("tenant_id", sa.String(length=36), primary_key=True),
        sa.Column("device_id", sa.String(length=36), primary_key=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("configuration_id", sa.Integer(), sa.ForeignKey("configurations.id")),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(sa.column("action").in_(("link", "create")), name="ck_configuration_decisions_action"),
    )
    op.create_table(
        "held_devices",
        sa.Column("tenant_id", sa.String(length=36), primary_key=True),
        sa.Column("device_id", sa.String(length=36), primary_key=True),
        sa.Column("device_name", sa.String(length=255)),
        sa.Column("serial_number", sa.String(length=128)),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("candidate_configuration_ids", sa.Text()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    _widen("match_decisions", DECISION_ACTIONS + DEVICE_DECISION_ACTIONS,
           [sa.Column("device_id", sa.String(length=36)), sa.Column("configuration_id", sa.Integer())])
    _widen("sync_log", LOG_ACTIONS + DEVICE_LOG_ACTIONS,
           [sa.Column("configuration_id", sa.Integer()), sa.Column("device_id", sa.String(length=36))])


def downgrade() -> None:
    _narrow("sync_log", LOG_ACTIONS, ["configuration_id", "device_id"])
    _narrow("match_decisions", DECISION_ACTIONS, ["device_id", "configuration_id"])
    op.drop_table("held_devices")
    op.drop_table("configuration_decisions")
    op.drop_table("configuration_microsoft")
    op.drop_index("ix_configurations_organization_id", table_name="configurations")
    op.drop_table("configurations")


def _widen(table: str, actions: tuple[str, ...], columns: list[sa.Column[Any]]) -> None:
    """Add the columns and let the action column hold the new words."""
    with op.batch_alter_table(table) as batch:
        for column in columns:
            batch.add_column(column)
        batch.drop_constraint(f"ck_{table}_action", type_="check")
        batch.create_check_constraint(f"ck_{table}_action", sa.column("action").in_(actions))


def _narrow(table: str, actions: tuple[str, ...], columns: list[str]) -> None:
    """Drop the columns and the new words (rows holding them are deleted first: they are the new
    revision's own)."""
    op.execute(sa.table(table, sa.column("action")).delete().where(sa.column("action").not_in(actions)))
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(f"ck_{table}_action", type_="check")
        batch.create_check_constraint(f"ck_{table}_action", sa.column("action").in_(actions))
        for column in columns:
            batch.drop_column(column)
