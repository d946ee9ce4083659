"""What the sync will do with one tenant, decided from the extract and a snapshot of the store:
the organization match and suggestions, each user's contact match, the duplicate risk of the
users that would become new contacts, and the contact writes. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from glue_pipeline import frames
from glue_pipeline.addresses import aliases, user_addresses
from glue_pipeline.columns import MATCH_COLUMNS, NEW_USER_COLUMNS, RISK_COLUMNS, TENANT_SUGGESTION_COLUMNS
from glue_pipeline.mapping import ContactFields, Overlay, contact_fields, overlay_fields
from glue_pipeline.matching.contacts import LINKED_REASON, MatchRow, match_contacts, skip_reason
from glue_pipeline.matching.duplicates import duplicate_risk
from glue_pipeline.matching.holds import by_likelihood, mark_likely_duplicates, not_created_for
from glue_pipeline.matching.organizations import (
    OrgMatch,
    claimed_by,
    conflict_reason,
    describe_claims,
    match_organization,
    same_named,
)
from glue_pipeline.matching.suggest import weigh_organizations
from glue_pipeline.options import SyncOptions
from glue_pipeline.snapshot import TenantSnapshot, UserRecord


@dataclass(frozen=True)
class ContactWrite:
    """What the sync wants a contact to be: mapped fields plus the Microsoft overlay."""

    user_id: str
    contact_id: int | None  # None: create
    fields: ContactFields
    overlay: Overlay
    decided: bool = False  # linked by an analyst's decision: may take the contact from another user


@dataclass
class OrganizationPlan:
    match: OrgMatch
    suggestions: pd.DataFrame  # rank, organization_id, organization_name, score, reasons
    # The organizations its suggestions weighed (suggest.Weighing), sorted: whose contact
    # domains a tenant without a match is planned against.
    weighed: list[int] = field(default_factory=list)


def plan_organization(extract: TenantSnapshot, organizations: pd.DataFrame,
                      organization_domains: pd.DataFrame, recorded: Mapping[str, Any] | None,
                      prepared: pd.DataFrame | None = None,
                      claims: pd.DataFrame | None = None) -> OrganizationPlan:
    """A recorded decision or match, else the exact name, else suggestions by name and domain
    (`prepared`: the organizations' name features, when a batch computed them once). An
    organization that another tenant is matched to (`claims`) is never matched by rule: when it
    is the exact or the best suggested one, the tenant is held as a conflict, with that
    organization as its suggestion for an analyst to accept."""
    match = match_organization(extract.tenant_id, extract.display_name, organizations, recorded, claims)
    if match.status == "conflict":
        return OrganizationPlan(match, _contested(extract, organizations, claims))
    if match.status != "unmatched":
        return OrganizationPlan(match, pd.DataFrame(columns=TENANT_SUGGESTION_COLUMNS))
    tenant = pd.DataFrame([{"tenant_id": extract.tenant_id, "tenant_name": extract.display_name,
                            "domains": extract.organization.verified_domains}])
    weighing = weigh_organizations(tenant, organizations, organization_domains, prepared=prepared)
    weighed = sorted(int(o) for o in weighing.weighed["organization_id"])
    suggestions = weighing.suggestions.drop(columns=["tenant_id"]).reset_index(drop=True)
    if not len(suggestions):
        return OrganizationPlan(match, suggestions, weighed)
    claimed = [claimed_by(claims, int(org_id)) for org_id in suggestions["organization_id"]]
    suggestions["reasons"] = [reasons + (f"; already matched to tenant {describe_claims(c)}" if len(c) else "")
                              for reasons, c in zip(suggestions["reasons"], claimed, strict=True)]
    best = suggestions.iloc[0]
    if len(claimed[0]):
        reason = conflict_reason(extract.display_name, int(best["organization_id"]),
                                 str(best["organization_name"]), claimed[0])
        return OrganizationPlan(OrgMatch(match.tenant_id, match.tenant_name, "conflict", None, None,
                                         f"best suggestion: {reason}"), suggestions, weighed)
    match = OrgMatch(match.tenant_id, match.tenant_name, "suggested", None, None,
                     f"best suggestion: {best['organization_name']} (id {best['organization_id']}, "
                     f"score {best['score']:.0f}: {best['reasons']}); accept it or record another "
                     "match decision")
    return OrganizationPlan(match, suggestions, weighed)


def _contested(extract: TenantSnapshot, organizations: pd.DataFrame, claims: pd.DataFrame | None) -> pd.DataFrame:
    """The one suggestion of a tenant whose same-named organization is another tenant's."""
    org = same_named(organizations, extract.display_name).iloc[0]
    claimed = claimed_by(claims, int(org["id"]))
    return pd.DataFrame([{"rank": 1, "organization_id": int(org["id"]), "organization_name": org["name"],
                          "score": 100.0, "reasons": "organization name equals the tenant name; already "
                                                    f"matched to tenant {describe_claims(claimed)}"}],
                        columns=TENANT_SUGGESTION_COLUMNS)


def skip_reasons(extract: TenantSnapshot, options: SyncOptions) -> pd.Series:
    """Per user: why the user selection leaves the user out (None: synced)."""
    parts = dict(zip(extract.licenses["sku_id"], extract.licenses["part_number"], strict=True))
    shared: set[str] = set()
    if "recipient_type" in extract.mailboxes and extract.head.mailbox_state == "joined":
        kinds = extract.mailboxes["recipient_type"].fillna("").str.lower()
        shared = set(extract.mailboxes.loc[kinds.isin(["shared", "room", "equipment"]),
                                           "user_principal_name"])
    return pd.Series([skip_reason(u, options.users, parts, shared)
                      for u in extract.user_records], index=extract.users.index, dtype=object)


@dataclass
class ContactPlan:
    matches: pd.DataFrame  # MATCH_COLUMNS
    risk: pd.DataFrame  # RISK_COLUMNS
    writes: list[ContactWrite] = field(default_factory=list)
    # The organization's contacts' names by id, as the store had them: the tables name the
    # contacts they list.
    contact_names: dict[int, str] = field(default_factory=dict)


def held_plan(users: pd.DataFrame, skips: pd.Series, match: OrgMatch) -> ContactPlan:
    """A tenant without an organization: every selected user is held back with the reason."""
    reason = f"tenant {match.status}: {match.reason}"
    matches = pd.DataFrame({
        "user_id": users["id"], "user_principal_name": users["user_principal_name"],
        "display_name": users["display_name"], "action": ["skipped" if s else "held" for s in skips],
        "contact_id": pd.array([pd.NA] * len(users), dtype="Int64"), "matched_on": None,
        "reason": [s or reason for s in skips]}, columns=MATCH_COLUMNS)
    return ContactPlan(matches.reset_index(drop=True), pd.DataFrame(columns=RISK_COLUMNS))


def plan_contacts(extract: TenantSnapshot, options: SyncOptions, skips: pd.Series,
                  contact_emails: pd.DataFrame, linked: pd.DataFrame, decisions: pd.DataFrame,
                  org_contacts: pd.DataFrame, now: datetime,
                  foreign: pd.DataFrame | None = None, read: pd.DataFrame | None = None) -> ContactPlan:
    """Match users to the organization's contacts, score would-be new contacts for duplicate risk,
    hold the likely duplicates (policy `hold`; policy `create` creates them, saying so) and build
    the writes. `foreign`: the organization's contacts linked to users of other tenants (matching
    never takes them). `read`: all the tenant's users when `extract` holds only those planned
    again (the others stand as the last plan left them)."""
    read = extract.users if read is None else read
    matches = match_contacts(extract.users, contact_emails, linked, skips, decisions, foreign, read)
    creating = matches[(matches["action"] == "create") & (matches["matched_on"] != "decision")]
    candidates = not_created_for(org_contacts, linked, read["id"], key="user_id", record="contact_id")
    risk = _duplicate_risk(extract, creating["user_id"], candidates)
    mark_likely_duplicates(matches, risk, options.duplicate_policy == "hold", key="user_id", record="contact_id",
                           subject="user")
    return ContactPlan(matches, risk, _writes(extract, options, matches, now), _contact_names(org_contacts))


def _contact_names(org_contacts: pd.DataFrame) -> dict[int, str]:
    """Each contact's first and last name, for the contacts that have one."""
    names = org_contacts["first_name"].fillna("") + " " + org_contacts["last_name"].fillna("")
    return {int(c): name for c, name in zip(org_contacts["contact_id"], names.str.strip(), strict=True) if name}


def _duplicate_risk(extract: TenantSnapshot, user_ids: pd.Series, org_contacts: pd.DataFrame) -> pd.DataFrame:
    if user_ids.empty or org_contacts.empty:
        return pd.DataFrame(columns=RISK_COLUMNS)
    ids = set(user_ids)
    new_users = pd.DataFrame([
        (u["id"], u["given_name"], u["surname"], u["display_name"], u["user_principal_name"],
         _other_emails(u), _phones(u))
        for u in extract.user_records if u["id"] in ids], columns=NEW_USER_COLUMNS)
    return duplicate_risk(new_users, org_contacts, extract.organization.verified_domains)[RISK_COLUMNS]


def _other_emails(user: UserRecord) -> list[str]:
    """`mail` and the smtp proxy addresses but the UPN; duplicate risk folds their case itself."""
    others = [address for source, address in user_addresses(user) if source != "upn"]
    return aliases(others, str(user["user_principal_name"]), fold_case=False)


def _phones(user: UserRecord) -> list[str]:
    phones = user.get("business_phones")
    return [str(p) for p in [*(phones if isinstance(phones, list) else []), user.get("mobile_phone")] if p]


def _writes(extract: TenantSnapshot, options: SyncOptions, matches: pd.DataFrame,
            now: datetime) -> list[ContactWrite]:
    users = {u["id"]: u for u in extract.user_records}
    license_names = dict(zip(extract.licenses["sku_id"], extract.licenses["product_name"], strict=True))
    mailboxes = {m["user_principal_name"]: m for m in frames.records(extract.mailboxes)}
    joined = extract.head.mailbox_state == "joined"
    writes = []
    for row in frames.rows(matches[matches["action"].isin(["match", "create"])], MatchRow):
        user = users[row.user_id]
        overlay = overlay_fields(user, extract.tenant_id, extract.organization.default_domain, license_names,
                                 mailboxes.get(str(user["user_principal_name"]).lower()), joined, now,
                                 options.entra)
        writes.append(ContactWrite(user_id=row.user_id,
                                   contact_id=None if row.action == "create" else int(row.contact_id),
                                   fields=contact_fields(user, options.mapping), overlay=overlay,
                                   decided=row.matched_on == "decision"))
    return writes


def carried_matches(previous: pd.DataFrame, planned_again: Collection[str]) -> pd.DataFrame:
    """The last plan's rows (MATCH_COLUMNS) of the users not planned again, as a plan would make
    them now: a user matched or created then is linked by its user id since (an analyst's link
    decision still says so)."""
    rows = previous.loc[~previous["user_id"].isin(planned_again), MATCH_COLUMNS].copy()
    linked = (rows["action"] == "create") | ((rows["action"] == "match") & (rows["matched_on"] != "decision"))
    rows.loc[linked, "action"] = "match"
    rows.loc[linked, "matched_on"] = "user_id"
    rows.loc[linked, "reason"] = LINKED_REASON
    return rows


def held_on_others(previous: pd.DataFrame, removed: bool) -> set[str]:
    """The users of the last plan (`previous` matches) whose hold may hang on other users of the
    tenant: ambiguous ones (several users on one contact, UPNs alike but for case), and when users
    were removed, those held as likely duplicates (a contact created for a removed user is a
    candidate again). Other holds hang on the user and the store only."""
    waiting = previous["action"] == "ambiguous"
    if removed:
        waiting |= (previous["action"] == "held") & (previous["matched_on"] == "duplicate_risk")
    return set(previous.loc[waiting, "user_id"])


def merged_matches(users: pd.DataFrame, carried: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """The carried rows and those of the users planned again, in the users table's order."""
    table = pd.concat([carried.astype(planned.dtypes.to_dict()), planned], ignore_index=True)
    position = table["user_id"].map(dict(zip(users["id"], range(len(users)), strict=True)))
    return table.iloc[position.argsort(kind="stable")].reset_index(drop=True)


def held_rows(plan: ContactPlan) -> list[dict[str, str | None]]:
    """The held_users rows: every user matched to no contact for a reason an analyst must see."""
    held = plan.matches[plan.matches["action"].isin(["ambiguous", "held"])]
    risk = by_likelihood(plan.risk, "contact_id")
    rows = []
    for row in frames.rows(held, MatchRow):
        candidates = risk.loc[risk["user_id"] == row.user_id, "contact_id"]
        rows.append({"user_id": row.user_id, "user_principal_name": row.user_principal_name,
                     "display_name": row.display_name, "reason": row.reason,
                     "candidate_contact_ids": ", ".join(str(int(c)) for c in candidates) or None})
    return rows

