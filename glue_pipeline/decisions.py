"""Match decisions an analyst records: accept a suggestion, match a tenant to an organization,
ignore or un-ignore a tenant, create an organization from a tenant, link a held user to a
contact, approve creating a held user. Each is one transaction with an audit row in
match_decisions; every later sync honours it."""

from __future__ import annotations

import getpass
from contextlib import AbstractContextManager
from typing import NotRequired, TypedDict, TypeVar, get_args

from glue_pipeline.matching.suggest import strong_suggestion_threshold as STRONG_SUGGESTION
from glue_pipeline.store.decisions import DecisionStore, recording_decision
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.rows import Row
from glue_pipeline.vocabulary import DecisionAction

T = TypeVar("T")

ACTIONS: tuple[DecisionAction, ...] = get_args(DecisionAction)


class DecisionError(ValueError):
    """A decision that cannot be recorded; the message says why and what to do instead."""


class Decided(TypedDict):
    """What a recorded decision names, for the operator: the tenant's name, and the organization,
    user or contact the decision is about."""

    tenant: str | None  # None for a tenant discovery saw without a name
    organization_id: NotRequired[int]
    organization: NotRequired[str]
    user_id: NotRequired[str]
    contact_id: NotRequired[int]


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def resolve_tenant(store: DecisionStore, ref: str) -> Row:
    """A tenant by id, or by display name (case and spaces ignored)."""
    tenant = store.tenant(ref)
    if tenant:
        return tenant
    found = store.tenants_named(ref)
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(t["tenant_id"] for t in found)
        raise DecisionError(f"{len(found)} tenants are named '{ref}' ({ids}): give the tenant id")
    raise DecisionError(f"no tenant '{ref}' is known: give a tenant id or name as `glue-pipeline match "
                        "list` shows them (tenants appear after their first sync)")


def resolve_organization(store: DecisionStore, ref: str | int) -> Row:
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
        return {"tenant": tenant["display_name"], "organization_id": suggestion["organization_id"],
                "organization": suggestion["organization_name"]}


def match_tenant(engine: Engine, tenant_ref: str, organization_ref: str | int, by: str | None = None) -> Decided:
    """Match (or re-match) the tenant to an organization given by id or name."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        org = resolve_organization(store, organization_ref)
        store.set_match(tenant["tenant_id"], "matched", org["id"], "manual")
        store.audit(tenant["tenant_id"], "match", organization_id=org["id"])
        return {"tenant": tenant["display_name"], "organization_id": org["id"], "organization": org["name"]}


def ignore_tenant(engine: Engine, tenant_ref: str, by: str | None = None) -> Decided:
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        store.set_match(tenant["tenant_id"], "ignored", None, "manual")
        store.audit(tenant["tenant_id"], "ignore")
        return {"tenant": tenant["display_name"]}


def unignore_tenant(engine: Engine, tenant_ref: str, by: str | None = None) -> Decided:
    """The tenant goes back to the rules: exact name, then suggestions, at its next sync."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        store.set_match(tenant["tenant_id"], "unmatched", None, None)
        store.audit(tenant["tenant_id"], "unignore")
        return {"tenant": tenant["display_name"]}


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
        return {"tenant": name, "organization_id": org_id, "organization": name}


def _refuse_duplicate_organization(store: DecisionStore, tenant: Row, name: str) -> None:
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
        return {"tenant": tenant["display_name"], "user_id": user_id, "contact_id": contact_id}


def approve_create(engine: Engine, tenant_ref: str, user_id: str, by: str | None = None) -> Decided:
    """Create a contact for a held user even though it looks like an existing one."""
    with _recording(engine, by) as store:
        tenant = resolve_tenant(store, tenant_ref)
        _matched_organization(store, tenant)
        _require_known_user(store, tenant["tenant_id"], user_id)
        store.set_contact_decision(tenant["tenant_id"], user_id, "create", None)
        store.audit(tenant["tenant_id"], "approve_create", user_id=user_id)
        return {"tenant": tenant["display_name"], "user_id": user_id}


def _matched_organization(store: DecisionStore, tenant: Row) -> int:
    match = store.match(tenant["tenant_id"])
    if match is None or match["status"] != "matched":
        raise DecisionError(f"tenant '{tenant['display_name']}' is not matched to an organization yet: "
                            "record its organization match first")
    return int(match["organization_id"])


def _require_known_user(store: DecisionStore, tenant_id: str, user_id: str) -> None:
    if not store.knows_user(tenant_id, user_id):
        raise DecisionError(f"user {user_id} is neither held nor linked in this tenant: see "
                            "`glue-pipeline match held` for the users waiting for a decision")


def apply_decision(engine: Engine, action: str, tenant: str, organization: str | None = None,
                   rank: int = 1, user_id: str | None = None, contact_id: int | None = None,
                   force: bool = False, by: str | None = None) -> Decided:
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
    raise DecisionError(f"unknown action '{action}': use one of {', '.join(ACTIONS)}")
