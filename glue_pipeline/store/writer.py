"""Reads and writes of one tenant's data inside one transaction.

Every write is keyed so that a re-run converges: tenants by tenant id, matches by tenant id,
licenses by (tenant, SKU), contacts through their Microsoft link (tenant, user id), which a
unique constraint makes one-to-one. Contacts are created and updated, never deleted.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, SupportsInt

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Table, and_, bindparam, delete, func, insert, select, update

from glue_pipeline import frames
from glue_pipeline.columns import (
    CLAIM_COLUMNS,
    CONTACT_EMAIL_COLUMNS,
    DECISION_COLUMNS,
    FOREIGN_COLUMNS,
    LINKED_COLUMNS,
    ORG_CONTACT_COLUMNS,
    ORGANIZATION_COLUMNS,
    ORGANIZATION_DOMAIN_COLUMNS,
)
from glue_pipeline.mapping import ContactFields, Overlay
from glue_pipeline.matching.organizations import OrgMatch
from glue_pipeline.plan import ContactWrite
from glue_pipeline.store.differences import DifferenceRow, close_differences, record_differences
from glue_pipeline.store.rows import Row, first_row
from glue_pipeline.store.schema import (
    contact_decisions,
    contact_emails,
    contact_microsoft,
    contact_phones,
    contacts,
    held_users,
    licenses,
    organizations,
    sync_log,
    tenant_matches,
    tenant_suggestions,
    tenant_sync_state,
    tenants,
)
from glue_pipeline.vocabulary import LogAction, LogLevel

OVERLAY_COMPARED = [c.name for c in contact_microsoft.columns if c.name != "contact_id"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class LogEntry:
    level: LogLevel
    action: LogAction
    message: str
    contact_id: int | None = None
    user_id: str | None = None
    configuration_id: int | None = None
    device_id: str | None = None


@dataclass
class ContactCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    held: int = 0
    skipped: int = 0
    removed: int = 0
    log: list[LogEntry] = field(default_factory=list)
    differences: list[DifferenceRow] = field(default_factory=list)
    created_ids: dict[str, int] = field(default_factory=dict)  # user id -> the contact created for it


def lock_tenant(conn: Connection, key: str) -> None:
    """Serialise writers of one tenant (or of discovery, key "discovery"). SQLite's BEGIN
    IMMEDIATE already serialises all writers; on PostgreSQL a transaction-scoped advisory lock
    on the key does it."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(zlib.crc32(key.encode()))))


def read_organizations(conn: Connection) -> pd.DataFrame:
    rows = conn.execute(select(organizations.c.id, organizations.c.name)).all()
    return pd.DataFrame(rows, columns=ORGANIZATION_COLUMNS)


TENANT_DETAILS = ("display_name", "default_domain", "initial_domain", "relationship", "data_source",
                  "manage_url", "street", "city", "state", "postal_code", "country", "phone",
                  "verified_domains", "reports_concealed")


def read_tenant_names(conn: Connection) -> dict[str, str | None]:
    """Every known tenant's display name, by tenant id."""
    return {r.tenant_id: r.display_name for r in conn.execute(select(tenants.c.tenant_id, tenants.c.display_name))}


def read_tenant(conn: Connection, tenant_id: str) -> Row | None:
    return first_row(conn, select(tenants).where(tenants.c.tenant_id == tenant_id))


def upsert_tenant(conn: Connection, row: Row, now: datetime) -> None:
    values = {k: row[k] for k in TENANT_DETAILS if k in row}
    done = conn.execute(update(tenants).where(tenants.c.tenant_id == row["tenant_id"])
                        .values(**values, last_seen_at=now, vanished_at=None)).rowcount
    if not done:
        conn.execute(insert(tenants).values(tenant_id=row["tenant_id"], **values, first_seen_at=now,
                                            last_seen_at=now))


def read_recorded_match(conn: Connection, tenant_id: str) -> Row | None:
    return first_row(conn, select(tenant_matches).where(tenant_matches.c.tenant_id == tenant_id))


def record_match(conn: Connection, match: OrgMatch, recorded: Row | None, now: datetime) -> None:
    """Store the rule's result; a decision already recorded is left as it is."""
    values = {"organization_id": match.organization_id, "status": match.status, "method": match.method}
    if recorded is None:
        conn.execute(insert(tenant_matches).values(tenant_id=match.tenant_id, **values, updated_at=now))
    elif any(recorded.get(k) != v for k, v in values.items()):
        conn.execute(update(tenant_matches).where(tenant_matches.c.tenant_id == match.tenant_id)
                     .values(**values, updated_at=now))


