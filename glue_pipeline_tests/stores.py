"""Comparing stores across runs: a world whose every tenant is matched, a store snapshot that two
stores saying the same thing share even when their id sequences differ, and a sync of every
partition."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from sqlalchemy import Engine, select

from glue_pipeline.defs.definitions import build_defs
from glue_pipeline.defs.partitions import TENANT_ASSET, TENANTS, tenant_keys
from glue_pipeline.matching.organizations import normalize_name
from glue_pipeline.runner import RunOutcome, execute, outcome_of, partition_tenants
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.world import StoreOrganization, Tenant, World
from glue_pipeline.settings import store_url_from_env
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.partition_keys import partitions_of

# When a row was written, and by which run (open_differences.run_id): no two stores share them;
# nor tenants.partition_key, given by a discovery in Dagster only (a sync outside Dagster has none).
VOLATILE = {"created_at", "updated_at", "first_seen_at", "last_seen_at", "changed_at", "decided_at", "at",
            "finished_at", "started_at", "run_id", "partition_key"}
BOOKKEEPING = {"sync_log", "sync_runs", "sync_results", "tenant_sync_state", "run_heartbeats"}


def matched_world(seed: int, tenants: int, users: int, revoked: int = 0) -> World:
    """A generated world whose every tenant has exactly one organization of its name in the
    store seed, so every granted tenant is matched and its users are written."""
    world = generate_world(seed=seed, tenants=tenants, users=users, revoked=revoked)
    names: dict[str, int] = {}
    for org in world.store.organizations:
        names[normalize_name(org.name)] = names.get(normalize_name(org.name), 0) + 1
    next_id = max((o.id for o in world.store.organizations), default=0) + 1
    for tenant in world.tenants:
        count = names.get(normalize_name(tenant.display_name), 0)
        if count > 1:  # two organizations of that name are never guessed: give the tenant its own
            tenant.display_name = f"{tenant.display_name} (tenant {tenant.id[:8]})"
            count = 0
        if count == 0:
            world.store.organizations.append(StoreOrganization(id=next_id, name=tenant.display_name))
            names[normalize_name(tenant.display_name)] = 1
            next_id += 1
    return world


def canonical_store(engine: Engine) -> dict[str, list[tuple]]:
    """Every documentation table, with contact ids replaced by what identifies a contact across
    stores (a seeded contact by its seeded id, a created one by its tenant and Microsoft user id),
    configuration ids likewise (a created one by its tenant and Intune device id), and without
    timestamps and the bookkeeping tables: two stores that say the same thing are equal even when
    their sequences handed out other ids."""
    cm, gm = schema.contact_microsoft, schema.configuration_microsoft
    with engine.connect() as conn:
        links = {r.contact_id: ("microsoft", r.tenant_id, r.user_id)
                 for r in conn.execute(select(cm.c.contact_id, cm.c.tenant_id, cm.c.user_id))}
        keys = {r.id: (("store", r.id) if r.created_by == "store" else links.get(r.id, ("orphan", r.id)))
                for r in conn.execute(select(schema.contacts.c.id, schema.contacts.c.created_by))}
        device_links = {r.configuration_id: ("microsoft", r.tenant_id, r.device_id)
                        for r in conn.execute(select(gm.c.configuration_id, gm.c.tenant_id, gm.c.device_id))}
        configuration_keys = {
            r.id: (("store", r.id) if r.created_by == "store" else device_links.get(r.id, ("orphan", r.id)))
            for r in conn.execute(select(schema.configurations.c.id, schema.configurations.c.created_by))}

        def key(contact_id: object) -> object:
            return None if contact_id is None else keys.get(int(contact_id), ("unknown", contact_id))

        def configuration_key(configuration_id: object) -> object:
            return None if configuration_id is None else configuration_keys.get(
                int(configuration_id), ("unknown", configuration_id))

        snapshot: dict[str, list[tuple]] = {}
        for table in schema.metadata.sorted_tables:
            if table.name in BOOKKEEPING:
                continue
            rows = []
            for row in conn.execute(select(table)):
                values = {k: v for k, v in row._mapping.items() if k not in VOLATILE}
                if table.name in ("contact_emails", "contact_phones", "match_decisions"):
                    values.pop("id")
                if table.name == "contacts":
                    values["id"] = key(values["id"])
                if "contact_id" in values:
                    values["contact_id"] = key(values["contact_id"])
                if table.name == "configurations":
                    values["id"] = configuration_key(values["id"])
                    values["primary_contact_id"] = key(values["primary_contact_id"])
                if "configuration_id" in values:
                    values["configuration_id"] = configuration_key(values["configuration_id"])
                if values.get("candidate_configuration_ids"):
                    candidates = str(values["candidate_configuration_ids"]).split(",")
                    values["candidate_configuration_ids"] = sorted(str(configuration_key(c.strip()))
                                                                   for c in candidates)
                if values.get("candidate_contact_ids"):
                    values["candidate_contact_ids"] = sorted(
                        str(key(c.strip())) for c in str(values["candidate_contact_ids"]).split(","))
                if "vanished_at" in values:
                    values["vanished_at"] = values["vanished_at"] is not None
                rows.append(tuple(sorted((k, str(v)) for k, v in values.items())))
            snapshot[table.name] = sorted(rows)
    return snapshot


def sync_every_partition(instance: dg.DagsterInstance) -> RunOutcome:
    """One sync run over every tenant partition, paused and parked tenants included, as a backfill
    of every partition from the UI makes it (a sync of every tenant leaves those out)."""
    keys = list(tenant_keys(instance))
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    tenant_of = partition_tenants(keys)
    return outcome_of(instance, execute(instance, build_defs().resolve_job_def("sync_tenants"), tags=tags),
                      list(tenant_of.values()), tenant_of)


def table_rows(engine: Engine, table: Any, *where: Any) -> list[dict[str, Any]]:
    """The rows of a store table (optionally filtered) as dicts."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).where(*where))]


def granted_tenants(world: World) -> list[Tenant]:
    """The world's tenants whose consent is granted."""
    return [t for t in world.tenants if t.consent == "granted"]


def partition_of(tenant_id: str) -> str:
    """The tenant's partition key, from the store of GLUE_STORE_URL."""
    engine = make_engine(store_url_from_env())
    try:
        return partitions_of(engine, [tenant_id])[tenant_id]
    finally:
        engine.dispose()


def partition_states(instance: dg.DagsterInstance) -> tuple[set[str], set[str]]:
    """The tenants (ids) whose tenant_contacts partition Dagster's partition status (what the UI
    reads) shows as materialized, and as failed."""
    value = get_and_update_asset_status_cache_value(instance, dg.AssetKey(TENANT_ASSET), TENANTS)
    assert value is not None
    materialized = value.deserialize_materialized_partition_subsets(TENANTS).get_partition_keys()
    failed = value.deserialize_failed_partition_subsets(TENANTS).get_partition_keys()
    return set(partition_tenants(list(materialized)).values()), set(partition_tenants(list(failed)).values())
