"""Match decisions an analyst records: accept a suggestion, match a tenant to an organization,
ignore or un-ignore a tenant, create an organization from a tenant, link a held user to a
contact, approve creating a held user, link a held device to a configuration, approve creating
a held device. Each is one transaction with an audit row in match_decisions; every later sync
honours it. Also what is open for a tenant (its review), what
a recorded decision did in words, and the auto-accept policy the sync applies (the sync option
accept_suggestions_at), recorded as a decision by `policy`."""

from __future__ import annotations

import getpass
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NotRequired, TypedDict, TypeVar, get_args

import pandas as pd

from glue_pipeline.matching.organizations import OrgMatch
from glue_pipeline.matching.suggest import strong_suggestion_threshold as STRONG_SUGGESTION
from glue_pipeline.render import terminal_text
from glue_pipeline.store.decisions import DecisionReads, DecisionStore, reading_decisions, recording_decision
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.rows import Row
from glue_pipeline.store.tenant_refs import TenantRefError
from glue_pipeline.vocabulary import DecisionAction, MatchStatus

T = TypeVar("T")

ACTIONS: tuple[DecisionAction, ...] = get_args(DecisionAction)


class DecisionError(ValueError):
    """A decision that cannot be recorded; the message says why and what to do instead."""


class Decided(TypedDict):
    """What a recorded decision names, for the operator: the tenant's name, and the organization,
    user or contact the decision is about."""

    tenant: str | None  # None for a tenant discovery saw without a name
    tenant_id: str
    organization_id: NotRequired[int]
    organization: NotRequired[str]
    rank: NotRequired[int]  # an accepted suggestion's
    score: NotRequired[int]
    user_id: NotRequired[str]
    user: NotRequired[str | None]  # the user's principal name
    contact_id: NotRequired[int]
    contact: NotRequired[str]  # the contact's name
    device_id: NotRequired[str]
    device: NotRequired[str | None]  # the device's name
    configuration_id: NotRequired[int]
    configuration: NotRequired[str | None]  # the configuration's name


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def resolve_tenant(store: DecisionReads, ref: str) -> Row:
    """A tenant by id, partition key, or display name (store/tenant_refs.py)."""
    try:
        return store.find_tenant(ref)
    except TenantRefError as exc:
        raise DecisionError(str(exc)) from None


def resolve_organization(store: DecisionReads, ref: str | int) -> Row:
    """An organization by id, or by name (case and spaces ignored)."""
    if isinstance(ref, int) or str(ref).isdigit():
        org = store.organization(int(ref))
        if org:
            return org
        raise DecisionError(f"no organization has id {ref}")
    found = store.organizations_named(str(ref))
    if len(found) == 1:
        return found[0]
    if found:
        raise DecisionError(f"{len(found)} organizations are named '{ref}' (ids "
                            f"{', '.join(str(o['id']) for o in found)}): give the organization id")
    raise DecisionError(f"no organization is named '{ref}': give an organization id or an exact name")


def _recording(engine: Engine, by: str | None) -> AbstractContextManager[DecisionStore]:
    return recording_decision(engine, by or default_actor())


def _named(tenant: Row) -> Decided:
    return {"tenant": tenant["display_name"], "tenant_id": tenant["tenant_id"]}


def _contact_name(contact: Row) -> str:
    return " ".join(n for n in (contact["first_name"], contact["last_name"]) if n)


def accept_suggestion(engine: Engine, tenant_ref: str, rank: int = 1, by: str | None = None) -> Decided:
    """Match the tenant to its suggestion of this rank (1 = best)."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        suggestion = store.suggestion(tenant["tenant_id"], rank)
        if suggestion is None:
            raise DecisionError(f"tenant '{tenant['display_name']}' has no suggestion of rank {rank}: see "
                                "`glue-pipeline match list`, or match it with `glue-pipeline match set`")
        store.set_match(tenant["tenant_id"], "matched", suggestion["organization_id"], "accepted")
        store.audit(tenant["tenant_id"], "accept", organization_id=suggestion["organization_id"],
                    note=f"suggestion {rank}: {suggestion['reasons']}")
        return {**_named(tenant), "organization_id": suggestion["organization_id"],
                "organization": suggestion["organization_name"], "rank": rank, "score": suggestion["score"]}


def match_tenant(engine: Engine, tenant_ref: str, organization_ref: str | int, by: str | None = None) -> Decided:
    """Match (or re-match) the tenant to an organization given by id or name."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        org = resolve_organization(store, organization_ref)
        store.set_match(tenant["tenant_id"], "matched", org["id"], "manual")
        store.audit(tenant["tenant_id"], "match", organization_id=org["id"])
        return {**_named(tenant), "organization_id": org["id"], "organization": org["name"]}


