"""Reads and writes of one tenant's devices inside its transaction: the organization's
configurations as device matching reads them, the configuration writes, devices gone from
Intune, held devices and analysts' device decisions.

Keyed so that a re-run converges: a configuration follows its Intune device through
configuration_microsoft, unique per (tenant, device id). Configurations are created and
updated, never deleted. A configuration's type is set when the sync creates it or the store has
none; an analyst's more precise type stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import ColumnElement, Connection, delete, func, insert, select, update

from glue_pipeline.columns import (
    CONFIGURATION_COLUMNS,
    DEVICE_DECISION_COLUMNS,
    FOREIGN_DEVICE_COLUMNS,
    LINKED_DEVICE_COLUMNS,
)
from glue_pipeline.device_plan import ConfigurationWrite
from glue_pipeline.matching.devices import normalized_mac
from glue_pipeline.store.rows import Row
from glue_pipeline.store.schema import (
    configuration_decisions,
    configuration_microsoft,
    configurations,
    contact_microsoft,
    contacts,
    held_devices,
    tenants,
)
from glue_pipeline.store.writer import BulkWrites, LogEntry

CHUNK = 500  # ids per IN (...) of a read


@dataclass
class ConfigurationIndex:
    """What device matching reads of an organization's configurations, for one tenant."""

    configurations: pd.DataFrame  # CONFIGURATION_COLUMNS
    linked: pd.DataFrame  # LINKED_DEVICE_COLUMNS: configurations linked to this tenant's devices
    foreign: pd.DataFrame  # FOREIGN_DEVICE_COLUMNS: configurations linked to other tenants' devices


@dataclass
class DeviceCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    log: list[LogEntry] = field(default_factory=list)
    created_ids: dict[str, int] = field(default_factory=dict)  # device id -> the configuration created for it


def read_configuration_index(conn: Connection, organization_id: int, tenant_id: str) -> ConfigurationIndex:
    in_org = configurations.c.organization_id == organization_id
    rows = conn.execute(
        select(configurations.c.id, configurations.c.name, configurations.c.serial_number,
               configurations.c.mac_address, configuration_microsoft.c.wifi_mac_address,
               configuration_microsoft.c.ethernet_mac_address, configurations.c.primary_contact_id,
               configurations.c.created_by, configurations.c.model)
        .join(configuration_microsoft, configuration_microsoft.c.configuration_id == configurations.c.id,
              isouter=True)
        .where(in_org).order_by(configurations.c.id)).all()
    frame = pd.DataFrame([
        (r.id, r.name, r.serial_number, _macs(r.mac_address, r.wifi_mac_address, r.ethernet_mac_address),
         r.primary_contact_id, r.created_by, r.model) for r in rows], columns=CONFIGURATION_COLUMNS)
    linked = conn.execute(
        select(configuration_microsoft.c.configuration_id, configuration_microsoft.c.device_id,
               (configurations.c.organization_id == organization_id).label("in_organization"),
               configurations.c.created_by)
        .join(configurations, configurations.c.id == configuration_microsoft.c.configuration_id)
        .where(configuration_microsoft.c.tenant_id == tenant_id)).all()
    foreign = conn.execute(
        select(configuration_microsoft.c.configuration_id, configuration_microsoft.c.tenant_id,
               tenants.c.display_name)
        .join(configurations, configurations.c.id == configuration_microsoft.c.configuration_id)
        .join(tenants, tenants.c.tenant_id == configuration_microsoft.c.tenant_id, isouter=True)
        .where(in_org, configuration_microsoft.c.tenant_id != tenant_id)).all()
    return ConfigurationIndex(frame, pd.DataFrame(linked, columns=LINKED_DEVICE_COLUMNS),
                              pd.DataFrame(foreign, columns=FOREIGN_DEVICE_COLUMNS))


def _macs(*values: object) -> list[str]:
    return list(dict.fromkeys(m for m in map(normalized_mac, values) if m))


def read_device_decisions(conn: Connection, tenant_id: str) -> pd.DataFrame:
    rows = conn.execute(select(configuration_decisions.c.device_id, configuration_decisions.c.action,
                               configuration_decisions.c.configuration_id)
                        .where(configuration_decisions.c.tenant_id == tenant_id)).all()
    return pd.DataFrame(rows, columns=DEVICE_DECISION_COLUMNS)


