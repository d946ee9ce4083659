"""Reading Microsoft Graph into tables: the partner's customer tenants, and per tenant its
organization, domains, users, subscribed SKUs and mailbox usage."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd

from glue_pipeline.graph.client import GraphClient
from glue_pipeline.licenses import friendly_name

USER_FIELDS = [
    "id", "userPrincipalName", "displayName", "givenName", "surname", "mail", "jobTitle",
    "businessPhones", "mobilePhone", "officeLocation", "accountEnabled", "userType",
    "proxyAddresses", "assignedLicenses", "createdDateTime", "lastPasswordChangeDateTime",
]
TENANT_COLUMNS = ["tenant_id", "display_name", "default_domain", "relationship"]
MAILBOX_REPORT = "reports/getMailboxUsageDetail(period='D7')"
# Report header -> our column. Parsed by name: column order, the BOM and extra columns don't matter.
MAILBOX_COLUMNS = {
    "User Principal Name": "user_principal_name",
    "Report Refresh Date": "report_date",
    "Is Deleted": "is_deleted",
    "Last Activity Date": "last_activity_date",
    "Item Count": "item_count",
    "Storage Used (Byte)": "storage_used_bytes",
    "Issue Warning Quota (Byte)": "issue_warning_quota_bytes",
    "Prohibit Send Quota (Byte)": "prohibit_send_quota_bytes",
    "Prohibit Send/Receive Quota (Byte)": "prohibit_send_receive_quota_bytes",
    "Has Archive": "has_archive",
}


def discover_tenants(client: GraphClient) -> pd.DataFrame:
    """Customer tenants from DAP contracts and GDAP relationships, merged by tenant id."""
    partner = client.settings.partner_tenant_id
    rows: dict[str, dict] = {}
    for contract in client.get_collection(partner, "contracts", top=999):
        rows[contract["customerId"]] = {
            "tenant_id": contract["customerId"], "display_name": contract.get("displayName"),
            "default_domain": contract.get("defaultDomainName"), "relationship": "dap"}
    for customer in client.get_collection(partner, "tenantRelationships/delegatedAdminCustomers",
                                          top=300):
        row = rows.get(customer["tenantId"])
        if row is None:
            rows[customer["tenantId"]] = {
                "tenant_id": customer["tenantId"], "display_name": customer.get("displayName"),
                "default_domain": None, "relationship": "gdap"}
        else:
            row["relationship"] = "both"
    frame = pd.DataFrame(list(rows.values()), columns=TENANT_COLUMNS)
    return frame.sort_values("tenant_id", ignore_index=True)


@dataclass
class TenantExtract:
    tenant_id: str
    organization: dict
    domains: pd.DataFrame
    users: pd.DataFrame
    licenses: pd.DataFrame
    mailboxes: pd.DataFrame

    @property
    def display_name(self) -> str:
        return str(self.organization.get("displayName") or self.tenant_id)

    @property
    def initial_domain(self) -> str | None:
        return next((d["name"] for d in self.organization.get("verifiedDomains", [])
                     if d.get("isInitial")), None)

    @property
    def default_domain(self) -> str | None:
        return next((d["name"] for d in self.organization.get("verifiedDomains", [])
                     if d.get("isDefault")), None)


def extract_tenant(client: GraphClient, tenant_id: str) -> TenantExtract:
    organization = client.get_json(tenant_id, "organization")["value"][0]
    domains = pd.DataFrame(list(client.get_collection(tenant_id, "domains")),
                           columns=["id", "isDefault", "isInitial", "isVerified"])
    users = pd.DataFrame(list(client.get_collection(tenant_id, "users", select=USER_FIELDS,
                                                    top=client.settings.page_size)),
                         columns=USER_FIELDS)
    skus = list(client.get_collection(tenant_id, "subscribedSkus"))
    csv = client.get_report_csv(tenant_id, MAILBOX_REPORT)
    return TenantExtract(tenant_id, organization, domains, users, licenses_frame(skus),
                         parse_mailbox_report(csv))


def licenses_frame(skus: list[dict]) -> pd.DataFrame:
    rows = []
    for sku in skus:
        prepaid = sku.get("prepaidUnits") or {}
        enabled = int(prepaid.get("enabled") or 0)
        consumed = int(sku.get("consumedUnits") or 0)
        rows.append({
            "sku_id": sku["skuId"], "part_number": sku.get("skuPartNumber"),
            "product_name": friendly_name(sku.get("skuPartNumber")),
            "capability_status": sku.get("capabilityStatus"), "consumed": consumed,
            "enabled": enabled, "suspended": int(prepaid.get("suspended") or 0),
            "warning": int(prepaid.get("warning") or 0), "unused": max(enabled - consumed, 0)})
    return pd.DataFrame(rows, columns=["sku_id", "part_number", "product_name", "capability_status",
                                       "consumed", "enabled", "suspended", "warning", "unused"])


def parse_mailbox_report(csv: str) -> pd.DataFrame:
    """The mailbox usage CSV as a table keyed by lower-cased UPN."""
    columns = list(MAILBOX_COLUMNS.values())
    if not csv.strip():
        return pd.DataFrame(columns=columns)
    raw = pd.read_csv(io.StringIO(csv.lstrip("\ufeff")), dtype=str, keep_default_na=False)
    raw.columns = [c.strip() for c in raw.columns]
    frame = pd.DataFrame({ours: raw[theirs] if theirs in raw else None
                          for theirs, ours in MAILBOX_COLUMNS.items()})
    for column in ("item_count", "storage_used_bytes", "issue_warning_quota_bytes",
                   "prohibit_send_quota_bytes", "prohibit_send_receive_quota_bytes"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    for column in ("is_deleted", "has_archive"):
        frame[column] = frame[column].astype(str).str.lower().eq("true")
    frame["user_principal_name"] = frame["user_principal_name"].str.lower()
    return frame.reset_index(drop=True)