def replace_licenses(conn: Connection, tenant_id: str, organization_id: int | None,
                     frame: pd.DataFrame) -> None:
    """The tenant's license table mirrors Microsoft: rows are rewritten only when they differ
    (deleted and inserted again, in two statements whatever their number)."""
    wanted = {r["sku_id"]: {**r, "tenant_id": tenant_id, "organization_id": organization_id}
              for r in frames.records(frame)}
    current = {r.sku_id: dict(r._mapping) for r in
               conn.execute(select(licenses).where(licenses.c.tenant_id == tenant_id))}
    fresh = [row for sku_id, row in wanted.items()
             if sku_id not in current or any(current[sku_id].get(k) != v for k, v in row.items())]
    stale = (set(current) - set(wanted)) | {row["sku_id"] for row in fresh if row["sku_id"] in current}
    if stale:
        conn.execute(delete(licenses).where(and_(licenses.c.tenant_id == tenant_id,
                                                 licenses.c.sku_id.in_(stale))))
    if fresh:
        conn.execute(insert(licenses), fresh)


@dataclass
class ContactIndex:
    """What matching reads of an organization's contacts, for one tenant."""

    emails: pd.DataFrame  # contact_id, value: every email (a null value for a contact without one)
    linked: pd.DataFrame  # LINKED_COLUMNS: contacts linked to this tenant's users
    foreign: pd.DataFrame  # contact_id, tenant_id, tenant_name: contacts linked to other tenants' users


def read_contact_index(conn: Connection, organization_id: int, tenant_id: str) -> ContactIndex:
    emails = conn.execute(
        select(contacts.c.id, contact_emails.c.value)
        .join(contact_emails, contacts.c.id == contact_emails.c.contact_id, isouter=True)
        .where(contacts.c.organization_id == organization_id)).all()
    linked = conn.execute(
        select(contact_microsoft.c.contact_id, contact_microsoft.c.user_id,
               (contacts.c.organization_id == organization_id).label("in_organization"), contacts.c.created_by)
        .join(contacts, contacts.c.id == contact_microsoft.c.contact_id)
        .where(contact_microsoft.c.tenant_id == tenant_id)).all()
    foreign = conn.execute(
        select(contact_microsoft.c.contact_id, contact_microsoft.c.tenant_id, tenants.c.display_name)
        .join(contacts, contacts.c.id == contact_microsoft.c.contact_id)
        .join(tenants, tenants.c.tenant_id == contact_microsoft.c.tenant_id, isouter=True)
        .where(contacts.c.organization_id == organization_id,
               contact_microsoft.c.tenant_id != tenant_id)).all()
    return ContactIndex(pd.DataFrame(emails, columns=CONTACT_EMAIL_COLUMNS),
                        pd.DataFrame(linked, columns=LINKED_COLUMNS),
                        pd.DataFrame(foreign, columns=FOREIGN_COLUMNS))


def read_claims(conn: Connection, tenant_id: str, organization_id: int | None = None) -> pd.DataFrame:
    """organization_id, tenant_id, tenant_name: the other tenants matched to an organization
    (to `organization_id`, when given)."""
    query = (select(tenant_matches.c.organization_id, tenant_matches.c.tenant_id, tenants.c.display_name)
             .join(tenants, tenants.c.tenant_id == tenant_matches.c.tenant_id, isouter=True)
             .where(tenant_matches.c.status == "matched", tenant_matches.c.tenant_id != tenant_id))
    if organization_id is not None:
        query = query.where(tenant_matches.c.organization_id == organization_id)
    query = query.order_by(tenant_matches.c.organization_id, tenant_matches.c.tenant_id)
    return pd.DataFrame(conn.execute(query).all(), columns=CLAIM_COLUMNS)


def _rows_by_contact(conn: Connection, table: Table, contact_ids: list[int]) -> dict[int, list[Row]]:
    out: dict[int, list[Row]] = {}
    for start in range(0, len(contact_ids), 500):
        chunk = contact_ids[start:start + 500]
        for row in conn.execute(select(table).where(table.c.contact_id.in_(chunk))):
            out.setdefault(row.contact_id, []).append(dict(row._mapping))
    return out


