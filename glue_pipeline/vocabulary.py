"""The closed sets of words the pipeline writes into the store and its tables, each declared once
as a `Literal` type: annotations name them, mypy checks every value written against them, and the
store's CHECK constraints (store/schema.py, ck_<table>_<column>) enforce those a column holds.

A new word is added here first; when a store column holds it, the store needs a revision that
widens the column's CHECK constraint (test_migrations fails until schema and revisions agree).
"""

from __future__ import annotations

from typing import Literal, get_args, get_origin

# A tenant without an organization, waiting for an analyst: suggested (a likely organization),
# conflict (its organization is another tenant's) or unmatched (none found).
OpenMatchStatus = Literal["suggested", "conflict", "unmatched"]
# A tenant's organization match (tenant_matches.status): matched, open, or ignored by a decision.
MatchStatus = Literal["matched", OpenMatchStatus, "ignored"]
# How a tenant was matched (tenant_matches.method): same name, accepted suggestion, by hand, new organization.
MatchMethod = Literal["exact", "accepted", "manual", "created"]

# A match decision an analyst recorded (match_decisions.action), one per `glue-pipeline match` command.
DecisionAction = Literal["accept", "match", "ignore", "unignore", "create_organization", "link_user",
                         "approve_create", "link_device", "approve_device"]
# An analyst's standing decision for a user (contact_decisions.action): link to a contact, or create one.
ContactDecisionAction = Literal["link", "create"]

# A user the sync held for an analyst: several contacts (or users) match, or it is held for a reason.
HeldAction = Literal["ambiguous", "held"]
# What the sync does with a user (contact_matches table): write a contact, hold the user, or skip it.
ContactAction = Literal["match", "create", HeldAction, "skipped"]
# Where a user's email address comes from: the UPN, `mail`, or an smtp proxy address.
AddressSource = Literal["upn", "mail", "proxy"]
# What a user's contact match rests on (contact_matches.matched_on): a decision, the linked user id,
# one of the user's addresses, or the duplicate risk that held it.
MatchedOn = Literal["decision", "user_id", AddressSource, "duplicate_risk"]

# What a device's configuration match rests on (device_matches.matched_on): a decision, the linked
# Intune device id, the serial number, a MAC address, the device name, or the duplicate risk that held it.
DeviceMatchedOn = Literal["decision", "device_id", "serial", "mac", "name", "duplicate_risk"]
# A linked Intune device (configuration_microsoft.status); removed: gone from Intune.
DeviceStatus = Literal["active", "removed"]
# How a tenant's devices were read: read, switched off by the sync option `devices`, or not readable
# (the app lacks DeviceManagementManagedDevices.Read.All, or the tenant has no Intune licence).
DevicesState = Literal["read", "off", "no_permission", "no_intune"]

# A linked Microsoft user's account (contact_microsoft.status); removed: gone from Microsoft.
AccountStatus = Literal["enabled", "disabled", "removed"]
# Who made a contact (contacts.created_by): there before the sync, or created by it.
ContactOrigin = Literal["store", "microsoft"]
# How the partner reaches a tenant (tenants.relationship): DAP, GDAP, both, or a direct-login source.
Relationship = Literal["dap", "gdap", "both", "direct"]
# A subscribed SKU's state as Microsoft documents it (licenses.capability_status): Microsoft's
# word, written as Graph sends it, so the store does not enforce it.
CapabilityStatus = Literal["Enabled", "Warning", "Suspended", "Deleted", "LockedOut"]

# A planned tenant's outcome (tenant_sync_state.status): contacts written, or users held back.
SyncStateStatus = Literal["synced", "held"]
# A tenant's outcome in a run (sync_results.status): planned, or failed.
TenantStatus = Literal[SyncStateStatus, "failed"]
# A sync run (sync_runs.status): running, or finished with or without a failed tenant.
RunStatus = Literal["running", "succeeded", "failed"]

# Why a tenant failed (sync_results.cause). The permanent causes stay until someone acts in the
# customer tenant: consent revoked or the app missing from it, the tenant gone, a permission
# missing. credentials (the app's secret) fails every tenant; transient causes outlasted every
# retry; store: the store could not be reached or refused the writes; unexpected: anything else.
PermanentCause = Literal["consent_revoked", "tenant_gone", "permission_missing"]
FailureCause = Literal[PermanentCause, "credentials", "transient", "certificate", "store", "unexpected"]

# How much a sync_log entry matters (sync_log.level).
LogLevel = Literal["info", "warning", "error"]
# What a sync_log entry records (sync_log.action): a contact's write or hold, a user's removal or
# skip, a configuration's write or a device's hold, removal or skip, a cleaned value, and the
# tenant's note, hold, unchanged skip or failure.
LogAction = Literal["contact_created", "contact_updated", "contact_ambiguous", "contact_held", "contact_unlinked",
                    "user_removed", "users_skipped", "value_cleaned", "tenant_note", "tenant_held",
                    "tenant_unchanged", "tenant_failed", "configuration_created", "configuration_updated",
                    "device_ambiguous", "device_held", "device_removed", "devices_skipped"]
# The log action of a user held for an analyst, by its contact action.
HELD_LOG_ACTIONS: dict[HeldAction, LogAction] = {"ambiguous": "contact_ambiguous", "held": "contact_held"}
HELD_DEVICE_LOG_ACTIONS: dict[HeldAction, LogAction] = {"ambiguous": "device_ambiguous", "held": "device_held"}

# A doctor check's result (the doctor table's status column).
FindingStatus = Literal["OK", "problem"]


def values(vocabulary: object) -> tuple[str, ...]:
    """The words of a vocabulary (one of the Literal types above), in their declared order."""
    if get_origin(vocabulary) is not Literal:
        raise TypeError(f"{vocabulary!r} is not a Literal type")
    words = get_args(vocabulary)  # nested Literal types come flattened
    if not all(isinstance(word, str) for word in words):
        raise TypeError(f"{vocabulary!r} holds a value that is not a string")
    return words
