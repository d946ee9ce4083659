"""The column contracts of the DataFrames that pass between modules: the snapshot's tables, what
the store hands to matching, and the tables matching and the plan give back. Each is declared
here once; whoever builds such a frame builds it with these columns, and readers name the ones
they read (frames.rows with a NamedTuple)."""

from __future__ import annotations

# The snapshot (snapshot.py) -----------------------------------------------------------------

# The users table: one row per user, a column per property (and one per property the field
# mapping names, under snapshot.user_column(name)). Text is cleaned (untrusted.py); empty is None.
USER_COLUMNS: dict[str, str] = {
    "id": "the user's object id (a GUID)",
    "user_principal_name": "the sign-in name, an email address",
    "display_name": "text",
    "given_name": "text",
    "surname": "text",
    "mail": "the primary SMTP address",
    "job_title": "text",
    "business_phones": "list of text",
    "mobile_phone": "text",
    "office_location": "text",
    "account_enabled": "bool (None: not said)",
    "user_type": "Member | Guest",
    "proxy_addresses": "list of TYPE:address (SMTP:, smtp:, SIP:, ...)",
    "sku_ids": "list of the SKU ids of the licences assigned",
    "created_date_time": "ISO-8601 text",
    "last_password_change_date_time": "ISO-8601 text",
    "last_sign_in": "ISO-8601 text, None when not read (no Entra ID P1/P2 or AuditLog.Read.All)",
}
# One row per subscribed SKU.
LICENSE_COLUMNS = ["sku_id", "part_number", "product_name", "capability_status", "consumed", "enabled",
                   "suspended", "warning", "unused"]

# What the store hands to matching (store/writer.py) ------------------------------------------

ORGANIZATION_COLUMNS = ["id", "name"]
# How many of each organization's contacts use an email domain.
ORGANIZATION_DOMAIN_COLUMNS = ["organization_id", "domain", "contacts"]
# Every email of an organization's contacts (a null value for a contact without one).
CONTACT_EMAIL_COLUMNS = ["contact_id", "value"]
# Contacts linked to this tenant's users, whether they are in the tenant's organization, and who
# made them (contacts.created_by: store or microsoft).
LINKED_COLUMNS = ["contact_id", "user_id", "in_organization", "created_by"]
# An organization's contacts linked to users of other tenants.
FOREIGN_COLUMNS = ["contact_id", "tenant_id", "tenant_name"]
# Other tenants matched to an organization.
CLAIM_COLUMNS = ["organization_id", "tenant_id", "tenant_name"]
# An analyst's standing decisions for a tenant's users (action: link | create).
DECISION_COLUMNS = ["user_id", "action", "contact_id"]
# An organization's contacts as duplicate risk compares them (emails and phones are lists).
ORG_CONTACT_COLUMNS = ["contact_id", "first_name", "last_name", "emails", "phones"]

# What matching and the plan give back ---------------------------------------------------------

# One row per user and what becomes of it.
MATCH_COLUMNS = ["user_id", "user_principal_name", "display_name", "action", "contact_id", "matched_on",
                 "reason"]
# Users that would become new contacts, as duplicate risk reads them (other_emails, phones: lists).
NEW_USER_COLUMNS = ["user_id", "first_name", "last_name", "display_name", "email", "other_emails", "phones"]
# One row per (user, candidate contact) scored for duplicate risk.
RISK_COLUMNS = ["user_id", "contact_id", "score", "level", "reasons"]
# Organizations suggested for tenants, best first.
SUGGESTION_COLUMNS = ["tenant_id", "rank", "organization_id", "organization_name", "score", "reasons"]
# One tenant's suggestions (its plan's).
TENANT_SUGGESTION_COLUMNS = [c for c in SUGGESTION_COLUMNS if c != "tenant_id"]
# A tenant's open differences: documented values a sync replaced with Microsoft's (store/differences.py).
DIFFERENCE_COLUMNS = ["contact_id", "contact_name", "user_id", "user_principal_name", "field", "store_value",
                      "microsoft_value", "first_seen_at", "last_seen_at", "run_id"]

# Devices (Intune managed devices and the store's configurations) ------------------------------

# The devices table of the snapshot: one row per Intune managed device, Graph's properties in
# snake_case (extract.DEVICE_FIELDS names the Graph property of each). Text is cleaned; empty is None.
DEVICE_COLUMNS: dict[str, str] = {
    "id": "the Intune managed device id (a GUID)",
    "device_name": "the device's host name (DESKTOP-1A2B3C4, Jane's iPhone, ...)",
    "serial_number": "as Intune reports it (may be a placeholder such as 'To be filled by O.E.M.')",
    "manufacturer": "text",
    "model": "text",
    "operating_system": "Windows | macOS | iOS | iPadOS | Android | Linux | ...",
    "os_version": "text",
    "compliance_state": "compliant | noncompliant | inGracePeriod | unknown | ...",
    "managed_device_owner_type": "company | personal | unknown",
    "enrolled_date_time": "ISO-8601 text",
    "last_sync_date_time": "ISO-8601 text (the last check-in)",
    "user_id": "the primary user's object id (None: shared device without a primary user)",
    "user_principal_name": "the primary user's UPN",
    "azure_ad_device_id": "the Entra ID device object's deviceId",
    "wi_fi_mac_address": "12 hex digits as Intune reports them",
    "ethernet_mac_address": "as Intune reports it (Graph fills it only when a single device is read)",
    "imei": "text",
    "is_encrypted": "bool (None: not said)",
    "total_storage_space_in_bytes": "whole number",
    "free_storage_space_in_bytes": "whole number",
}
# An organization's configurations as device matching compares them (mac_addresses: a list of
# normalised MACs, 12 lower-case hex digits; device_id: the Intune device linked in this tenant).
CONFIGURATION_COLUMNS = ["configuration_id", "name", "serial_number", "mac_addresses", "primary_contact_id",
                         "created_by", "model"]
# Configurations linked to this tenant's devices, and whether they are in the tenant's organization.
LINKED_DEVICE_COLUMNS = ["configuration_id", "device_id", "in_organization", "created_by"]
# An organization's configurations linked to devices of other tenants.
FOREIGN_DEVICE_COLUMNS = ["configuration_id", "tenant_id", "tenant_name"]
# An analyst's standing decisions for a tenant's devices (action: link | create).
DEVICE_DECISION_COLUMNS = ["device_id", "action", "configuration_id"]
# One row per device and what becomes of it (action: match | create | ambiguous | held | skipped).
DEVICE_MATCH_COLUMNS = ["device_id", "device_name", "serial_number", "action", "configuration_id", "matched_on",
                        "reason"]
# One row per (device, candidate configuration) scored for duplicate risk.
DEVICE_RISK_COLUMNS = ["device_id", "configuration_id", "score", "level", "reasons"]
