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
# Contacts linked to this tenant's users, and whether they are in the tenant's organization.
LINKED_COLUMNS = ["contact_id", "user_id", "in_organization"]
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