def ignore_tenant(engine: Engine, tenant_ref: str, by: str | None = None) -> Decided:
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        store.set_match(tenant["tenant_id"], "ignored", None, "manual")
        store.audit(tenant["tenant_id"], "ignore")
        return _named(tenant)


def unignore_tenant(engine: Engine, tenant_ref: str, by: str | None = None) -> Decided:
    """The tenant goes back to the rules: exact name, then suggestions, at its next sync."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        store.set_match(tenant["tenant_id"], "unmatched", None, None)
        store.audit(tenant["tenant_id"], "unignore")
        return _named(tenant)


def create_organization(engine: Engine, tenant_ref: str, by: str | None = None, force: bool = False) -> Decided:
    """Create an organization named after the tenant and match the tenant to it. Refused while an
    organization has the name or a strong suggestion exists, unless forced."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        name = tenant["display_name"] or tenant["tenant_id"]
        if not force:
            _refuse_duplicate_organization(store, tenant, name)
        org_id = store.add_organization(name)
        store.set_match(tenant["tenant_id"], "matched", org_id, "created")
        store.audit(tenant["tenant_id"], "create_organization", organization_id=org_id,
                    note="forced" if force else None)
        return {**_named(tenant), "organization_id": org_id, "organization": name}


def _refuse_duplicate_organization(store: DecisionReads, tenant: Row, name: str) -> None:
    same = store.organizations_named(name)
    if same:
        raise DecisionError(f"organization {same[0]['id']} '{same[0]['name']}' already has this name: match "
                            f"the tenant to it (`glue-pipeline match set '{name}' {same[0]['id']}`), or pass "
                            "--force to create a second one")
    strong = store.best_suggestion(tenant["tenant_id"], STRONG_SUGGESTION)
    if strong:
        raise DecisionError(f"a strong suggestion exists: {strong['organization_name']} (id "
                            f"{strong['organization_id']}, score {strong['score']}: {strong['reasons']}); "
                            f"accept it (`glue-pipeline match accept '{name}'`) or pass --force to create a "
                            "new one")


def link_user(engine: Engine, tenant_ref: str, user_id: str, contact_id: int, by: str | None = None) -> Decided:
    """Link a Microsoft user to an existing contact of the tenant's organization."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        org_id = _matched_organization(store, tenant)
        contact = store.contact(contact_id)
        if contact is None or contact["organization_id"] != org_id:
            raise DecisionError(f"contact {contact_id} is not a contact of organization {org_id}, the "
                                f"tenant's match: pick one of its contacts")
        _require_known_user(store, tenant["tenant_id"], user_id)
        store.set_contact_decision(tenant["tenant_id"], user_id, "link", contact_id)
        store.audit(tenant["tenant_id"], "link_user", user_id=user_id, contact_id=contact_id)
        return {**_named(tenant), "user_id": user_id, "user": store.user_principal_name(tenant["tenant_id"], user_id),
                "contact_id": contact_id, "contact": _contact_name(contact)}


def approve_create(engine: Engine, tenant_ref: str, user_id: str, by: str | None = None) -> Decided:
    """Create a contact for a held user even though it looks like an existing one."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        _matched_organization(store, tenant)
        _require_known_user(store, tenant["tenant_id"], user_id)
        store.set_contact_decision(tenant["tenant_id"], user_id, "create", None)
        store.audit(tenant["tenant_id"], "approve_create", user_id=user_id)
        return {**_named(tenant), "user_id": user_id, "user": store.user_principal_name(tenant["tenant_id"], user_id)}


def link_device(engine: Engine, tenant_ref: str, device_id: str, configuration_id: int,
                by: str | None = None) -> Decided:
    """Link an Intune device to an existing configuration of the tenant's organization."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        org_id = _matched_organization(store, tenant)
        configuration = store.configuration(configuration_id)
        if configuration is None or configuration["organization_id"] != org_id:
            raise DecisionError(f"configuration {configuration_id} is not a configuration of organization {org_id}, "
                                "the tenant's match: pick one of its configurations")
        device_id = _require_known_device(store, tenant["tenant_id"], device_id)
        store.set_device_decision(tenant["tenant_id"], device_id, "link", configuration_id)
        store.audit(tenant["tenant_id"], "link_device", device_id=device_id, configuration_id=configuration_id)
        return {**_named(tenant), "device_id": device_id, "device": store.device_name(tenant["tenant_id"], device_id),
                "configuration_id": configuration_id, "configuration": configuration["name"]}


def approve_device(engine: Engine, tenant_ref: str, device_id: str, by: str | None = None) -> Decided:
    """Create a configuration for a held device even though it looks like an existing one."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        _matched_organization(store, tenant)
        device_id = _require_known_device(store, tenant["tenant_id"], device_id)
        store.set_device_decision(tenant["tenant_id"], device_id, "create", None)
        store.audit(tenant["tenant_id"], "approve_device", device_id=device_id)
        return {**_named(tenant), "device_id": device_id, "device": store.device_name(tenant["tenant_id"], device_id)}


