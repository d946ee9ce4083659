"""Match decisions an analyst records: accept a suggestion, match a tenant to an organization,
ignore or un-ignore a tenant, create an organization from a tenant, link a held user to a
contact, approve creating a held user. Each is one transaction with an audit row in
match_decisions; every later sync honours it."""

from __future__ import annotations

import getpass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, insert, select, update

from glue_pipeline.matching.organizations import normalize_name
from glue_pipeline.matching.suggest import strong_suggestion_threshold as STRONG_SUGGESTION
from glue_pipeline.store.engine import write_transaction
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.schema import (
    contact_decisions,
    contact_microsoft,
    contacts,
    held_users,
    match_decisions,
    organizations,
    tenant_matches,
    tenant_suggestions,
    tenants,
)
from glue_pipeline.store.writer import utcnow

ACTIONS = ("accept", "match", "ignore", "unignore", "create_organization", "link_user", "approve_create")


class DecisionError(ValueError):
    """A decision that cannot be recorded; the message says why and what to do instead."""


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def resolve_tenant(conn: Connection, ref: str) -> dict:
    """A tenant by id, or by display name (case and spaces ignored)."""
    row = conn.execute(select(tenants).where(tenants.c.tenant_id == ref)).first()
    if row:
        return dict(row._mapping)
    wanted = normalize_name(ref)
    found = [dict(r._mapping) for r in conn.execute(select(tenants))
             if normalize_name(r.display_name) == wanted]
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(t["tenant_id"] for t in found)
        raise DecisionError(f"{len(found)} tenants are named '{ref}' ({ids}): give the tenant id")
    raise DecisionError(f"no tenant '{ref}' is known: give a tenant id or name as `glue-pipeline match "
                        "list` shows them (tenants appear after their first sync)")


def resolve_organization(conn: Connection, ref: str | int) -> dict:
    """An organization by id, or by name (case and spaces ignored)."""
    if isinstance(ref, int) or str(ref).isdigit():
        row = conn.execute(select(organizations).where(organizations.c.id == int(ref))).first()
        if row:
            return dict(row._mapping)
        raise DecisionError(f"no organization has id {ref}")
    wanted = normalize_name(str(ref))
    found = [dict(r._mapping) for r in conn.execute(select(organizations))
             if normalize_name(r.name) == wanted]
    if len(found) == 1:
        return found[0]
    if found:
        raise DecisionError(f"{len(found)} organizations are named '{ref}' (ids "
                            f"{', '.join(str(o['id']) for o in found)}): give the organization id")
    raise DecisionError(f"no organization is named '{ref}': give an organization id or an exact name")


def _audit(conn: Connection, tenant_id: str, action: str, by: str, now: datetime, **values: object) -> None:
    conn.execute(insert(match_decisions).values(tenant_id=tenant_id, action=action, decided_by=by,
                                                decided_at=now, **values))


def _set_match(conn: Connection, tenant_id: str, status: str, organization_id: int | None,
               method: str | None, by: str, now: datetime) -> None:
    values = {"status": status, "organization_id": organization_id, "method": method,
              "decided_by": by, "decided_at": now, "updated_at": now}
    if not conn.execute(update(tenant_matches).where(tenant_matches.c.tenant_id == tenant_id)
                        .values(**values)).rowcount:
        conn.execute(insert(tenant_matches).values(tenant_id=tenant_id, **values))


def _begin(engine: Engine):  # type: ignore[no-untyped-def]
    upgrade_store(engine)
    return write_transaction(engine)


def accept_suggestion(engine: Engine, tenant_ref: str, rank: int = 1, by: str | None = None) -> dict:
    """Match the tenant to its suggestion of this rank (1 = best)."""
    by, now = by or default_actor(), utcnow()
    with _begin(engine) as conn:
        tenant = resolve_tenant(conn, tenant_ref)
        row = conn.execute(select(tenant_suggestions).where(
            (tenant_suggestions.c.tenant_id == tenant["tenant_id"]) & (tenant_suggestions.c.rank == rank))).first()
        if row is None:
            raise DecisionError(f"tenant '{tenant['display_name']}' has no suggestion of rank {rank}: see "
                                "`glue-pipeline match list`, or match it with `glue-pipeline match set`")
        _set_match(conn, tenant["tenant_id"], "matched", row.organization_id, "accepted", by, now)
        _audit(conn, tenant["tenant_id"], "accept", by, now, organization_id=row.organization_id,
               note=f"suggestion {rank}: {row.reasons}")
        return {"tenant": tenant["display_name"], "organization_id": row.organization_id,
                "organization": row.organization_name}