def apply_contacts(conn: Connection, organization_id: int, writes: list[ContactWrite],
                   now: datetime, run_id: str) -> ContactCounts:
    """Create, link and update the plan's contacts; what was written (the writes are not
    changed: the ids of created contacts are in `created_ids`)."""
    counts = ContactCounts()
    create = [w for w in writes if w.contact_id is None]
    existing = [w for w in writes if w.contact_id is not None]
    _create_contacts(conn, organization_id, create, now, counts)
    _release_moved_links(conn, [w for w in existing if w.decided], counts)
    _update_contacts(conn, existing, now, run_id, counts)
    return counts


def _release_moved_links(conn: Connection, writes: list[ContactWrite], counts: ContactCounts) -> None:
    """A user an analyst linked to another contact leaves its old one (a user has one link)."""
    for write in writes:
        tenant_id = write.overlay["tenant_id"]
        old = conn.execute(select(contact_microsoft.c.contact_id).where(
            contact_microsoft.c.tenant_id == tenant_id, contact_microsoft.c.user_id == write.user_id,
            contact_microsoft.c.contact_id != write.contact_id)).scalars().all()
        if old:
            conn.execute(delete(contact_microsoft).where(contact_microsoft.c.contact_id.in_(old)))
            counts.log += [LogEntry("info", "contact_unlinked", f"the user was linked to contact {write.contact_id} "
                                    "by an analyst's decision; this contact is kept without its link", cid,
                                    write.user_id) for cid in old]


def _create_contacts(conn: Connection, organization_id: int, writes: list[ContactWrite],
                     now: datetime, counts: ContactCounts) -> None:
    if not writes:
        return
    rows = [{"organization_id": organization_id, **w.fields.scalar_fields(), "created_by": "microsoft",
             "created_at": now, "updated_at": now} for w in writes]
    ids = conn.execute(insert(contacts).returning(contacts.c.id, sort_by_parameter_order=True),
                       rows).scalars().all()
    emails: list[Row] = []
    phones: list[Row] = []
    overlays: list[Row] = []
    for contact_id, write in zip(ids, writes, strict=True):
        counts.created_ids[write.user_id] = contact_id
        emails += [{"contact_id": contact_id, "value": v, "label": label, "is_primary": primary}
                   for v, label, primary in _email_rows(write.fields)]
        phones += [{"contact_id": contact_id, "value": v, "label": label, "is_primary": i == 0}
                   for i, (label, v) in enumerate(write.fields.phones)]
        overlays.append({"contact_id": contact_id, **write.overlay})
        counts.created += 1
        counts.log.append(LogEntry("info", "contact_created",
                                   f"created contact for {write.fields.primary_email}",
                                   contact_id, write.user_id))
    for table, batch in ((contact_emails, emails), (contact_phones, phones),
                         (contact_microsoft, overlays)):
        if batch:
            conn.execute(insert(table), batch)


def _email_rows(fields: ContactFields) -> Iterable[tuple[str, str, bool]]:
    yield fields.primary_email, "Work", True
    for alias in fields.aliases:
        yield alias, "Alias", False


class BulkWrites:
    """Inserts and updates collected per statement shape and sent as one executemany each, so
    a tenant's writes cost a handful of round trips, not one per row."""

    def __init__(self) -> None:
        # (table, columns) and (table, key, columns) -> the rows of one statement
        self._inserts: dict[tuple[Table, tuple[str, ...]], list[Row]] = defaultdict(list)
        self._updates: dict[tuple[Table, str, tuple[str, ...]], list[Row]] = defaultdict(list)

    def insert(self, table: Table, row: Row) -> None:
        self._inserts[(table, tuple(sorted(row)))].append(row)

    def update(self, table: Table, key: str, key_value: object, values: Row) -> None:
        self._updates[(table, key, tuple(sorted(values)))].append(
            {"k_": key_value, **{f"v_{name}": value for name, value in values.items()}})

    def flush(self, conn: Connection) -> None:
        for (table, _columns), rows in self._inserts.items():
            conn.execute(insert(table), rows)
        for (table, key, columns), rows in self._updates.items():
            statement = (update(table).where(table.c[key] == bindparam("k_"))
                         .values({name: bindparam(f"v_{name}") for name in columns}))
            conn.execute(statement, rows)