def _require_known_device(store: DecisionReads, tenant_id: str, device_id: str) -> str:
    """The device's id as the store keeps it (lower case), when it is held or linked in the tenant."""
    key = device_id.strip().lower()
    if not store.knows_device(tenant_id, key):
        raise DecisionError(f"device {terminal_text(device_id)[:40]} is neither held nor linked in this tenant: see "
                            "`glue-pipeline match held-devices` for the devices waiting for a decision")
    return key


def _matched_organization(store: DecisionReads, tenant: Row) -> int:
    match = store.match(tenant["tenant_id"])
    if match is None or match["status"] != "matched":
        raise DecisionError(f"tenant '{tenant['display_name']}' is not matched to an organization yet: "
                            "record its organization match first")
    return int(match["organization_id"])


def _require_known_user(store: DecisionReads, tenant_id: str, user_id: str) -> None:
    if not store.knows_user(tenant_id, user_id):
        raise DecisionError(f"user {user_id} is neither held nor linked in this tenant: see "
                            "`glue-pipeline match held` for the users waiting for a decision")


def apply_decision(engine: Engine, action: str, tenant: str, organization: str | None = None,
                   rank: int = 1, user_id: str | None = None, contact_id: int | None = None,
                   force: bool = False, by: str | None = None, device_id: str | None = None,
                   configuration_id: int | None = None) -> Decided:
    """One entry point for every decision (the Dagster job and scripts use it)."""
    def need(value: T | None, name: str) -> T:
        if value in (None, ""):
            raise DecisionError(f"action '{action}' needs {name}")
        return value

    if action == "accept":
        return accept_suggestion(engine, tenant, rank, by)
    if action == "match":
        return match_tenant(engine, tenant, need(organization, "organization"), by)
    if action == "ignore":
        return ignore_tenant(engine, tenant, by)
    if action == "unignore":
        return unignore_tenant(engine, tenant, by)
    if action == "create_organization":
        return create_organization(engine, tenant, by, force)
    if action == "link_user":
        return link_user(engine, tenant, str(need(user_id, "user_id")), int(need(contact_id, "contact_id")), by)
    if action == "approve_create":
        return approve_create(engine, tenant, str(need(user_id, "user_id")), by)
    if action == "link_device":
        return link_device(engine, tenant, str(need(device_id, "device_id")),
                           int(need(configuration_id, "configuration_id")), by)
    if action == "approve_device":
        return approve_device(engine, tenant, str(need(device_id, "device_id")), by)
    raise DecisionError(f"unknown action '{action}': use one of {', '.join(ACTIONS)}")


# ---------------------------------------------------------------------------- in words


def decision_text(action: str, decided: Decided, then: str | None = None) -> str:
    """What a recorded decision did and what the tenant's next sync does with it, in words, then
    `then` (how that sync comes about) where a sync applies it: one line, names made safe."""
    tenant = decided["tenant"] or decided["tenant_id"]
    org = f"organization {decided.get('organization')} (id {decided.get('organization_id')})"
    user = f"user {decided.get('user') or decided.get('user_id')} (id {decided.get('user_id')})"
    device = f"device {decided.get('device') or decided.get('device_id')} (id {decided.get('device_id')})"
    done = {
        "accept": f"matched to {org}, accepting suggestion {decided.get('rank')} (score {decided.get('score')})",
        "match": f"matched to {org}",
        "create_organization": f"{org} created, and the tenant matched to it",
        "ignore": "ignored: no sync matches it or writes its users any more, until it is unignored",
        "unignore": "no longer ignored",
        "link_user": f"{user} linked to contact {decided.get('contact') or '(no name)'} "
                     f"(id {decided.get('contact_id')})",
        "approve_create": f"{user} approved for a new contact, although it looks like an existing one",
        "link_device": f"{device} linked to configuration {decided.get('configuration') or '(no name)'} "
                       f"(id {decided.get('configuration_id')})",
        "approve_device": f"{device} approved for a new configuration, although it looks like an existing one",
    }[action]
    effect = NEXT_SYNC.get(action)
    text = f"{tenant}: {done}."
    if effect:
        text += f" The next sync of the tenant {effect}" + (f"; {then}." if then else ".")
    return terminal_text(text)


