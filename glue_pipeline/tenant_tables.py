"""A tenant's tables (tables.TENANT_TABLES) as its plans make them: where a table names a user or
a contact by its id, the person's name (and a user's UPN) stands beside it; a configuration's
name stands beside its id, and a device's name and serial beside the device's id. Pure: no I/O."""

from __future__ import annotations

import pandas as pd

from glue_pipeline.device_plan import DevicePlan, no_device_plan
from glue_pipeline.plan import ContactPlan, OrganizationPlan
from glue_pipeline.snapshot import TenantSnapshot


def tenant_tables(extract: TenantSnapshot, org: OrganizationPlan, plan: ContactPlan, differences: pd.DataFrame,
                  organizations: pd.DataFrame, devices: DevicePlan | None = None) -> dict[str, pd.DataFrame]:
    """All the tenant's tables, from its full plan."""
    devices = devices or no_device_plan()
    return {"users": extract.users, "licenses": extract.licenses, "mailbox_usage": extract.mailboxes,
            "organization_match": _organization_table(org, organizations),
            **contact_tables(plan, plan.matches, differences), **device_tables(extract, devices)}


def device_tables(extract: TenantSnapshot, devices: DevicePlan) -> dict[str, pd.DataFrame]:
    """devices, device_matches and device_risk."""
    return {"devices": extract.devices,
            "device_matches": _with_configuration_name(devices.matches, devices),
            "device_risk": _with_device(_with_configuration_name(devices.risk, devices), extract.devices)}


def contact_tables(plan: ContactPlan, matches: pd.DataFrame, differences: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """contact_matches (`matches`: every user's row), duplicate_risk and differences."""
    return {"contact_matches": _with_contact_name(matches, plan),
            "duplicate_risk": _with_users(_with_contact_name(plan.risk, plan), matches, USER_NAMES),
            # The store's open differences name their contact and user (UPN) themselves.
            "differences": _with_users(differences, matches, ["display_name"])}


def _with_configuration_name(frame: pd.DataFrame, plan: DevicePlan) -> pd.DataFrame:
    return frame.assign(configuration_name=frame["configuration_id"].map(plan.configuration_names).astype("string"))


def _with_device(frame: pd.DataFrame, devices: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its device's name and serial beside the device's id."""
    by_id = devices.drop_duplicates("id").set_index("id")
    return frame.assign(**{c: frame["device_id"].map(by_id[c]).astype("string") for c in ("device_name",
                                                                                         "serial_number")})


def _organization_table(org: OrganizationPlan, organizations: pd.DataFrame) -> pd.DataFrame:
    """The tenant's organization match on one row, with the organization's name."""
    match = org.match
    names = organizations.loc[organizations["id"] == match.organization_id, "name"]
    suggestions = "; ".join(f"{r.rank}. {r.organization_name} (id {r.organization_id}, {r.score:.0f}: "
                            f"{r.reasons})" for r in org.suggestions.itertuples(index=False))
    organization = pd.DataFrame([{"tenant_id": match.tenant_id, "tenant_name": match.tenant_name,
                                  "status": match.status, "organization_id": match.organization_id,
                                  "organization_name": names.iloc[0] if len(names) else None,
                                  "method": match.method, "reason": match.reason,
                                  "suggestions": suggestions or None}])
    organization["organization_id"] = organization["organization_id"].astype("Int64")
    return organization


def _with_contact_name(frame: pd.DataFrame, plan: ContactPlan) -> pd.DataFrame:
    """`frame` with its contact's name beside its id (empty for a contact the sync created)."""
    return frame.assign(contact_name=frame["contact_id"].map(plan.contact_names).astype("string"))


USER_NAMES = ["display_name", "user_principal_name"]


def _with_users(frame: pd.DataFrame, matches: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`frame` with these columns of its user (USER_NAMES) beside the user's id, from a match table."""
    users = matches.drop_duplicates("user_id").set_index("user_id")
    return frame.assign(**{c: frame["user_id"].map(users[c]).astype("string") for c in columns})