def _update_contacts(conn: Connection, writes: list[ContactWrite], now: datetime, run_id: str,
                     counts: ContactCounts) -> None:
    if not writes:
        return
    # apply_contacts passes only writes to existing contacts: each has its id.
    existing = [(w.contact_id, w) for w in writes if w.contact_id is not None]
    ids = [cid for cid, _ in existing]
    current = {r.id: dict(r._mapping) for r in
               conn.execute(select(contacts).where(contacts.c.id.in_(ids)))}
    emails = _rows_by_contact(conn, contact_emails, ids)
    phones = _rows_by_contact(conn, contact_phones, ids)
    overlays = {rows[0]["contact_id"]: rows[0]
                for rows in _rows_by_contact(conn, contact_microsoft, ids).values()}
    bulk = BulkWrites()
    compared: list[tuple[int, ContactWrite]] = []
    for cid, write in existing:
        if _owned_by_another(overlays.get(cid), write):
            counts.held += 1
            counts.log.append(LogEntry("error", "contact_held", f"contact {cid} is linked to another "
                                       "Microsoft user; it was not changed", cid, write.user_id))
            continue
        compared.append((cid, write))
        diffs = _update_scalars(bulk, cid, current[cid], write.fields)
        diffs += _sync_emails(bulk, cid, emails.get(cid, []), write.fields)
        diffs += _sync_phones(bulk, cid, phones.get(cid, []), write.fields)
        diffs += _sync_overlay(bulk, cid, overlays.get(cid), write.overlay)
        if diffs:
            bulk.update(contacts, "id", cid, {"updated_at": now})
            counts.updated += 1
            fields = sorted({d.field for d in diffs})
            counts.log.append(LogEntry("info", "contact_updated", f"updated {', '.join(fields)}",
                                       cid, write.user_id))
            counts.differences += [d.row(cid, write.user_id) for d in diffs]
        else:
            counts.unchanged += 1
    bulk.flush(conn)
    record_differences(conn, run_id, compared, counts.differences, now)


def _owned_by_another(overlay: Row | None, write: ContactWrite) -> bool:
    """The contact follows another Microsoft user (of any tenant), and no analyst's decision
    moves it: the last guard of tenant isolation, after matching."""
    if overlay is None or write.decided:
        return False
    return (overlay["tenant_id"], overlay["user_id"]) != (write.overlay["tenant_id"], write.user_id)


@dataclass(frozen=True)
class Difference:
    """A field where the store and Microsoft differed before the sync wrote Microsoft's value."""

    field: str
    store_value: object
    microsoft_value: object

    def row(self, contact_id: int, user_id: str) -> DifferenceRow:
        return {"contact_id": contact_id, "user_id": user_id, "field": self.field,
                "store_value": _text(self.store_value), "microsoft_value": _text(self.microsoft_value)}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _update_scalars(bulk: BulkWrites, cid: int, current: Row, fields: ContactFields) -> list[Difference]:
    # A value Microsoft leaves empty does not erase what the store holds.
    values = {k: v for k, v in fields.scalar_fields().items() if v is not None and current.get(k) != v}
    if values:
        bulk.update(contacts, "id", cid, values)
    return [Difference(k, current.get(k), v) for k, v in values.items()]


def _sync_emails(bulk: BulkWrites, cid: int, current: list[Row],
                 fields: ContactFields) -> list[Difference]:
    """Microsoft's addresses are added, the mapped primary email becomes primary; no address is removed."""
    by_value = {row["value"].lower(): row for row in current}
    diffs: list[Difference] = []
    old_primary = next((row["value"] for row in current if row["is_primary"]), None)
    primary_value = fields.primary_email.lower()
    for value, label, primary in _email_rows(fields):
        row = by_value.get(value.lower())
        if row is None:
            bulk.insert(contact_emails, {"contact_id": cid, "value": value, "label": label,
                                         "is_primary": primary})
            by_value[value.lower()] = {"value": value, "is_primary": primary}
            if not primary:
                diffs.append(Difference("email", None, value))
        elif primary and not row["is_primary"]:
            bulk.update(contact_emails, "id", row["id"], {"is_primary": True})
    for row in current:
        if row["is_primary"] and row["value"].lower() != primary_value:
            bulk.update(contact_emails, "id", row["id"], {"is_primary": False})
    if (old_primary or "").lower() != primary_value:
        diffs.append(Difference("primary email", old_primary, fields.primary_email))
    return diffs


