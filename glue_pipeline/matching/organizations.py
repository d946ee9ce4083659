"""Tenant to organization: a recorded match or decision first, then the exact tenant name."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

_SPACES = re.compile(r"\s+")


def normalize_name(name: str | None) -> str:
    """Case, surrounding and repeated spaces do not count."""
    return _SPACES.sub(" ", (name or "").strip()).casefold()


@dataclass(frozen=True)
class OrgMatch:
    tenant_id: str
    tenant_name: str
    status: str  # matched | unmatched | ignored
    organization_id: int | None
    method: str | None  # exact | accepted | manual | created
    reason: str


def match_organization(tenant_id: str, tenant_name: str, organizations: pd.DataFrame,
                       recorded: dict | None) -> OrgMatch:
    """`organizations` has columns id, name (and optionally key: the normalized name, computed
    once for a batch of tenants); `recorded` is the tenant's tenant_matches row."""
    def result(status: str, org_id: int | None, method: str | None, reason: str) -> OrgMatch:
        return OrgMatch(tenant_id, tenant_name, status, org_id, method, reason)

    if recorded and recorded.get("status") == "ignored":
        return result("ignored", None, recorded.get("method"), "tenant ignored by a recorded decision")
    if recorded and recorded.get("status") == "matched" and recorded.get("organization_id") is not None:
        org_id = int(recorded["organization_id"])
        if bool((organizations["id"] == org_id).any()):
            # Kept by tenant id, so renaming the tenant or the organization does not unmatch it.
            return result("matched", org_id, recorded.get("method"),
                          f"kept: matched earlier ({recorded.get('method')})")
    wanted = normalize_name(tenant_name)
    keys = organizations["key"] if "key" in organizations else organizations["name"].map(normalize_name)
    same_name = organizations[keys == wanted]
    if len(same_name) == 1:
        return result("matched", int(same_name["id"].iloc[0]), "exact",
                      "organization name equals the tenant name")
    if len(same_name) > 1:
        ids = ", ".join(str(i) for i in sorted(same_name["id"]))
        return result("unmatched", None, None,
                      f"{len(same_name)} organizations are named '{tenant_name}' (ids {ids}): "
                      "record which one with a match decision")
    return result("unmatched", None, None,
                  f"no organization is named '{tenant_name}': create or rename one, or record a "
                  "match decision")
