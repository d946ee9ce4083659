"""User to contact, within the organization matched to the user's tenant: the Microsoft user id
already linked to a contact, then the UPN against every email of the organization's contacts.

One user matching several contacts, or several users one contact, is ambiguous and written to
neither. Users the sync does not take (guests, unlicensed) are kept in the table with the reason.
"""

from __future__ import annotations

import pandas as pd

MATCH_COLUMNS = ["user_id", "user_principal_name", "display_name", "action", "contact_id",
                 "matched_on", "reason"]


def skip_reason(user: dict) -> str | None:
    """Why a user is not synced (the default selection: licensed members), or None."""
    upn = str(user.get("userPrincipalName") or "")
    if user.get("userType") == "Guest" or "#EXT#" in upn.upper():
        return "guest account"
    if not user.get("assignedLicenses"):
        return "no license assigned"
    return None


def match_contacts(users: pd.DataFrame, contact_emails: pd.DataFrame,
                   linked: pd.DataFrame) -> pd.DataFrame:
    """One row per user with its action: match, create, ambiguous, held or skipped.

    users: Graph user records (id, userPrincipalName, displayName, userType, assignedLicenses).
    contact_emails: contact_id, value: every email of the matched organization's contacts.
    linked: contact_id, user_id, in_organization: contacts already linked to this tenant's users.
    """
    linked_by_user = {row.user_id: row for row in linked.itertuples(index=False)}
    contacts_by_email: dict[str, set[int]] = {}
    for row in contact_emails.itertuples(index=False):
        contacts_by_email.setdefault(str(row.value).lower(), set()).add(int(row.contact_id))
    taken = {int(row.contact_id) for row in linked.itertuples(index=False)}

    rows = []
    for user in users.to_dict("records"):
        base = {"user_id": user["id"], "user_principal_name": user["userPrincipalName"],
                "display_name": user.get("displayName")}
        rows.append({**base, **_decide(user, linked_by_user, contacts_by_email, taken)})
    table = pd.DataFrame(rows, columns=MATCH_COLUMNS)
    return _flag_shared_contacts(table)


def _decide(user: dict, linked_by_user: dict, contacts_by_email: dict[str, set[int]],
            taken: set[int]) -> dict:
    link = linked_by_user.get(user["id"])
    if link is not None:
        if not link.in_organization:
            return {"action": "held", "contact_id": int(link.contact_id), "matched_on": "user_id",
                    "reason": "linked to a contact of another organization than the tenant's match: "
                              "move the contact or change the tenant's match"}
        return {"action": "match", "contact_id": int(link.contact_id), "matched_on": "user_id",
                "reason": "linked Microsoft user id"}
    reason = skip_reason(user)
    if reason:
        return {"action": "skipped", "contact_id": None, "matched_on": None, "reason": reason}
    candidates = contacts_by_email.get(str(user["userPrincipalName"]).lower(), set()) - taken
    if len(candidates) == 1:
        return {"action": "match", "contact_id": candidates.pop(), "matched_on": "upn",
                "reason": "contact email equals the UPN"}
    if len(candidates) > 1:
        ids = ", ".join(str(c) for c in sorted(candidates))
        return {"action": "ambiguous", "contact_id": None, "matched_on": "upn",
                "reason": f"the UPN is an email of {len(candidates)} contacts ({ids}): link one"}
    return {"action": "create", "contact_id": None, "matched_on": None, "reason": "no contact has the UPN"}


def _flag_shared_contacts(table: pd.DataFrame) -> pd.DataFrame:
    """Several users on one contact: none of them is written."""
    matched = table[table["action"] == "match"]
    counts = matched["contact_id"].value_counts()
    shared = set(counts[counts > 1].index)
    if shared:
        mask = (table["action"] == "match") & table["contact_id"].isin(shared)
        table.loc[mask, "reason"] = "several users match this contact: link the right one"
        table.loc[mask, "action"] = "ambiguous"
    table["contact_id"] = table["contact_id"].astype("Int64")
    return table
