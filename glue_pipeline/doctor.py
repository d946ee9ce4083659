"""`glue-pipeline doctor`: before anyone waits an hour, check per data source and per tenant
that a token can be had, which application permissions it lacks (and why each is needed),
whether reports conceal names, whether each endpoint the sync reads can be read, and whether the
tenant's Intune devices can be read (sync option devices)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import jwt
import pandas as pd

from glue_pipeline import frames
from glue_pipeline.extract import (
    CONCEALED_FIX,
    MAILBOX_REPORT,
    ReportFormatError,
    discover_tenants,
    is_concealed,
    parse_mailbox_report,
)
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.graph.errors import GraphError
from glue_pipeline.intune import NO_INTUNE_NOTE, NO_PERMISSION_NOTE, devices_call, unreadable_state
from glue_pipeline.options import SyncOptions
from glue_pipeline.vocabulary import FindingStatus

# Application permission -> why the sync needs it.
PARTNER_ROLES = {
    "Directory.Read.All": "list DAP customers (/contracts)",
    "DelegatedAdminRelationship.Read.All": "list GDAP customers (/tenantRelationships/delegatedAdminCustomers)",
}
TENANT_ROLES = {
    "Directory.Read.All": "read the organization and its domains",
    "User.Read.All": "read users (/users)",
    "Organization.Read.All": "read licenses (/subscribedSkus)",
    "Reports.Read.All": "read mailbox usage (getMailboxUsageDetail)",
}
ENTRA_ROLE = ("AuditLog.Read.All", "read last sign-in (signInActivity); sync option entra")
DEVICES_ROLE = ("DeviceManagementManagedDevices.Read.All", "read Intune managed devices; sync option devices")
REPORT_SETTINGS_ROLE = ("ReportSettings.ReadWrite.All", "switch off report name concealment; sync option "
                                                        "fix_concealed_reports")
Params = dict[str, str | int]  # a Graph request's query parameters
ENDPOINTS: list[tuple[str, Params]] = [("organization", {}), ("users", {"$top": 1, "$select": "id"}),
                                       ("subscribedSkus", {})]
COLUMNS = ["source", "tenant", "tenant_id", "check", "status", "detail", "fix"]


@dataclass
class Finding:
    source: str
    tenant: str
    tenant_id: str
    check: str
    ok: bool
    detail: str = ""
    fix: str = ""

    @property
    def status(self) -> FindingStatus:
        return "OK" if self.ok else "problem"

    def row(self) -> dict[str, str]:
        return {"source": self.source, "tenant": self.tenant, "tenant_id": self.tenant_id,
                "check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


class _MakeFinding(Protocol):
    """Makes the finding of one check of one tenant (check_tenant's `finding`)."""

    def __call__(self, check: str, ok: bool, detail: str = "", fix: str = "") -> Finding: ...


def required_roles(options: SyncOptions) -> dict[str, str]:
    roles = dict(TENANT_ROLES)
    if options.entra:
        roles[ENTRA_ROLE[0]] = ENTRA_ROLE[1]
    if options.fix_concealed_reports:
        roles[REPORT_SETTINGS_ROLE[0]] = REPORT_SETTINGS_ROLE[1]
    if options.devices.enabled:
        roles[DEVICES_ROLE[0]] = DEVICES_ROLE[1]
    return roles


def token_roles(token: str) -> set[str]:
    """The application permissions granted, from the token's `roles` claim (diagnostics only:
    Graph's 403 stays the authority)."""
    return set(jwt.decode(token, options={"verify_signature": False}).get("roles", []))


def check_tenant(client: GraphClient, source: str, tenant_id: str, name: str,
                 roles_needed: dict[str, str]) -> list[Finding]:
    def finding(check: str, ok: bool, detail: str = "", fix: str = "") -> Finding:
        return Finding(source, name, tenant_id, check, ok, detail, fix)

    try:
        token = client.token(tenant_id, fresh=True)
    except GraphError as exc:
        return [finding("token", False, f"{exc.code}: {exc.message}", exc.fix)]
    findings = [finding("token", True)]
    granted = token_roles(token)
    for role, reason in roles_needed.items():
        findings.append(finding(f"permission {role}", role in granted,
                                "" if role in granted else f"missing; needed to {reason}",
                                "" if role in granted else f"grant the application permission {role} to "
                                "the app and have the customer's admin re-consent"))
    for path, params in ENDPOINTS:
        findings.append(_endpoint(finding, client, tenant_id, path, params))
    findings.append(_reports(finding, client, tenant_id))
    if DEVICES_ROLE[0] in roles_needed:
        findings.append(_devices(finding, client, tenant_id))
    return findings


def _devices(finding: _MakeFinding, client: GraphClient, tenant_id: str) -> Finding:
    """Whether the managed devices can be read: the permission, and an Intune licence in the tenant."""
    call = devices_call(SyncOptions().devices)
    check = "read deviceManagement/managedDevices"
    try:
        client.request(tenant_id, call.path, {**(call.params or {}), "$top": 1})
        return finding(check, True)
    except GraphError as exc:
        state = unreadable_state(exc)
        fix = {"no_permission": NO_PERMISSION_NOTE, "no_intune": NO_INTUNE_NOTE}.get(state or "", exc.fix)
        return finding(check, False, f"{exc.code}: {exc.message}", fix.removeprefix("devices were not read: "))


def _endpoint(finding: _MakeFinding, client: GraphClient, tenant_id: str, path: str, params: Params) -> Finding:
    try:
        client.request(tenant_id, path, params)
        return finding(f"read {path}", True)
    except GraphError as exc:
        return finding(f"read {path}", False, f"{exc.code}: {exc.message}", exc.fix)


def _reports(finding: _MakeFinding, client: GraphClient, tenant_id: str) -> Finding:
    try:
        report = parse_mailbox_report(client.get_report_csv(tenant_id, MAILBOX_REPORT))
    except GraphError as exc:
        return finding("read mailbox report", False, f"{exc.code}: {exc.message}", exc.fix)
    except ReportFormatError as exc:
        return finding("read mailbox report", False, str(exc), "re-run later; report it if it persists")
    if is_concealed(report):
        return finding("report names not concealed", False, "user names in reports are concealed",
                       CONCEALED_FIX)
    return finding("report names not concealed", True)


def check_partner(client: GraphClient) -> list[Finding]:
    partner = client.settings.partner_tenant_id

    def finding(check: str, ok: bool, detail: str = "", fix: str = "") -> Finding:
        return Finding("partner", "partner tenant", partner, check, ok, detail, fix)

    try:
        granted = token_roles(client.token(partner, fresh=True))
    except GraphError as exc:
        return [finding("token", False, f"{exc.code}: {exc.message}", exc.fix)]
    return [finding("token", True)] + [
        finding(f"permission {role}", role in granted, "" if role in granted else f"missing; needed to {reason}",
                "" if role in granted else f"grant {role} to the partner app and consent it")
        for role, reason in PARTNER_ROLES.items()]


class _Tenant(NamedTuple):
    """A row of discover_tenants' frame."""

    tenant_id: str
    display_name: str | None
    data_source: str


def diagnose(client: GraphClient, direct: list[tuple[str, str]], partner: bool,
             options: SyncOptions) -> pd.DataFrame:
    """Every check for the partner app and each tenant it (or a direct-login source) reaches."""
    findings = check_partner(client) if partner else []
    try:
        tenants = discover_tenants(client, direct, partner=partner)
    except GraphError as exc:
        findings.append(Finding("partner", "partner tenant", client.settings.partner_tenant_id,
                                "list customers", False, f"{exc.code}: {exc.message}", exc.fix))
        tenants = discover_tenants(client, direct, partner=False)
    needed = required_roles(options)
    for row in frames.rows(tenants, _Tenant):
        findings += check_tenant(client, row.data_source, row.tenant_id,
                                 row.display_name or row.tenant_id, needed)
    return pd.DataFrame([f.row() for f in findings], columns=COLUMNS)
