"""Tenants are partitions keyed by name: `Contoso Ltd (3f2a9c1e)`. A key is given once and never
changes; a hostile name cannot forge another tenant's key or break Dagster's; an instance whose
partitions are still tenant ids has them moved, history and order included, by discovery."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from sqlalchemy import Engine, update

from glue_pipeline.defs.partitions import (
    TENANT_ASSET,
    TENANT_PARTITIONS,
    TENANTS,
    keep_partitions_in_step,
    tenant_keys,
)
from glue_pipeline.runner import run_discovery, run_sync
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.partition_keys import assign_partition_keys, keys_of, partition_key
from glue_pipeline.store.tenant_refs import TenantRefError, find_tenant
from glue_pipeline.store.writer import utcnow

ID_A = "3f2a9c1e-1111-4222-8333-444455556666"
ID_B = "3f2a9c1e-9999-4222-8333-444455556666"  # the same first 8 characters as ID_A


@pytest.mark.parametrize("name,expected", [
    ("Contoso Ltd", "Contoso Ltd (3f2a9c1e)"),
    ("  Müller   GmbH & Co. ", "Müller GmbH & Co (3f2a9c1e)"),
    ("Fabrikam (deadbeef)", "Fabrikam deadbeef (3f2a9c1e)"),  # cannot end in a forged id
    ("a, b [c...d] /e\\f", "a b c.d e f (3f2a9c1e)"),  # nothing Dagster or its UI reads in a key
    ("Evil\x1b[31m\u202eCorp\n| x |", "Evil 31m Corp x (3f2a9c1e)"),
    ("", "tenant (3f2a9c1e)"),
    (None, "tenant (3f2a9c1e)"),
    ("|||", "tenant (3f2a9c1e)"),
    ("W" * 500, "W" * 40 + " (3f2a9c1e)"),
])
def test_a_key_is_the_name_cleaned_and_a_short_id(name: str | None, expected: str) -> None:
    assert partition_key(name, ID_A) == expected


def test_every_hostile_key_is_a_valid_dagster_partition(instance: dg.DagsterInstance) -> None:
    names = ["a...b", "tab\there", "nul\x00", "bell\a", "emoji 🚀 ok", "日本語の会社", "x" * 300, "<img src=x>"]
    keys = [partition_key(name, f"{n:08d}-0000-4000-8000-000000000000") for n, name in enumerate(names)]
    instance.add_dynamic_partitions(TENANT_PARTITIONS, keys)  # Dagster refuses an invalid key
    assert list(tenant_keys(instance)) == keys
    assert all("..." not in k and "," not in k and "[" not in k and len(k) <= 128 for k in keys)


def _store(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    upgrade_store(engine)
    return engine


def _add_tenant(engine: Engine, tenant_id: str, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(schema.tenants.insert().values(tenant_id=tenant_id, display_name=name, first_seen_at=utcnow(),
                                                    last_seen_at=utcnow()))


def test_keys_are_given_once_unique_and_kept_across_renames(tmp_path: Path) -> None:
    engine = _store(tmp_path)
    _add_tenant(engine, ID_A, "Contoso Ltd")
    _add_tenant(engine, ID_B, "Contoso Ltd")  # same name, same short id: the whole id tells them apart
    with engine.begin() as conn:
        keys = assign_partition_keys(conn)
    assert keys == {ID_A: "Contoso Ltd (3f2a9c1e)", ID_B: f"Contoso Ltd ({ID_B})"}
    with engine.begin() as conn:
        conn.execute(update(schema.tenants).where(schema.tenants.c.tenant_id == ID_A).values(display_name="Northwind"))
        assert assign_partition_keys(conn) == keys, "a renamed tenant keeps its key"
        assert keys_of(conn, [ID_A]) == {ID_A: "Contoso Ltd (3f2a9c1e)"}


def test_an_instance_keyed_by_tenant_id_is_moved_to_name_keys_with_its_history(
        instance: dg.DagsterInstance) -> None:
    ids = [f"{n}0000000-0000-4000-8000-000000000000" for n in range(3)]
    instance.add_dynamic_partitions(TENANT_PARTITIONS, ids)
    for n, tenant_id in enumerate(ids):
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=TENANT_ASSET, partition=tenant_id, metadata={"users": n, "sync": "first"}))
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=TENANT_ASSET, partition=tenant_id, metadata={"users": n * 10, "sync": "second"}))
    instance.report_runless_asset_event(dg.AssetObservation(
        asset_key=TENANT_ASSET, partition=ids[1], description="paused"))
    before = {r.event_log_entry.timestamp for r in instance.fetch_materializations(
        dg.AssetKey(TENANT_ASSET), limit=100).records}
    keys = {tenant_id: f"Customer {n} ({tenant_id[:8]})" for n, tenant_id in enumerate(ids)}
    new_id = "90000000-0000-4000-8000-000000000000"
    keys[new_id] = "Newcomer (90000000)"

    added = keep_partitions_in_step(instance, keys, [new_id, *ids])
    assert added == 1
    assert list(tenant_keys(instance)) == [keys[t] for t in ids] + [keys[new_id]], "the order is kept"
    for n, tenant_id in enumerate(ids):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(TENANT_ASSET), asset_partitions=[keys[tenant_id]]), limit=10).records
        latest = records[0].asset_materialization
        assert latest is not None and latest.metadata["users"] == dg.IntMetadataValue(n * 10)
        assert [r.asset_materialization.metadata["sync"].value for r in records  # type: ignore[union-attr]
                ] == ["second", "first"]
        assert {r.event_log_entry.timestamp for r in records} <= before, "each event keeps its time"
    observed = instance.fetch_observations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(TENANT_ASSET), asset_partitions=[keys[ids[1]]]), limit=10).records
    assert [r.event_log_entry.dagster_event.asset_observation_data.asset_observation.description  # type: ignore
            for r in observed] == ["paused"]
    assert keep_partitions_in_step(instance, keys, [new_id, *ids]) == 0, "a second pass changes nothing"
    assert len(instance.fetch_materializations(dg.AssetKey(TENANT_ASSET), limit=100).records) == 12


def test_a_failed_partition_stays_failed_on_its_new_key(instance: dg.DagsterInstance) -> None:
    """Its last attempt, in a run that failed, moves with it: Dagster shows the new key failed."""
    tenant_id, ok_id = "a0000000-0000-4000-8000-000000000000", "b0000000-0000-4000-8000-000000000000"
    instance.add_dynamic_partitions(TENANT_PARTITIONS, [tenant_id, ok_id])

    @dg.asset(name=TENANT_ASSET, partitions_def=TENANTS)
    def tenant_contacts(context) -> None:  # type: ignore[no-untyped-def]  # Dagster reads the annotation
        if context.partition_key == tenant_id:
            raise RuntimeError("consent revoked")

    failing = dg.materialize([tenant_contacts], partition_key=tenant_id, instance=instance, raise_on_error=False)
    assert not failing.success
    assert dg.materialize([tenant_contacts], partition_key=ok_id, instance=instance).success
    keys = {tenant_id: "Failing (a0000000)", ok_id: "Fine (b0000000)"}
    keep_partitions_in_step(instance, keys, [tenant_id, ok_id])
    materialized, failed = _states(instance)
    assert failed == {"Failing (a0000000)"} and materialized == {"Fine (b0000000)"}


def _states(instance: dg.DagsterInstance) -> tuple[set[str], set[str]]:
    value = get_and_update_asset_status_cache_value(instance, dg.AssetKey(TENANT_ASSET), TENANTS)
    assert value is not None
    return (set(value.deserialize_materialized_partition_subsets(TENANTS).get_partition_keys()),
            set(value.deserialize_failed_partition_subsets(TENANTS).get_partition_keys()))


def test_discovery_and_sync_use_name_keys(glue_env: dict[str, str], small_world: World,
                                          instance: dg.DagsterInstance) -> None:
    assert run_discovery(instance).success
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    with engine.connect() as conn:
        keys = keys_of(conn)
    listed = list(tenant_keys(instance))
    assert sorted(listed) == sorted(keys.values()) and listed
    tenant = next(t for t in small_world.tenants if t.consent == "granted" and keys.get(t.id))
    assert keys[tenant.id] == partition_key(tenant.display_name, tenant.id)
    (outcome,) = run_sync(instance, [tenant.id])
    assert outcome.success, outcome.error
    assert outcome.materialized == [tenant.id]
    latest = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(TENANT_ASSET), asset_partitions=[keys[tenant.id]]), limit=1).records
    assert latest, "the tenant's materialization is on its name key"


def test_a_tenant_is_named_by_its_id_key_or_name_everywhere_one_resolver(tmp_path: Path) -> None:
    engine = _store(tmp_path)
    _add_tenant(engine, ID_A, "Contoso Ltd")
    _add_tenant(engine, ID_B, "Contoso Ltd")
    with engine.begin() as conn:
        keys = assign_partition_keys(conn)
        assert find_tenant(conn, keys[ID_B])["tenant_id"] == ID_B, "by partition key"
        assert find_tenant(conn, ID_A.upper())["tenant_id"] == ID_A, "by id, case ignored"
        with pytest.raises(TenantRefError, match=r"2 tenants are named 'contoso  ltd' .*give the tenant id"):
            find_tenant(conn, "contoso  ltd")
        with pytest.raises(TenantRefError, match="no tenant 'Contoso Ltd \\(ffffffff\\)' is known"):
            find_tenant(conn, "Contoso Ltd (ffffffff)")