def contacts_of_users(conn: Connection, tenant_id: str, organization_id: int, user_ids: list[str]) -> dict[str, int]:
    """user id -> the organization's contact linked to that user of the tenant."""
    found: dict[str, int] = {}
    for start in range(0, len(user_ids), CHUNK):
        found |= dict(conn.execute(
            select(contact_microsoft.c.user_id, contact_microsoft.c.contact_id)
            .join(contacts, contacts.c.id == contact_microsoft.c.contact_id)
            .where(contact_microsoft.c.tenant_id == tenant_id, contacts.c.organization_id == organization_id,
                   contact_microsoft.c.user_id.in_(user_ids[start:start + CHUNK]))).tuples().all())
    return found


def apply_configurations(conn: Connection, tenant_id: str, organization_id: int, writes: list[ConfigurationWrite],
                         now: datetime) -> DeviceCounts:
    """Create, link and update the plan's configurations; a device's primary user becomes the
    primary contact when the user is linked to a contact of the organization."""
    counts = DeviceCounts()
    users = contacts_of_users(conn, tenant_id, organization_id, sorted({w.user_id for w in writes if w.user_id}))
    _release_links(conn, tenant_id, [w for w in writes if w.decided], counts)
    _create(conn, organization_id, [w for w in writes if w.configuration_id is None], users, now, counts)
    _update(conn, [w for w in writes if w.configuration_id is not None], users, now, counts)
    return counts


def _release_links(conn: Connection, tenant_id: str, writes: list[ConfigurationWrite], counts: DeviceCounts) -> None:
    """A device an analyst linked to another configuration, or approved for a new one, leaves
    the one it was linked to (a device has one link)."""
    for write in writes:
        linked = select(configuration_microsoft.c.configuration_id).where(
            configuration_microsoft.c.tenant_id == tenant_id, configuration_microsoft.c.device_id == write.device_id)
        if write.configuration_id is not None:
            linked = linked.where(configuration_microsoft.c.configuration_id != write.configuration_id)
        old = conn.execute(linked).scalars().all()
        if old:
            conn.execute(delete(configuration_microsoft).where(configuration_microsoft.c.configuration_id.in_(old)))
            where = f"configuration {write.configuration_id}" if write.configuration_id else "a new configuration"
            counts.log += [LogEntry("info", "configuration_updated", f"an analyst's decision moved the device to "
                                    f"{where}; this configuration is kept without its link",
                                    configuration_id=cid, device_id=write.device_id) for cid in old]


def _create(conn: Connection, organization_id: int, writes: list[ConfigurationWrite], users: dict[str, int],
            now: datetime, counts: DeviceCounts) -> None:
    if not writes:
        return
    rows = [{"organization_id": organization_id, **_documented(w), "primary_contact_id": users.get(w.user_id or ""),
             "created_by": "microsoft", "created_at": now, "updated_at": now} for w in writes]
    ids = conn.execute(insert(configurations).returning(configurations.c.id, sort_by_parameter_order=True),
                       rows).scalars().all()
    conn.execute(insert(configuration_microsoft),
                 [{"configuration_id": cid, **w.overlay} for cid, w in zip(ids, writes, strict=True)])
    for cid, write in zip(ids, writes, strict=True):
        counts.created_ids[write.device_id] = cid
        counts.created += 1
        counts.log.append(LogEntry("info", "configuration_created", f"created configuration {_named(write)}",
                                   configuration_id=cid, device_id=write.device_id))


def _documented(write: ConfigurationWrite) -> Row:
    """The configuration columns a write sets: its mapped fields, the type, and the Wi-Fi MAC."""
    return {**write.fields, "mac_address": write.overlay.get("wifi_mac_address")}


def _named(write: ConfigurationWrite) -> str:
    return write.fields.get("name") or write.fields.get("serial_number") or write.device_id


