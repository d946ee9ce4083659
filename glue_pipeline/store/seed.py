"""Loading a world's starting organizations, contacts and configurations into an empty store."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, func, insert, select

from glue_pipeline.sandbox.world import StoreSeed
from glue_pipeline.store.engine import write_transaction
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.schema import (
    configuration_microsoft,
    configurations,
    contact_emails,
    contact_phones,
    contacts,
    organizations,
)
from glue_pipeline.store.writer import utcnow


def seed_store(engine: Engine, seed: StoreSeed) -> bool:
    """Bring the store to the schema's head; load the seed when it holds no organization yet.

    Returns False (and writes nothing) when the store already has data, so seeding twice is safe.
    """
    upgrade_store(engine)
    now = utcnow()
    with write_transaction(engine) as conn:
        if conn.execute(select(func.count()).select_from(organizations)).scalar_one():
            return False
        if seed.organizations:
            conn.execute(insert(organizations), [
                {"id": o.id, "name": o.name, "created_at": now, "updated_at": now}
                for o in seed.organizations])
        if seed.contacts:
            conn.execute(insert(contacts), [
                {"id": c.id, "organization_id": c.organization_id, "first_name": c.first_name,
                 "last_name": c.last_name, "title": c.title, "created_by": "store",
                 "created_at": now, "updated_at": now} for c in seed.contacts])
        emails = [{"contact_id": c.id, "value": e.value, "label": e.label, "is_primary": e.primary}
                  for c in seed.contacts for e in c.emails]
        phones = [{"contact_id": c.id, "value": p.value, "label": p.label, "is_primary": p.primary}
                  for c in seed.contacts for p in c.phones]
        for table, rows in ((contact_emails, emails), (contact_phones, phones)):
            if rows:
                conn.execute(insert(table), rows)
        _seed_configurations(conn, seed)
        _advance_sequences(conn)
    return True


def _seed_configurations(conn: Connection, seed: StoreSeed) -> None:
    """The organizations' documented devices, and the Intune links an earlier sync left on some."""
    now = utcnow()
    rows = [{"id": c.id, "organization_id": o.id, "name": c.name, "configuration_type": c.configuration_type,
             "serial_number": c.serial_number, "manufacturer": c.manufacturer, "model": c.model,
             "operating_system": c.operating_system, "os_version": c.os_version, "mac_address": c.mac_address,
             "primary_contact_id": c.primary_contact_id, "created_by": "store", "created_at": now, "updated_at": now}
            for o in seed.organizations for c in o.configurations]
    links = [{"configuration_id": c.id, "tenant_id": c.microsoft.tenant_id, "device_id": c.microsoft.device_id.lower(),
              "status": "active"} for o in seed.organizations for c in o.configurations if c.microsoft]
    for table, batch in ((configurations, rows), (configuration_microsoft, links)):
        if batch:
            conn.execute(insert(table), batch)


def _advance_sequences(conn: Connection) -> None:
    """Explicit ids leave PostgreSQL's serial sequences behind; move them past the seeded ids."""
    if conn.dialect.name != "postgresql":
        return
    for table in (organizations, contacts, configurations):
        conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table.name}), 1))")
