"""The documentation store's tables: a contract that analysts and other tools query (every table
and column is described in the README, section "The store").

SQLite by default, PostgreSQL by URL; the same SQLAlchemy Core tables serve both. A change to
them comes with a revision in migrations/ that brings existing stores along (migrate.py).
Engines and transactions are in engine.py.

A column that holds one of the pipeline's closed vocabularies (glue_pipeline/vocabulary.py) has
a CHECK constraint, ck_<table>_<column>, that accepts its words (and NULL where the column may be
empty); licenses.capability_status is Microsoft's word and is not checked. A word added to one of
those vocabularies needs a revision that replaces the constraint, written by hand (Alembic's
autogenerate does not compare CHECK constraints; test_migrations does).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    column,
)

from glue_pipeline.vocabulary import (
    AccountStatus,
    ContactDecisionAction,
    ContactOrigin,
    DecisionAction,
    DeviceStatus,
    FailureCause,
    LogAction,
    LogLevel,
    MatchMethod,
    MatchStatus,
    Relationship,
    RunStatus,
    SyncStateStatus,
    TenantStatus,
    values,
)

metadata = MetaData()


def one_of(table: str, name: str, vocabulary: object) -> CheckConstraint:
    """The CHECK constraint ck_<table>_<name>: the column `name` holds a word of the vocabulary (a
    Literal type of vocabulary.py) or NULL."""
    return CheckConstraint(column(name).in_(values(vocabulary)), name=f"ck_{table}_{name}")


organizations = Table(
    "organizations", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

contacts = Table(
    "contacts", metadata,
    Column("id", Integer, primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("first_name", String(255)),
    Column("last_name", String(255)),
    Column("title", String(255)),
    Column("location", String(255)),
    # 'store' for contacts that were there before, 'microsoft' for contacts the sync created.
    Column("created_by", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    one_of("contacts", "created_by", ContactOrigin),
)

contact_emails = Table(
    "contact_emails", metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", Integer, ForeignKey("contacts.id"), nullable=False, index=True),
    Column("value", String(320), nullable=False),
    Column("label", String(32), nullable=False),
    Column("is_primary", Boolean, nullable=False),
    UniqueConstraint("contact_id", "value", name="uq_contact_email"),
)

contact_phones = Table(
    "contact_phones", metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", Integer, ForeignKey("contacts.id"), nullable=False, index=True),
    Column("value", String(64), nullable=False),
    Column("label", String(32), nullable=False),
    Column("is_primary", Boolean, nullable=False),
)

# The Microsoft overlay: one row per contact linked to a Microsoft user.
contact_microsoft = Table(
    "contact_microsoft", metadata,
    Column("contact_id", Integer, ForeignKey("contacts.id"), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("user_id", String(36), nullable=False),
    Column("user_principal_name", String(320), nullable=False),
    Column("status", String(16), nullable=False),
    Column("user_type", String(16)),
    Column("licenses", Text),
    Column("created_in_microsoft", String(32)),
    Column("last_password_change", String(32)),
    Column("last_sign_in", String(32)),
    Column("mailbox_storage_used_bytes", BigInteger),
    Column("mailbox_item_count", BigInteger),
    Column("mailbox_warning_quota_bytes", BigInteger),
    Column("mailbox_quota_bytes", BigInteger),
    Column("mailbox_last_activity", String(10)),
    Column("mailbox_has_archive", Boolean),
    Column("mailbox_report_date", String(10)),
    Column("manage_url", Text),
    # A Microsoft user is linked to at most one contact: a re-run can never create a second.
    UniqueConstraint("tenant_id", "user_id", name="uq_contact_microsoft_user"),
    one_of("contact_microsoft", "status", AccountStatus),
)

# The documentation side of devices: one row per documented device (the documentation platforms'
# "configuration"). Never deleted by the sync.
configurations = Table(
    "configurations", metadata,
    Column("id", Integer, primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(255)),
    # Laptop, Desktop, Mobile phone, Tablet, Server, Virtual machine or Other (matching/devices.py).
    Column("configuration_type", String(32)),
    Column("serial_number", String(128)),
    Column("manufacturer", String(255)),
    Column("model", String(255)),
    Column("operating_system", String(64)),
    Column("os_version", String(64)),
    Column("mac_address", String(17)),  # as documented (the overlay holds Intune's)
    Column("primary_contact_id", Integer, ForeignKey("contacts.id")),
    Column("created_by", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    one_of("configurations", "created_by", ContactOrigin),
)

# The Microsoft overlay of a configuration: one row per configuration linked to an Intune device.
configuration_microsoft = Table(
    "configuration_microsoft", metadata,
    Column("configuration_id", Integer, ForeignKey("configurations.id"), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("device_id", String(36), nullable=False),  # the Intune managed device id
    Column("azure_ad_device_id", String(36)),
    Column("user_id", String(36)),  # the primary user, if any
    Column("user_principal_name", String(320)),
    Column("status", String(16), nullable=False),
    Column("compliance_state", String(32)),
    Column("owner_type", String(16)),
    Column("enrolled_at", String(32)),
    Column("last_check_in", String(32)),
    Column("is_encrypted", Boolean),
    Column("total_storage_bytes", BigInteger),
    Column("free_storage_bytes", BigInteger),
    Column("wifi_mac_address", String(17)),
    Column("ethernet_mac_address", String(17)),
    Column("imei", String(32)),
    Column("manage_url", Text),
    # An Intune device is linked to at most one configuration: a re-run can never create a second.
    UniqueConstraint("tenant_id", "device_id", name="uq_configuration_microsoft_device"),
    one_of("configuration_microsoft", "status", DeviceStatus),
)

tenants = Table(
    "tenants", metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("display_name", String(255)),
    Column("default_domain", String(255)),
    Column("initial_domain", String(255)),
    Column("relationship", String(8)),
    # Reached through a direct-login data source rather than (or as well as) the partner app.
    Column("data_source", String(64)),
    Column("manage_url", Text),
    Column("street", String(255)),
    Column("city", String(128)),
    Column("state", String(128)),
    Column("postal_code", String(32)),
    Column("country", String(8)),
    Column("phone", String(64)),
    Column("verified_domains", Text),
    Column("reports_concealed", Boolean),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("vanished_at", DateTime(timezone=True)),
    # Paused by an operator (`glue-pipeline tenant pause`): not synced until resumed.
    Column("paused_at", DateTime(timezone=True)),
    Column("paused_by", String(255)),
    Column("pause_reason", Text),
    # The tenant's key in the Dagster UI (store/partition_keys.py): given once, never changed.
    Column("partition_key", String(128)),
    UniqueConstraint("partition_key", name="uq_tenants_partition_key"),
    one_of("tenants", "relationship", Relationship),
)

tenant_matches = Table(
    "tenant_matches", metadata,
    Column("tenant_id", String(36), ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id")),
    Column("status", String(16), nullable=False),
    Column("method", String(16)),
    Column("decided_by", String(255)),
    Column("decided_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    one_of("tenant_matches", "status", MatchStatus),
    one_of("tenant_matches", "method", MatchMethod),
)

# Organization suggestions for tenants without a match, best first (replaced at every sync).
tenant_suggestions = Table(
    "tenant_suggestions", metadata,
    Column("tenant_id", String(36), ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("organization_name", String(255), nullable=False),
    Column("score", Integer, nullable=False),
    Column("reasons", Text, nullable=False),
)

# Every match decision an analyst recorded, in order (the audit trail).
match_decisions = Table(
    "match_decisions", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("action", String(32), nullable=False),
    Column("organization_id", Integer),
    Column("user_id", String(36)),
    Column("contact_id", Integer),
    Column("decided_by", String(255), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("note", Text),
    # A device decision's Intune device and configuration (link_device, approve_device).
    Column("device_id", String(36)),
    Column("configuration_id", Integer),
    one_of("match_decisions", "action", DecisionAction),
)

# The standing decision for a user: link it to a contact, or create it despite a duplicate risk.
contact_decisions = Table(
    "contact_decisions", metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("user_id", String(36), primary_key=True),
    Column("action", String(16), nullable=False),
    Column("contact_id", Integer, ForeignKey("contacts.id")),
    Column("decided_by", String(255), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    one_of("contact_decisions", "action", ContactDecisionAction),
)

# Users the last sync of their tenant did not write and why (ambiguous, likely duplicate, ...).
held_users = Table(
    "held_users", metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("user_id", String(36), primary_key=True),
    Column("user_principal_name", String(320), nullable=False),
    Column("display_name", String(255)),
    Column("reason", Text, nullable=False),
    Column("candidate_contact_ids", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The standing decision for a device: link it to a configuration, or create one despite a duplicate risk.
configuration_decisions = Table(
    "configuration_decisions", metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("device_id", String(36), primary_key=True),
    Column("action", String(16), nullable=False),
    Column("configuration_id", Integer, ForeignKey("configurations.id")),
    Column("decided_by", String(255), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    one_of("configuration_decisions", "action", ContactDecisionAction),
)

# Devices the last sync of their tenant did not write and why (ambiguous, likely duplicate, ...).
held_devices = Table(
    "held_devices", metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("device_id", String(36), primary_key=True),
    Column("device_name", String(255)),
    Column("serial_number", String(128)),
    Column("reason", Text, nullable=False),
    Column("candidate_configuration_ids", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

licenses = Table(
    "licenses", metadata,
    Column("tenant_id", String(36), ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("sku_id", String(36), primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id")),
    Column("part_number", String(128)),
    Column("product_name", String(255)),
    Column("capability_status", String(16)),
    Column("consumed", Integer, nullable=False),
    Column("enabled", Integer, nullable=False),
    Column("suspended", Integer, nullable=False),
    Column("warning", Integer, nullable=False),
    Column("unused", Integer, nullable=False),
)

# Data sources switched off by an operator (a source not listed here is connected).
data_sources = Table(
    "data_sources", metadata,
    Column("name", String(128), primary_key=True),
    Column("connected", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

sync_runs = Table(
    "sync_runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),
    Column("tenants_total", Integer, nullable=False, default=0),
    Column("tenants_failed", Integer, nullable=False, default=0),
    # Why a run failed outside its tenants (its process died, it was cancelled), as Dagster recorded it.
    Column("error", Text),
    one_of("sync_runs", "status", RunStatus),
)

# One row per tenant per run: what happened to it.
sync_results = Table(
    "sync_results", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("tenant_id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("organization_id", Integer),
    Column("users", Integer, nullable=False, default=0),
    Column("created", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("held", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("cause", String(32)),  # a failed tenant's cause (vocabulary.FailureCause)
    Column("finished_at", DateTime(timezone=True), nullable=False),
    one_of("sync_results", "status", TenantStatus),
    one_of("sync_results", "cause", FailureCause),
)

# What a tenant's last successful sync was computed from: a fingerprint of its Microsoft data
# and of the store rows its plan reads. A sync whose inputs have the same fingerprint skips the
# plan and the writes (nothing could change); a failure deletes the row.
tenant_sync_state = Table(
    "tenant_sync_state", metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("organization_id", Integer),
    Column("users", Integer, nullable=False),
    Column("contacts", Integer, nullable=False),  # users matched to a contact in that sync
    Column("held", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("synced_at", DateTime(timezone=True), nullable=False),
    # A tenant without a match: the organizations its suggestions weighed (JSON ids), whose
    # contact domains its fingerprint covers.
    Column("weighed_organizations", Text),
    one_of("tenant_sync_state", "status", SyncStateStatus),
)

# A documented value a sync replaced with Microsoft's, one row per tenant, contact and field,
# open until the two agree again or the contact leaves the tenant (store/differences.py has the
# rules). The primary key serves the reads by tenant; deleting a contact deletes its rows.
open_differences = Table(
    "open_differences", metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("field", String(64), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("store_value", Text, nullable=False),  # the documented value
    Column("microsoft_value", Text, nullable=False),  # Microsoft's latest value
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(64), nullable=False),  # the run that last saw it
)

# A row per live Dagster run of the code location, refreshed while the run's process lives and
# deleted when it ends: run monitoring (launcher.py) fails a run whose beat stopped.
run_heartbeats = Table(
    "run_heartbeats", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("job_name", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("beat_at", DateTime(timezone=True), nullable=False),
)

sync_log = Table(
    "sync_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("tenant_id", String(36), index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("level", String(8), nullable=False),
    Column("action", String(32), nullable=False),
    Column("contact_id", Integer),
    Column("user_id", String(36)),
    Column("configuration_id", Integer),
    Column("device_id", String(36)),
    Column("message", Text, nullable=False),
    one_of("sync_log", "level", LogLevel),
    one_of("sync_log", "action", LogAction),
)

Index("ix_contact_emails_value", contact_emails.c.value)
