"""Open differences: documented values a sync replaced with Microsoft's, kept until the two agree
again (the table `open_differences`, one row per tenant, contact and field).

The sync still writes Microsoft's value (Microsoft wins for mapped fields); the value it replaced
stays listed here for an analyst, however many syncs later, rather than only in the tables of the
sync that replaced it. The rules:

- What is compared: each contact a sync writes to with its Microsoft user (not one held because
  another tenant's user has it), in each documented field Microsoft gives a value: first_name,
  last_name, title, location, primary email, work phone, mobile phone (named as the writer names
  their differences). A field Microsoft leaves empty is not compared (the sync does not erase the
  store's value). Microsoft's overlay (status, licenses, sign-in, mailbox) and the aliases the
  sync adds are Microsoft's own data, not documentation: never listed.
- The documented value of a compared field is the store's value before the sync wrote, unless the
  store holds just what the sync wrote last time (the open row's microsoft_value): then nobody
  documented anything since, and the row's store_value stands.
- A row is open while the documented value is not empty and differs from Microsoft's value
  (primary emails compared without case, as the writer compares them); otherwise it is closed,
  that is deleted. A field the store left empty, which Microsoft only fills, opens no row.
- So a difference found opens a row: first_seen_at, last_seen_at and run_id are the sync's. A
  later sync that finds Microsoft still holding the value it wrote keeps the row and moves
  last_seen_at and run_id on; if Microsoft moved on to another value, microsoft_value follows;
  if someone documented yet another value, store_value becomes it. first_seen_at is kept. The row
  closes when Microsoft's value returns to the documented one, when someone documents Microsoft's
  value before the sync would (the sync finds the store and Microsoft agreeing on a value it did
  not write), or when someone empties the documented value.
- A row also closes when its contact leaves the tenant: its Microsoft user is removed (by
  writer.mark_removed_users), the contact is no longer linked to one of the tenant's users (an
  analyst linked its user to another contact, or the contact to another tenant's user: closed by
  the tenant's next sync that updates contacts, the one that unlinks it included, and left out of
  the reads before that), or the contact is deleted (its rows go with it: the foreign key
  cascades).
- A sync changes only its own tenant's rows. A tenant not planned again because nothing changed
  reads nothing, so its rows stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypedDict

import pandas as pd
from sqlalchemy import Connection, and_, bindparam, delete, insert, select, update

from glue_pipeline.columns import DIFFERENCE_COLUMNS
from glue_pipeline.mapping import ContactFields
from glue_pipeline.plan import ContactWrite
from glue_pipeline.store.rows import Row, as_utc
from glue_pipeline.store.schema import contact_microsoft, contacts, open_differences


class DifferenceRow(TypedDict):
    """A field where a contact and Microsoft differed, as a sync found it."""

    contact_id: int
    user_id: str
    field: str
    store_value: str | None
    microsoft_value: str | None


_KEY = ("tenant_id", "contact_id", "field")
_CHUNK = 500  # ids per IN list


def documented_values(fields: ContactFields) -> dict[str, str]:
    """Microsoft's value of each documented field a sync compares, by the name the writer gives
    its difference (writer._update_scalars, _sync_emails, _sync_phones)."""
    values = {name: value for name, value in fields.scalar_fields().items() if value is not None}
    values["primary email"] = fields.primary_email
    values.update((f"{label.lower()} phone", value) for label, value in fields.phones)
    return values


def _same(field: str, a: str | None, b: str | None) -> bool:
    if field == "primary email" and a is not None and b is not None:
        return a.lower() == b.lower()
    return a == b


def _documented(row: Row | None, field: str, store_value: str | None) -> str | None:
    """The documented value of a field whose store held `store_value` before the sync wrote."""
    if row is not None and _same(field, store_value, row["microsoft_value"]):
        return str(row["store_value"])  # the store holds the sync's own last write
    return store_value


def record_differences(conn: Connection, run_id: str, compared: list[tuple[int, ContactWrite]],
                       found: Iterable[DifferenceRow], now: datetime) -> None:
    """Open, update and close one tenant's rows after a sync compared these contacts (contact id,
    write) with their Microsoft users and found these differences; closes as well the tenant's
    rows of contacts no longer linked to one of its users. In the sync's write transaction."""
    if not compared:
        return
    tenant_id = str(compared[0][1].overlay["tenant_id"])  # the writes are of one tenant
    table = open_differences
    stored = {(r["contact_id"], r["field"]): r for r in map(dict, conn.execute(
        select(table).where(table.c.tenant_id == tenant_id)).mappings())}
    if stored:
        _close_unlinked(conn, tenant_id)
    before = {(d["contact_id"], d["field"]): d["store_value"] for d in found}
    opened: list[Row] = []
    kept: list[Row] = []
    closed: list[Row] = []
    for contact_id, write in compared:
        for field, microsoft in documented_values(write.fields).items():
            row = stored.get((contact_id, field))
            # No difference found: the store held Microsoft's value.
            documented = _documented(row, field, before.get((contact_id, field), microsoft))
            key = {"k_tenant_id": tenant_id, "k_contact_id": contact_id, "k_field": field}
            if documented is None or _same(field, documented, microsoft):
                if row is not None:
                    closed.append(key)
                continue
            values = {"user_id": write.user_id, "store_value": documented, "microsoft_value": microsoft,
                      "last_seen_at": now, "run_id": run_id}
            if row is None:
                opened.append({"tenant_id": tenant_id, "contact_id": contact_id, "field": field,
                               "first_seen_at": now, **values})
            else:
                kept.append({**key, **{f"v_{name}": value for name, value in values.items()}})
    _write(conn, opened, kept, closed)


