"""User to contact, within the organization matched to the user's tenant.

Order: an analyst's decision for the user (link: that contact; create: a new contact, whatever
the user's addresses match); the Microsoft user id already linked to a contact; the UPN; `mail`;
any smtp proxy address - each against every email of the organization's contacts, case ignored.
One user matching several contacts, or several users one contact, is ambiguous and written to
neither; so are users whose UPNs differ only in case and would each become a new contact, unless
an analyst approved it. Users the selection leaves out stay in the table with the reason.

Decisions win: a contact an analyst links to a user is matched by no other user's email, and a
user linked to it until then is held, or skipped when the selection leaves it out (the contact
moves to the decided user; the next sync plans the user without it).

Isolation: a contact linked to a user of another tenant is never matched by email. A user that
would match one is held with a reason naming that tenant; only an analyst's link decision
moves the contact (or an approval creates a new one).
"""

from __future__ import annotations

from typing import NamedTuple, SupportsInt, TypedDict

import pandas as pd

from glue_pipeline import frames
from glue_pipeline.addresses import user_addresses
from glue_pipeline.columns import DECISION_COLUMNS, FOREIGN_COLUMNS, MATCH_COLUMNS
from glue_pipeline.options import UserSelection
from glue_pipeline.snapshot import UserRecord
from glue_pipeline.vocabulary import ContactAction, ContactDecisionAction, MatchedOn


class MatchRow(NamedTuple):
    """A row of a match table (MATCH_COLUMNS)."""

    user_id: str
    user_principal_name: str
    display_name: str | None
    action: ContactAction
    contact_id: SupportsInt  # NA where the action names no contact
    matched_on: MatchedOn | None
    reason: str


def is_guest(user: UserRecord) -> bool:
    return user.get("user_type") == "Guest" or "#EXT#" in str(user.get("user_principal_name") or "").upper()


def skip_reason(user: UserRecord, selection: UserSelection, sku_part_numbers: dict[str, str],
                shared_mailboxes: set[str]) -> str | None:
    """Why the selection leaves a user out, or None when it is synced."""
    if is_guest(user):
        return None if selection.include_guests else "guest account"
    if str(user.get("user_principal_name") or "").lower() in shared_mailboxes:
        return None if selection.include_shared_mailboxes else "shared or resource mailbox"
    if user.get("account_enabled") is False and not selection.include_disabled:
        return "account disabled"
    assigned = user.get("sku_ids")
    skus = [str(sku) for sku in assigned] if isinstance(assigned, list) else []
    if not skus:
        return None if selection.include_unlicensed else "no license assigned"
    if selection.subscriptions:
        parts = {sku_part_numbers.get(sku, sku) for sku in skus}
        if not parts & set(selection.subscriptions):
            return "none of the selected subscriptions (" + ", ".join(selection.subscriptions) + ")"
    return None


class _Email(NamedTuple):
    """A row of match_contacts' contact_emails."""

    contact_id: SupportsInt
    value: object  # the address, when the contact has one


class _Link(NamedTuple):
    """A row of match_contacts' linked."""

    contact_id: SupportsInt
    user_id: str
    in_organization: bool


class _Decision(NamedTuple):
    """A row of match_contacts' decisions."""

    user_id: str
    action: ContactDecisionAction
    contact_id: SupportsInt  # read for a link only


class _Foreign(NamedTuple):
    """A row of match_contacts' foreign (FOREIGN_COLUMNS)."""

    contact_id: SupportsInt
    tenant_id: str
    tenant_name: str | None


class _Index:
    """The organization's contacts, linked users and decisions, for one tenant."""

    def __init__(self, users: pd.DataFrame, contact_emails: pd.DataFrame, linked: pd.DataFrame,
                 decisions: pd.DataFrame, foreign: pd.DataFrame) -> None:
        self.upns = dict(zip(users["id"], users["user_principal_name"], strict=True))
        self.linked_by_user = {row.user_id: row for row in frames.rows(linked, _Link)}
        self.contact_ids = {int(c) for c in contact_emails["contact_id"]}
        self.by_email: dict[str, set[int]] = {}
        for row in frames.rows(contact_emails.dropna(subset=["value"]), _Email):
            self.by_email.setdefault(str(row.value).lower(), set()).add(int(row.contact_id))
        self.decisions = {row.user_id: row for row in frames.rows(decisions, _Decision)}
        # Contacts of the organization that link decisions give to users: contact id -> users.
        self.decided: dict[int, set[str]] = {}
        for decision in self.decisions.values():
            if decision.action == "link" and int(decision.contact_id) in self.contact_ids:
                self.decided.setdefault(int(decision.contact_id), set()).add(decision.user_id)
        self.taken = {int(row.contact_id) for row in frames.rows(linked, _Link)} | self.decided.keys()
        # Contacts linked to users of other tenants: contact id -> (tenant id, tenant name).
        self.foreign = {int(row.contact_id): (row.tenant_id, row.tenant_name)
                        for row in frames.rows(foreign, _Foreign)}