# What the tenant's next sync does with a decision; ignoring needs no sync.
NEXT_SYNC = {
    "accept": "writes its contacts into that organization",
    "match": "writes its contacts into that organization",
    "create_organization": "writes its contacts into that organization",
    "unignore": "matches it by name or suggests organizations again",
    "link_user": "writes the user into that contact",
    "approve_create": "creates that contact",
    "link_device": "writes the device into that configuration",
    "approve_device": "creates that configuration",
}


# ---------------------------------------------------------------------------- a tenant's review


@dataclass(frozen=True)
class HeldUser:
    """A user the tenant's last sync held for a decision, with its candidate contacts (id, name),
    the likeliest first."""

    user_id: str
    user_principal_name: str
    reason: str
    candidates: list[tuple[int, str]]


@dataclass(frozen=True)
class TenantReview:
    """What is open for a tenant: its match (None before its first sync) with the matched
    organization's name, its suggestions best first, its held users."""

    tenant_id: str
    name: str  # the tenant's display name, else its id
    match: Row | None
    organization: str | None
    suggestions: list[Row]
    held: list[HeldUser]

    @property
    def status(self) -> MatchStatus | None:
        return self.match["status"] if self.match else None


def _candidate_ids(held: Row) -> list[int]:
    return [int(c) for c in (held["candidate_contact_ids"] or "").split(",") if c.strip()]


def _held_users(store: DecisionReads, tenant_id: str) -> list[HeldUser]:
    rows = store.held_users(tenant_id)
    names = store.contact_names({c for row in rows for c in _candidate_ids(row)})
    return [HeldUser(row["user_id"], row["user_principal_name"], row["reason"],
                     [(c, names.get(c, "")) for c in _candidate_ids(row)]) for row in rows]


def _tenant_of(store: DecisionReads, key: str) -> str:
    """The id of the tenant a `tenants` partition stands for."""
    tenant_id = store.tenant_of_partition(key)
    if tenant_id is None:
        raise DecisionError(f"no tenant of the store has the partition '{key}': run discover_tenants, "
                            "then pick the tenant's partition again")
    return tenant_id


def review_of_partition(engine: Engine, key: str) -> TenantReview:
    """The review of the tenant a `tenants` partition stands for, read fresh from the store."""
    with reading_decisions(engine) as store:
        tenant = resolve_tenant(store, _tenant_of(store, key))
        match = store.match(tenant["tenant_id"])
        org = store.organization(match["organization_id"]) if match and match["organization_id"] else None
        return TenantReview(tenant["tenant_id"], tenant["display_name"] or tenant["tenant_id"], match,
                            org["name"] if org else None, store.suggestions(tenant["tenant_id"]),
                            _held_users(store, tenant["tenant_id"]))


def partition_tenant(engine: Engine, key: str) -> str:
    """The id of the tenant a `tenants` partition stands for, read fresh from the store."""
    with reading_decisions(engine) as store:
        return _tenant_of(store, key)


# ---------------------------------------------------------------------------- the auto-accept policy

@dataclass(frozen=True)
class PolicyAcceptance:
    """A tenant's best suggestion, accepted by the policy because it scores at least `at`."""

    organization_id: int
    organization_name: str
    score: int
    reasons: str
    at: int

    def match(self, tenant: OrgMatch) -> OrgMatch:
        """The tenant's match once the suggestion is accepted."""
        return OrgMatch(tenant.tenant_id, tenant.tenant_name, "matched", self.organization_id, "accepted",
                        f"suggestion 1 accepted by policy: {self.organization_name} (id {self.organization_id}, "
                        f"score {self.score} >= accept_suggestions_at {self.at}: {self.reasons})")

    @property
    def note(self) -> str:
        """The audit row's note."""
        return f"suggestion 1 (score {self.score}) by accept_suggestions_at {self.at}: {self.reasons}"


def policy_acceptance(match: OrgMatch, suggestions: pd.DataFrame, accept_at: int | None) -> PolicyAcceptance | None:
    """The suggestion the policy accepts for a suggested tenant (`suggestions` best first): its
    best, when it scores at least `accept_at` (the score as the store keeps it, rounded). A
    conflict (the organization is another tenant's) always waits for an analyst."""
    if accept_at is None or match.status != "suggested" or not len(suggestions):
        return None
    best = suggestions.iloc[0]
    score = round(float(best["score"]))
    if score < accept_at:
        return None
    return PolicyAcceptance(int(best["organization_id"]), str(best["organization_name"]), score,
                            str(best["reasons"]), accept_at)