def _write(conn: Connection, opened: list[Row], kept: list[Row], closed: list[Row]) -> None:
    """Each kind of change as one executemany."""
    table = open_differences
    where = and_(*(table.c[name] == bindparam(f"k_{name}") for name in _KEY))
    if opened:
        conn.execute(insert(table), opened)
    if kept:
        names = ("user_id", "store_value", "microsoft_value", "last_seen_at", "run_id")
        conn.execute(update(table).where(where).values({n: bindparam(f"v_{n}") for n in names}), kept)
    if closed:
        conn.execute(delete(table).where(where), closed)


def _close_unlinked(conn: Connection, tenant_id: str) -> None:
    """Close the tenant's rows of contacts no longer linked to one of its users."""
    linked = select(contact_microsoft.c.contact_id).where(contact_microsoft.c.tenant_id == tenant_id,
                                                          contact_microsoft.c.status != "removed")
    conn.execute(delete(open_differences).where(open_differences.c.tenant_id == tenant_id,
                                                open_differences.c.contact_id.not_in(linked)))


def close_differences(conn: Connection, tenant_id: str, contact_ids: list[int]) -> None:
    """Close the tenant's rows of these contacts, which left it (their user was removed)."""
    for start in range(0, len(contact_ids), _CHUNK):
        conn.execute(delete(open_differences).where(
            open_differences.c.tenant_id == tenant_id,
            open_differences.c.contact_id.in_(contact_ids[start:start + _CHUNK])))


def read_open_differences(conn: Connection, tenant_id: str) -> pd.DataFrame:
    """The tenant's open differences (DIFFERENCE_COLUMNS), oldest first, with the contact's name
    and its user's UPN; a contact no longer linked to the tenant is left out."""
    od, link = open_differences, contact_microsoft
    rows = conn.execute(
        select(od.c.contact_id, contacts.c.first_name, contacts.c.last_name, od.c.user_id,
               link.c.user_principal_name, od.c.field, od.c.store_value, od.c.microsoft_value,
               od.c.first_seen_at, od.c.last_seen_at, od.c.run_id)
        .join(contacts, contacts.c.id == od.c.contact_id)
        .join(link, and_(link.c.contact_id == od.c.contact_id, link.c.tenant_id == od.c.tenant_id))
        .where(od.c.tenant_id == tenant_id)
        .order_by(od.c.first_seen_at, od.c.contact_id, od.c.field)).mappings().all()
    return pd.DataFrame([_analyst_row(dict(r)) for r in rows], columns=DIFFERENCE_COLUMNS)


def _analyst_row(row: Row) -> Row:
    name = " ".join(part for part in (row.pop("first_name"), row.pop("last_name")) if part)
    return {**row, "contact_name": name or None, "first_seen_at": as_utc(row["first_seen_at"]),
            "last_seen_at": as_utc(row["last_seen_at"])}