def _update(conn: Connection, writes: list[ConfigurationWrite], users: dict[str, int], now: datetime,
            counts: DeviceCounts) -> None:
    ids = [w.configuration_id for w in writes if w.configuration_id is not None]
    current: dict[int, Row] = {}
    overlays: dict[int, Row] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        current |= {r.id: dict(r._mapping) for r in conn.execute(select(configurations)
                                                                  .where(configurations.c.id.in_(chunk)))}
        overlays |= {r.configuration_id: dict(r._mapping) for r in conn.execute(
            select(configuration_microsoft).where(configuration_microsoft.c.configuration_id.in_(chunk)))}
    bulk = BulkWrites()
    for write in writes:
        cid = int(write.configuration_id or 0)
        changed = _changed_fields(current[cid], write, users)
        overlay = overlays.get(cid)
        if overlay is None:
            bulk.insert(configuration_microsoft, {"configuration_id": cid, **write.overlay})
            changed["link"] = write.device_id
        else:
            moved = {k: v for k, v in write.overlay.items() if overlay.get(k) != v}
            if moved:
                bulk.update(configuration_microsoft, "configuration_id", cid, moved)
                changed |= {f"microsoft {k}": v for k, v in moved.items()}
        if changed:
            documented = {k: v for k, v in changed.items() if k in configurations.c}
            bulk.update(configurations, "id", cid, {**documented, "updated_at": now})
            counts.updated += 1
            counts.log.append(LogEntry("info", "configuration_updated", f"updated {', '.join(sorted(changed))}",
                                       configuration_id=cid, device_id=write.device_id))
        else:
            counts.unchanged += 1
    bulk.flush(conn)


def _changed_fields(current: Row, write: ConfigurationWrite, users: dict[str, int]) -> Row:
    """The configuration's columns the write changes: mapped fields Microsoft has a value for, the
    type where the store has none, the primary contact where the user has a contact."""
    wanted = {k: v for k, v in _documented(write).items() if v is not None and k != "configuration_type"}
    if current.get("configuration_type") is None:
        wanted["configuration_type"] = write.fields.get("configuration_type")
    contact = users.get(write.user_id or "")
    if contact is not None:
        wanted["primary_contact_id"] = contact
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def mark_removed_devices(conn: Connection, tenant_id: str, present: set[str], counts: DeviceCounts) -> None:
    """Devices gone from Intune keep their configuration; the overlay says so."""
    rows = conn.execute(select(configuration_microsoft.c.configuration_id, configuration_microsoft.c.device_id)
                        .where(configuration_microsoft.c.tenant_id == tenant_id,
                               configuration_microsoft.c.status != "removed")).all()
    gone = [r for r in rows if r.device_id not in present]
    for start in range(0, len(gone), CHUNK):
        conn.execute(update(configuration_microsoft).where(configuration_microsoft.c.configuration_id.in_(
            [r.configuration_id for r in gone[start:start + CHUNK]])).values(status="removed"))
    counts.removed += len(gone)
    counts.log += [LogEntry("warning", "device_removed", f"device {r.device_id} is no longer in Intune; the "
                            "configuration is kept", configuration_id=r.configuration_id, device_id=r.device_id)
                   for r in gone]


def replace_held_devices(conn: Connection, tenant_id: str, rows: list[dict[str, str | None]], now: datetime) -> None:
    conn.execute(delete(held_devices).where(held_devices.c.tenant_id == tenant_id))
    if rows:
        conn.execute(insert(held_devices), [{"tenant_id": tenant_id, **r, "updated_at": now} for r in rows])


def configuration_version(conn: Connection, tenant_id: str, organization_id: int | None) -> list[list[str]]:
    """What a tenant's device plan reads, summarised (counts, highest ids, latest edits): its
    device decisions and links, and its organization's configurations."""
    def summary(key: ColumnElement[bool], *columns: ColumnElement[object]) -> list[str]:
        row = conn.execute(select(func.count(), *[func.max(c) for c in columns]).where(key)).one()
        return [str(v) for v in row]

    version = [summary(configuration_decisions.c.tenant_id == tenant_id, configuration_decisions.c.decided_at),
               summary(configuration_microsoft.c.tenant_id == tenant_id, configuration_microsoft.c.configuration_id)]
    if organization_id is not None:
        version.append(summary(configurations.c.organization_id == organization_id, configurations.c.id,
                               configurations.c.updated_at))
    return version