def match_tenant(engine: Engine, tenant_ref: str, organization_ref: str | int, by: str | None = None) -> dict:
    """Match (or re-match) the tenant to an organization given by id or name."""
    by, now = by or default_actor(), utcnow()
    with _begin(engine) as conn:
        tenant = resolve_tenant(conn, tenant_ref)
        org = resolve_organization(conn, organization_ref)
        _set_match(conn, tenant["tenant_id"], "matched", org["id"], "manual", by, now)
        _audit(conn, tenant["tenant_id"], "match", by, now, organization_id=org["id"])
        return {"tenant": tenant["display_name"], "organization_id": org["id"], "organization": org["name"]}


def ignore_tenant(engine: Engine, tenant_ref: str, by: str | None = None) -> dict:
    by, now = by or default_actor(), utcnow()
    with _begin(engine) as conn:
        tenant = resolve_tenant(conn, tenant_ref)
        _set_match(conn, tenant["tenant_id"], "ignored", None, "manual", by, now)
        _audit(conn, tenant["tenant_id"], "ignore", by, now)
        return {"tenant": tenant["display_name"]}


def unignore_tenant(engine: Engine, tenant_ref: str, by: str | None = None) -> dict:
    """The tenant goes back to the rules: exact name, then suggestions, at its next sync."""
    by, now = by or default_actor(), utcnow()
    with _begin(engine) as conn:
        tenant = resolve_tenant(conn, tenant_ref)
        _set_match(conn, tenant["tenant_id"], "unmatched", None, None, by, now)
        _audit(conn, tenant["tenant_id"], "unignore", by, now)
        return {"tenant": tenant["display_name"]}


def create_organization(engine: Engine, tenant_ref: str, by: str | None = None, force: bool = False) -> dict:
    """Create an organization named after the tenant and match the tenant to it. Refused while an
    organization has the name or a strong suggestion exists, unless forced."""
    by, now = by or default_actor(), utcnow()
    with _begin(engine) as conn:
        tenant = resolve_tenant(conn, tenant_ref)
        name = tenant["display_name"] or tenant["tenant_id"]
        if not force:
            _refuse_duplicate_organization(conn, tenant, name)
        org_id = conn.execute(insert(organizations).values(name=name, created_at=now, updated_at=now)
                              .returning(organizations.c.id)).scalar_one()
        _set_match(conn, tenant["tenant_id"], "matched", org_id, "created", by, now)
        _audit(conn, tenant["tenant_id"], "create_organization", by, now, organization_id=org_id,
               note="forced" if force else None)
        return {"tenant": name, "organization_id": org_id, "organization": name}


def _refuse_duplicate_organization(conn: Connection, tenant: dict, name: str) -> None:
    same = [r for r in conn.execute(select(organizations.c.id, organizations.c.name))
            if normalize_name(r.name) == normalize_name(name)]
    if same:
        raise DecisionError(f"organization {same[0].id} '{same[0].name}' already has this name: match the "
                            f"tenant to it (`glue-pipeline match set '{name}' {same[0].id}`), or pass "
                            "--force to create a second one")
    strong = conn.execute(select(tenant_suggestions).where(
        (tenant_suggestions.c.tenant_id == tenant["tenant_id"])
        & (tenant_suggestions.c.score >= STRONG_SUGGESTION)).order_by(tenant_suggestions.c.rank)).first()
    if strong:
        raise DecisionError(f"a strong suggestion exists: {strong.organization_name} (id "
                            f"{strong.organization_id}, score {strong.score}: {strong.reasons}); accept it "
                            f"(`glue-pipeline match accept '{name}'`) or pass --force to create a new one")


