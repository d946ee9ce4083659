"""Tenant to organization: a recorded match or decision first, then the exact tenant name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, get_args

import pandas as pd

from glue_pipeline import frames
from glue_pipeline.columns import CLAIM_COLUMNS
from glue_pipeline.vocabulary import MatchMethod, MatchStatus, OpenMatchStatus

_SPACES = re.compile(r"\s+")


def normalize_name(name: str | None) -> str:
    """Case, surrounding and repeated spaces do not count."""
    return _SPACES.sub(" ", (name or "").strip()).casefold()


@dataclass(frozen=True)
class OrgMatch:
    tenant_id: str
    tenant_name: str
    status: MatchStatus
    organization_id: int | None
    method: MatchMethod | None
    reason: str


# Statuses of tenants without an organization that wait for an analyst's match.
OPEN_STATUSES: tuple[OpenMatchStatus, ...] = get_args(OpenMatchStatus)


class _Claim(NamedTuple):
    """A row of claims (CLAIM_COLUMNS)."""

    organization_id: int
    tenant_id: str
    tenant_name: str | None


def same_named(organizations: pd.DataFrame, name: str) -> pd.DataFrame:
    """The organizations named `name`, case and spaces aside (`key`: the normalized names, when
    a batch computed them once)."""
    keys = organizations["key"] if "key" in organizations else organizations["name"].map(normalize_name)
    return organizations[keys == normalize_name(name)]


def claimed_by(claims: pd.DataFrame | None, organization_id: int) -> pd.DataFrame:
    """The other tenants matched to the organization (claims: CLAIM_COLUMNS)."""
    if claims is None or claims.empty:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    return claims[claims["organization_id"] == organization_id]


def describe_claims(claimed: pd.DataFrame) -> str:
    """The tenants of claims, by name then id: the same text whatever order the store gave them in."""
    named = sorted((r.tenant_name or r.tenant_id, r.tenant_id) for r in frames.rows(claimed, _Claim))
    return ", ".join(f"'{name}' ({tenant_id})" for name, tenant_id in named)


def conflict_reason(tenant_name: str, organization_id: int, organization_name: str,
                    claimed: pd.DataFrame) -> str:
    return (f"organization {organization_id} '{organization_name}' is already matched to tenant "
            f"{describe_claims(claimed)}: two tenants share an organization only by an analyst's "
            f"decision; if both belong to it, accept it (`glue-pipeline match accept '{tenant_name}'`), "
            "otherwise match this tenant to another organization")


def match_organization(tenant_id: str, tenant_name: str, organizations: pd.DataFrame,
                       recorded: Mapping[str, Any] | None, claims: pd.DataFrame | None = None) -> OrgMatch:
    """`organizations` has columns id, name (and optionally key: the normalized name, computed
    once for a batch of tenants); `recorded` is the tenant's tenant_matches row; `claims`
    (CLAIM_COLUMNS) the other tenants' matches. A recorded decision or match is kept; an
    organization already matched to another tenant is never matched by name: the tenant is
    held as a conflict until an analyst decides."""
    def result(status: MatchStatus, org_id: int | None, method: MatchMethod | None, reason: str) -> OrgMatch:
        return OrgMatch(tenant_id, tenant_name, status, org_id, method, reason)

    if recorded and recorded.get("status") == "ignored":
        return result("ignored", None, recorded.get("method"), "tenant ignored by a recorded decision")
    if recorded and recorded.get("status") == "matched" and recorded.get("organization_id") is not None:
        org_id = int(recorded["organization_id"])
        if bool((organizations["id"] == org_id).any()):
            # Kept by tenant id, so renaming the tenant or the organization does not unmatch it.
            return result("matched", org_id, recorded.get("method"),
                          f"kept: matched earlier ({recorded.get('method')})")
    same_name = same_named(organizations, tenant_name)
    if len(same_name) == 1:
        org_id, org_name = int(same_name["id"].iloc[0]), str(same_name["name"].iloc[0])
        claimed = claimed_by(claims, org_id)
        if len(claimed):
            return result("conflict", None, None, conflict_reason(tenant_name, org_id, org_name, claimed))
        return result("matched", org_id, "exact", "organization name equals the tenant name")
    if len(same_name) > 1:
        ids = ", ".join(str(i) for i in sorted(same_name["id"]))
        return result("unmatched", None, None,
                      f"{len(same_name)} organizations are named '{tenant_name}' (ids {ids}): "
                      "record which one with a match decision")
    return result("unmatched", None, None,
                  f"no organization is named '{tenant_name}': create or rename one, or record a "
                  "match decision")