def _sync_phones(bulk: BulkWrites, cid: int, current: list[Row],
                 fields: ContactFields) -> list[Difference]:
    """One phone per mapped label (Work, Mobile) follows Microsoft; other phones stay."""
    by_label = {row["label"]: row for row in current}
    diffs: list[Difference] = []
    for label, value in fields.phones:
        row = by_label.get(label)
        if row is None:
            bulk.insert(contact_phones, {"contact_id": cid, "value": value, "label": label,
                                         "is_primary": not current and not diffs})
            diffs.append(Difference(f"{label.lower()} phone", None, value))
        elif row["value"] != value:
            bulk.update(contact_phones, "id", row["id"], {"value": value})
            diffs.append(Difference(f"{label.lower()} phone", row["value"], value))
    return diffs


def _sync_overlay(bulk: BulkWrites, cid: int, current: Row | None, overlay: Overlay) -> list[Difference]:
    if current is None:
        bulk.insert(contact_microsoft, {"contact_id": cid, **overlay})
        return [Difference("microsoft link", None, overlay["user_principal_name"])]
    diff = {k: v for k, v in overlay.items() if current.get(k) != v}
    if diff:
        bulk.update(contact_microsoft, "contact_id", cid, diff)
    return [Difference(f"microsoft {k}", current.get(k), v) for k, v in diff.items()]


def mark_removed_users(conn: Connection, tenant_id: str, present_user_ids: set[str],
                       counts: ContactCounts) -> None:
    """Users gone from Microsoft keep their contact; the overlay says so."""
    rows = conn.execute(select(contact_microsoft.c.contact_id, contact_microsoft.c.user_id,
                               contact_microsoft.c.user_principal_name)
                        .where(and_(contact_microsoft.c.tenant_id == tenant_id,
                                    contact_microsoft.c.status != "removed"))).all()
    gone = [row for row in rows if row.user_id not in present_user_ids]
    if gone:
        conn.execute(update(contact_microsoft).where(contact_microsoft.c.contact_id.in_([r.contact_id for r in gone]))
                     .values(status="removed"))
        close_differences(conn, tenant_id, [r.contact_id for r in gone])
    counts.removed += len(gone)
    counts.log += [LogEntry("warning", "user_removed", f"{row.user_principal_name} no longer exists in "
                            "Microsoft; the contact is kept", row.contact_id, row.user_id) for row in gone]


def write_log(conn: Connection, run_id: str, tenant_id: str | None, entries: list[LogEntry],
              now: datetime) -> None:
    if entries:
        conn.execute(insert(sync_log), [
            {"run_id": run_id, "tenant_id": tenant_id, "at": now, "level": e.level, "action": e.action,
             "contact_id": e.contact_id, "user_id": e.user_id, "configuration_id": e.configuration_id,
             "device_id": e.device_id, "message": e.message} for e in entries])


# The columns of `tenants` that discovery writes from its frame, besides the key (the name and
# the domain only where the tenant has none yet).
DISCOVERED_FIELDS = ("relationship", "data_source", "display_name", "default_domain")


def record_discovered_tenants(conn: Connection, frame: pd.DataFrame, now: datetime) -> list[str]:
    """Upsert the tenants discovery found; mark the ones no longer listed as vanished.

    Returns the ids of tenants that vanished in this discovery.
    """
    lock_tenant(conn, "discovery")  # two discoveries at once would both insert a new tenant
    rows = [{k: None if pd.isna(v) else v for k, v in row.items()} for row in frames.records(frame)]
    if rows:
        # Update first, then insert the tenants not there yet: the first statement writes, so on
        # SQLite a concurrent discovery waits for the lock rather than failing to upgrade a read.
        # The partner's copies of name and domain only fill a gap (coalesce): once synced, the
        # tenant's own organization details are authoritative (a direct-login source knows neither).
        conn.execute(update(tenants).where(tenants.c.tenant_id == bindparam("k_")).values(
            relationship=bindparam("v_relationship"), data_source=bindparam("v_data_source"),
            display_name=func.coalesce(tenants.c.display_name,
                                       bindparam("v_display_name", type_=tenants.c.display_name.type)),
            default_domain=func.coalesce(tenants.c.default_domain,
                                         bindparam("v_default_domain", type_=tenants.c.default_domain.type)),
            last_seen_at=now, vanished_at=None),
            [{"k_": r["tenant_id"], **{f"v_{k}": r.get(k) for k in DISCOVERED_FIELDS}} for r in rows])
        known = set(conn.execute(select(tenants.c.tenant_id)
                                 .where(tenants.c.tenant_id.in_([r["tenant_id"] for r in rows]))).scalars())
        new = [{"tenant_id": r["tenant_id"], "first_seen_at": now, "last_seen_at": now,
                **{k: r.get(k) for k in DISCOVERED_FIELDS}} for r in rows if r["tenant_id"] not in known]
        if new:
            conn.execute(insert(tenants), new)
    listed = set(frame["tenant_id"])
    vanished = [r.tenant_id for r in conn.execute(
        select(tenants.c.tenant_id).where(tenants.c.vanished_at.is_(None))) if r.tenant_id not in listed]
    if vanished:
        conn.execute(update(tenants).where(tenants.c.tenant_id.in_(vanished)).values(vanished_at=now))
    return vanished