def link_user(engine: Engine, tenant_ref: str, user_id: str, contact_id: int, by: str | None = None) -> dict:
    """Link a Microsoft user to an existing contact of the tenant's organization."""
    by, now = by or default_actor(), utcnow()
    with _begin(engine) as conn:
        tenant = resolve_tenant(conn, tenant_ref)
        org_id = _matched_organization(conn, tenant)
        contact = conn.execute(select(contacts).where(contacts.c.id == contact_id)).first()
        if contact is None or contact.organization_id != org_id:
            raise DecisionError(f"contact {contact_id} is not a contact of organization {org_id}, the "
                                f"tenant's match: pick one of its contacts")
        _require_known_user(conn, tenant["tenant_id"], user_id)
        _set_contact_decision(conn, tenant["tenant_id"], user_id, "link", contact_id, by, now)
        _audit(conn, tenant["tenant_id"], "link_user", by, now, user_id=user_id, contact_id=contact_id)
        return {"tenant": tenant["display_name"], "user_id": user_id, "contact_id": contact_id}


def approve_create(engine: Engine, tenant_ref: str, user_id: str, by: str | None = None) -> dict:
    """Create a contact for a held user even though it looks like an existing one."""
    by, now = by or default_actor(), utcnow()
    with _begin(engine) as conn:
        tenant = resolve_tenant(conn, tenant_ref)
        _matched_organization(conn, tenant)
        _require_known_user(conn, tenant["tenant_id"], user_id)
        _set_contact_decision(conn, tenant["tenant_id"], user_id, "create", None, by, now)
        _audit(conn, tenant["tenant_id"], "approve_create", by, now, user_id=user_id)
        return {"tenant": tenant["display_name"], "user_id": user_id}


def _matched_organization(conn: Connection, tenant: dict) -> int:
    row = conn.execute(select(tenant_matches).where(tenant_matches.c.tenant_id == tenant["tenant_id"])).first()
    if row is None or row.status != "matched":
        raise DecisionError(f"tenant '{tenant['display_name']}' is not matched to an organization yet: "
                            "record its organization match first")
    return int(row.organization_id)


def _require_known_user(conn: Connection, tenant_id: str, user_id: str) -> None:
    held = conn.execute(select(func.count()).select_from(held_users).where(
        (held_users.c.tenant_id == tenant_id) & (held_users.c.user_id == user_id))).scalar_one()
    linked = conn.execute(select(func.count()).select_from(contact_microsoft).where(
        (contact_microsoft.c.tenant_id == tenant_id) & (contact_microsoft.c.user_id == user_id))).scalar_one()
    if not held and not linked:
        raise DecisionError(f"user {user_id} is neither held nor linked in this tenant: see "
                            "`glue-pipeline match held` for the users waiting for a decision")


def _set_contact_decision(conn: Connection, tenant_id: str, user_id: str, action: str,
                          contact_id: int | None, by: str, now: datetime) -> None:
    values = {"action": action, "contact_id": contact_id, "decided_by": by, "decided_at": now}
    key = (contact_decisions.c.tenant_id == tenant_id) & (contact_decisions.c.user_id == user_id)
    if not conn.execute(update(contact_decisions).where(key).values(**values)).rowcount:
        conn.execute(insert(contact_decisions).values(tenant_id=tenant_id, user_id=user_id, **values))


def apply_decision(engine: Engine, action: str, tenant: str, organization: str | None = None,
                   rank: int = 1, user_id: str | None = None, contact_id: int | None = None,
                   force: bool = False, by: str | None = None) -> dict:
    """One entry point for every decision (the Dagster job and scripts use it)."""
    def need(value: object, name: str) -> object:
        if value in (None, ""):
            raise DecisionError(f"action '{action}' needs {name}")
        return value

    if action == "accept":
        return accept_suggestion(engine, tenant, rank, by)
    if action == "match":
        return match_tenant(engine, tenant, need(organization, "organization"), by)  # type: ignore[arg-type]
    if action == "ignore":
        return ignore_tenant(engine, tenant, by)
    if action == "unignore":
        return unignore_tenant(engine, tenant, by)
    if action == "create_organization":
        return create_organization(engine, tenant, by, force)
    if action == "link_user":
        return link_user(engine, tenant, str(need(user_id, "user_id")), int(need(contact_id, "contact_id")), by)  # type: ignore[arg-type]
    if action == "approve_create":
        return approve_create(engine, tenant, str(need(user_id, "user_id")), by)
    raise DecisionError(f"unknown action '{action}': use one of {', '.join(ACTIONS)}")