def match_contacts(users: pd.DataFrame, contact_emails: pd.DataFrame, linked: pd.DataFrame,
                   skip_reasons: pd.Series | None = None,
                   decisions: pd.DataFrame | None = None,
                   foreign: pd.DataFrame | None = None, everyone: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per user with its action: match, create, ambiguous, held or skipped.

    users: the snapshot's users table (columns.USER_COLUMNS: id, user_principal_name,
        display_name, mail, proxy_addresses).
    contact_emails: contact_id, value - every email of the matched organization's contacts
        (contact_id with a null value for a contact without email).
    linked: contact_id, user_id, in_organization - contacts linked to this tenant's users.
    skip_reasons: per user index, why the selection leaves the user out (None: synced).
    decisions: user_id, action (link | create), contact_id - an analyst's standing decisions.
    foreign: contact_id, tenant_id, tenant_name - the organization's contacts linked to users of
        other tenants.
    everyone: all the tenant's users when `users` are only those planned again (reasons name them).
    """
    decisions = decisions if decisions is not None else pd.DataFrame(columns=DECISION_COLUMNS)
    foreign = foreign if foreign is not None else pd.DataFrame(columns=FOREIGN_COLUMNS)
    index = _Index(users if everyone is None else everyone, contact_emails, linked, decisions, foreign)
    rows = []
    for position, user in enumerate(frames.records(users)):
        reason = None if skip_reasons is None else skip_reasons.iloc[position]
        reason = None if pd.isna(reason) else reason
        base = {"user_id": user["id"], "user_principal_name": user["user_principal_name"],
                "display_name": user.get("display_name")}
        rows.append({**base, **_decide(user, reason, index)})
    table = pd.DataFrame(rows, columns=MATCH_COLUMNS)
    return _flag_shared_creates(_flag_shared_contacts(table))


class _Outcome(TypedDict):
    """What becomes of a user: the match table's columns after the user's own."""

    action: ContactAction
    contact_id: int | None
    matched_on: MatchedOn | None
    reason: str


def _decide(user: UserRecord, skip: str | None, index: _Index) -> _Outcome:
    decision = index.decisions.get(str(user["id"]))
    if decision is not None and decision.action == "link":
        if int(decision.contact_id) in index.contact_ids:
            return _row("match", int(decision.contact_id), "decision", "linked by an analyst's decision")
        return _row("held", int(decision.contact_id), "decision",
                    "the analyst linked a contact that is not in the tenant's organization: record "
                    "a new link decision")
    link = index.linked_by_user.get(str(user["id"]))
    if link is not None and not link.in_organization:
        return _row("held", int(link.contact_id), "user_id",
                    "linked to a contact of another organization than the tenant's match: "
                    "move the contact or change the tenant's match")
    # Another user's link decision takes the user's contact: the user is planned without it.
    moved = link is not None and int(link.contact_id) in index.decided
    if link is not None and not moved:
        return _row("match", int(link.contact_id), "user_id", LINKED_REASON)
    if skip:
        return _row("skipped", None, None, skip)
    if link is not None:
        # Held even when approved: a user has one link, and its old one moves only as this sync
        # writes the contact, so a new contact waits for the next sync.
        return _row("held", int(link.contact_id), "user_id", _moved_reason(int(link.contact_id), index))
    if decision is not None and decision.action == "create":
        return _row("create", None, "decision", "creation approved by an analyst")
    for matched_on, address in user_addresses(user):
        address = address.lower()
        candidates = index.by_email.get(address, set()) - index.taken
        owned = sorted(candidates & index.foreign.keys())
        if owned:
            return _row("held", owned[0], matched_on, _foreign_reason(matched_on, address, owned[0],
                                                                      *index.foreign[owned[0]]))
        if len(candidates) == 1:
            return _row("match", next(iter(candidates)), matched_on,
                        f"contact email equals the user's {_LABELS[matched_on]}")
        if len(candidates) > 1:
            ids = ", ".join(str(c) for c in sorted(candidates))
            return _row("ambiguous", None, matched_on,
                        f"the {_LABELS[matched_on]} {address} is an email of {len(candidates)} "
                        f"contacts ({ids}): link the user to one of them")
    return _row("create", None, None, "no contact has any of the user's addresses")


_LABELS = {"upn": "UPN", "mail": "mail address", "proxy": "proxy address"}
LINKED_REASON = "linked Microsoft user id"  # a user matched to the contact its id is linked to


def _foreign_reason(matched_on: str, address: str, contact_id: int, tenant_id: str,
                    tenant_name: str | None) -> str:
    return (f"the {_LABELS[matched_on]} {address} is an email of contact {contact_id}, which is linked "
            f"to a user of another tenant, '{tenant_name or tenant_id}' ({tenant_id}): a sync never "
            "moves a contact between tenants; link this user to it if it is the same person, or "
            "approve creating a new contact")


def _moved_reason(contact_id: int, index: _Index) -> str:
    deciders = ", ".join(sorted(str(index.upns.get(u, u)) for u in index.decided[contact_id]))
    return (f"an analyst's decision links contact {contact_id}, linked to this user until now, to "
            f"{deciders}: link this user to another contact or approve creating a new one")


def _row(action: ContactAction, contact_id: int | None, matched_on: MatchedOn | None, reason: str) -> _Outcome:
    return {"action": action, "contact_id": contact_id, "matched_on": matched_on, "reason": reason}


def _flag_shared_creates(table: pd.DataFrame) -> pd.DataFrame:
    """Users whose UPNs differ only in case would become two contacts with one email: none is
    created until an analyst decides. An approved user is created (so are several, when each is
    approved); each becomes its own contact, linked by its user id from then on."""
    creating = table["action"] == "create"
    upn = table["user_principal_name"].str.lower()
    shared = creating & (table["matched_on"] != "decision") & upn.map(upn[creating].value_counts()).gt(1)
    table.loc[shared, "reason"] = ("another user of the tenant has the same UPN but for case: link or "
                                   "approve each one")
    table.loc[shared, "action"] = "ambiguous"
    return table


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