def vanished_tenants(conn: Connection, tenant_ids: list[str]) -> set[str]:
    """Of these tenants, the ones the last discovery no longer found."""
    rows = conn.execute(select(tenants.c.tenant_id).where(tenants.c.vanished_at.is_not(None)))
    return {r.tenant_id for r in rows} & set(tenant_ids)


def paused_tenants(conn: Connection, tenant_ids: list[str]) -> dict[str, str | None]:
    """Of these tenants, the ones an operator paused (not synced until resumed): id -> display name."""
    rows = conn.execute(select(tenants.c.tenant_id, tenants.c.display_name).where(tenants.c.paused_at.is_not(None)))
    wanted = set(tenant_ids)
    return {r.tenant_id: r.display_name for r in rows if r.tenant_id in wanted}


def read_organization_domains(conn: Connection) -> pd.DataFrame:
    """organization_id, domain, contacts: how many of each organization's contacts use a domain
    (aggregated by the database, so a large store is not read row by row)."""
    value = func.lower(contact_emails.c.value)
    if conn.dialect.name == "postgresql":
        domain = func.split_part(value, "@", 2)
    else:
        domain = func.substr(value, func.instr(value, "@") + 1)
    rows = conn.execute(select(contacts.c.organization_id, domain.label("domain"),
                               func.count(func.distinct(contacts.c.id)).label("contacts"))
                        .join(contact_emails, contact_emails.c.contact_id == contacts.c.id)
                        .group_by(contacts.c.organization_id, domain)).all()
    return pd.DataFrame(rows, columns=ORGANIZATION_DOMAIN_COLUMNS)


def read_contact_decisions(conn: Connection, tenant_id: str) -> pd.DataFrame:
    rows = conn.execute(select(contact_decisions.c.user_id, contact_decisions.c.action,
                               contact_decisions.c.contact_id)
                        .where(contact_decisions.c.tenant_id == tenant_id)).all()
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)


class _Suggestion(NamedTuple):
    """A row of a plan's suggestions (rank, organization_id, organization_name, score, reasons)."""

    rank: SupportsInt
    organization_id: SupportsInt
    organization_name: str
    score: float
    reasons: str


def replace_suggestions(conn: Connection, tenant_id: str, suggestions: pd.DataFrame) -> None:
    """The tenant's current suggestions, best first (none once it is matched or ignored)."""
    current = conn.execute(select(tenant_suggestions.c.rank, tenant_suggestions.c.organization_id,
                                  tenant_suggestions.c.score, tenant_suggestions.c.reasons)
                           .where(tenant_suggestions.c.tenant_id == tenant_id)
                           .order_by(tenant_suggestions.c.rank)).all()
    rows = [{"tenant_id": tenant_id, "rank": int(r.rank), "organization_id": int(r.organization_id),
             "organization_name": r.organization_name, "score": round(r.score),
             "reasons": r.reasons} for r in frames.rows(suggestions, _Suggestion)]
    if [tuple(c) for c in current] == [(r["rank"], r["organization_id"], r["score"], r["reasons"])
                                       for r in rows]:
        return
    conn.execute(delete(tenant_suggestions).where(tenant_suggestions.c.tenant_id == tenant_id))
    if rows:
        conn.execute(insert(tenant_suggestions), rows)


def replace_held_users(conn: Connection, tenant_id: str, rows: list[dict[str, str | None]], now: datetime,
                       users: Collection[str] | None = None) -> None:
    """The users the tenant's latest sync held back, with the reason: all its users', or only
    those of `users` (the users a sync planned again)."""
    scope = held_users.c.tenant_id == tenant_id
    if users is not None:
        scope = scope & held_users.c.user_id.in_(list(users))
    current = {r.user_id: (r.reason, r.candidate_contact_ids) for r in conn.execute(select(held_users).where(scope))}
    wanted = {r["user_id"]: (r["reason"], r.get("candidate_contact_ids")) for r in rows}
    if current == wanted:
        return
    conn.execute(delete(held_users).where(scope))
    if rows:
        conn.execute(insert(held_users), [{"tenant_id": tenant_id, "updated_at": now, **r} for r in rows])


def read_org_contacts(conn: Connection, organization_id: int) -> pd.DataFrame:
    """contact_id, first_name, last_name, emails (list), phones (list) of an organization."""
    people = conn.execute(select(contacts.c.id, contacts.c.first_name, contacts.c.last_name)
                          .where(contacts.c.organization_id == organization_id)).all()
    frame = pd.DataFrame(people, columns=ORG_CONTACT_COLUMNS[:3])
    for table, column in ((contact_emails, "emails"), (contact_phones, "phones")):
        values = conn.execute(select(table.c.contact_id, table.c.value)
                              .join(contacts, contacts.c.id == table.c.contact_id)
                              .where(contacts.c.organization_id == organization_id)).all()
        grouped: dict[int, list[str]] = {}
        for contact_id, value in values:
            grouped.setdefault(contact_id, []).append(value)
        frame[column] = [grouped.get(c, []) for c in frame["contact_id"]]
    return frame[ORG_CONTACT_COLUMNS]


def read_store_version(conn: Connection, tenant_id: str, organization_id: int | None) -> list[list[str]]:
    """What a tenant's plan reads from the store, summarised: its recorded match, its analysts'
    contact decisions, and its organization's contacts, emails, phones and Microsoft links
    (counts, highest ids, latest edits), or for a tenant without an organization, the other
    tenants matched to the organizations it was suggested. Any edit there changes it."""
    def summary(key: ColumnElement[bool], *columns: ColumnElement[object]) -> list[str]:
        row = conn.execute(select(func.count(), *[func.max(c) for c in columns]).where(key)).one()
        return [str(v) for v in row]

    match = read_recorded_match(conn, tenant_id) or {}
    version = [[str(match.get(k)) for k in ("organization_id", "status", "method", "updated_at")],
               summary(contact_decisions.c.tenant_id == tenant_id,
                       contact_decisions.c.decided_at),
               summary(contact_microsoft.c.tenant_id == tenant_id,
                       contact_microsoft.c.contact_id)]
    if organization_id is None:
        # Its plan weighs the organizations it was suggested (or held for): whether another
        # tenant is matched to one decides between a suggestion and a conflict.
        suggested = select(tenant_suggestions.c.organization_id).where(tenant_suggestions.c.tenant_id == tenant_id)
        claims = conn.execute(select(tenant_matches.c.tenant_id, tenant_matches.c.organization_id).where(
            tenant_matches.c.status == "matched", tenant_matches.c.tenant_id != tenant_id,
            tenant_matches.c.organization_id.in_(suggested))).all()
        version.append(sorted(f"{t}:{o}" for t, o in claims))
    else:
        in_org = contacts.c.organization_id == organization_id
        version.append(summary(in_org, contacts.c.id, contacts.c.updated_at))
        for table in (contact_emails, contact_phones):
            version.append([str(v) for v in conn.execute(
                select(func.count(), func.max(table.c.id))
                .join(contacts, contacts.c.id == table.c.contact_id).where(in_org)).one()])
    return version


def read_sync_state(conn: Connection, tenant_id: str) -> Row | None:
    return first_row(conn, select(tenant_sync_state).where(tenant_sync_state.c.tenant_id == tenant_id))


def save_sync_state(conn: Connection, row: Row) -> None:
    forget_sync_state(conn, row["tenant_id"])
    conn.execute(insert(tenant_sync_state).values(**row))


def forget_sync_state(conn: Connection, tenant_id: str) -> None:
    """The next sync of the tenant plans and writes it in full."""
    conn.execute(delete(tenant_sync_state).where(tenant_sync_state.c.tenant_id == tenant_id))
