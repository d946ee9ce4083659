"""The `tenants` dynamic partitions (one a customer tenant, keyed by its name and a short id:
store/partition_keys.py), one run over all of them, and the concurrency pool of the runs that
sync them."""

from collections.abc import Collection, Mapping, Sequence

import dagster as dg
from dagster._core.event_api import AssetRecordsFilter, EventLogRecord
from dagster._core.events import AssetMaterializationPlannedData, AssetObservationData, StepMaterializationData
from dagster._core.events.log import EventLogEntry

TENANT_PARTITIONS = "tenants"
TENANT_ASSET = "tenant_contacts"  # the asset partitioned by tenant (defs/tenants.py)
TENANTS = dg.DynamicPartitionsDefinition(name=TENANT_PARTITIONS)

# The concurrency pool of every run that syncs tenants, whatever launched it: the instance limits
# how many such runs are in progress at once (dagster.yaml, concurrency > pools).
SYNC_POOL = "microsoft_graph"


def ensure_sync_pool(instance: dg.DagsterInstance) -> None:
    """Give the pool its limit (the instance's default) before the first sync is queued: the run
    queue applies a pool's limit only from the pass after the one that first meets the pool, so
    a first batch of queued syncs would all start at once. Only a pool without a limit: Dagster's
    initialisation of an existing one fails on PostgreSQL (an insert, then an update in the
    aborted transaction)."""
    storage = instance.event_log_storage
    if SYNC_POOL not in {limit.name for limit in storage.get_pool_limits()}:
        storage.initialize_concurrency_limit_to_default(SYNC_POOL)


def tenant_keys(instance: dg.DagsterInstance) -> Sequence[str]:
    """Every tenant partition, in the order discovery added them."""
    return instance.get_dynamic_partitions(TENANT_PARTITIONS)


def all_tenants_run_requests(instance: dg.DagsterInstance, left_out: Collection[str] = (),
                             run_key: str | None = None) -> list[dg.RunRequest] | dg.SkipReason:
    """Runs over every tenant partition but those `left_out` (paused or parked tenants), as
    partition ranges: one run when none is left out, else one per stretch of tenants between
    them. A left-out tenant is in no run, so its partition keeps the status its last run gave it
    (a parked tenant's stays failed)."""
    keys = tenant_keys(instance)
    if not keys:
        return dg.SkipReason("no tenants discovered yet")
    ranges: list[list[str]] = [[]]
    for key in keys:
        if key in left_out:
            if ranges[-1]:
                ranges.append([])
        else:
            ranges[-1].append(key)
    ranges = [r for r in ranges if r]
    if not ranges:
        return dg.SkipReason(f"all {len(keys)} tenants are paused or parked")
    return [dg.RunRequest(run_key=None if run_key is None else f"{run_key}:{n}" if len(ranges) > 1 else run_key,
                          tags={"dagster/asset_partition_range_start": r[0],
                                "dagster/asset_partition_range_end": r[-1]})
            for n, r in enumerate(ranges)]


def range_keys(instance: dg.DagsterInstance, request: dg.RunRequest) -> list[str]:
    """The tenants of a run request's partition range."""
    keys = list(tenant_keys(instance))
    start = keys.index(request.tags["dagster/asset_partition_range_start"])
    return keys[start:keys.index(request.tags["dagster/asset_partition_range_end"]) + 1]


def keep_partitions_in_step(instance: dg.DagsterInstance, keys: Mapping[str, str], listed: Sequence[str]) -> int:
    """Add a partition for each tenant `listed` (in that order) that has none; a tenant whose
    partition is still keyed by its tenant id (an instance from before partition keys) has it
    moved to its key first, in the order the partitions had. Returns the partitions added."""
    existing = list(tenant_keys(instance))
    by_id = [tenant_id for tenant_id in existing if tenant_id in keys and keys[tenant_id] != tenant_id]
    wanted = [keys[t] for t in by_id] + [keys[t] for t in listed if t in keys]
    new = list(dict.fromkeys(k for k in wanted if k not in set(existing)))
    if new:
        instance.add_dynamic_partitions(TENANT_PARTITIONS, new)
    _move_open_attempts(instance, {tenant_id: keys[tenant_id] for tenant_id in by_id})
    for tenant_id in by_id:
        move_partition_history(instance, tenant_id, keys[tenant_id])
        instance.delete_dynamic_partition(TENANT_PARTITIONS, tenant_id)
    return len(new) - len(by_id)


def _move_open_attempts(instance: dg.DagsterInstance, moves: Mapping[str, str]) -> None:
    """A partition whose last attempt did not materialize it (its run failed, or still runs)
    keeps that state on its new key: the attempt's planned event is copied, with its run."""
    asset = dg.AssetKey(TENANT_ASSET)
    storage = instance.event_log_storage
    attempts = {old: attempt for old, attempt in
                storage.get_latest_asset_partition_materialization_attempts_without_materializations(asset).items()
                if old in moves}
    if not attempts:
        return
    ids = sorted({event_id for _run_id, event_id in attempts.values()})
    records = instance.fetch_planned_materializations(AssetRecordsFilter(asset_key=asset, storage_ids=ids),
                                                      limit=len(ids)).records
    entries = {r.storage_id: r.event_log_entry for r in records}
    for old, (_run_id, event_id) in attempts.items():
        entry = entries[event_id]
        event = entry.get_dagster_event()
        planned = AssetMaterializationPlannedData(asset, partition=moves[old])
        instance.store_event(entry._replace(dagster_event=event._replace(event_specific_data=planned)))


HISTORY_PAGE = 1000


def move_partition_history(instance: dg.DagsterInstance, old: str, new: str) -> int:
    """Copy the materializations and observations of the tenants asset's partition `old` to
    partition `new`, each with its run and time, so that the partition `new` shows the history
    (its latest materialization, its tables). Returns the events copied."""
    copied = 0
    for fetch in (instance.fetch_materializations, instance.fetch_observations):
        cursor = None
        while True:
            page = fetch(AssetRecordsFilter(asset_key=dg.AssetKey(TENANT_ASSET), asset_partitions=[old]),
                         limit=HISTORY_PAGE, cursor=cursor, ascending=True)
            for record in page.records:
                instance.store_event(_repartitioned(record, new))
                copied += 1
            if not page.has_more:
                break
            cursor = page.cursor
    return copied


def _repartitioned(record: EventLogRecord, partition: str) -> EventLogEntry:
    """The record's event (a materialization or an observation) on `partition` instead."""
    entry = record.event_log_entry
    event = entry.get_dagster_event()
    data: StepMaterializationData | AssetObservationData
    if event.is_step_materialization:
        done = event.step_materialization_data
        old = done.materialization
        data = StepMaterializationData(dg.AssetMaterialization(
            asset_key=old.asset_key, description=old.description, metadata=old.metadata, partition=partition,
            tags=old.tags), done.asset_lineage)
    else:
        seen = event.asset_observation_data.asset_observation
        data = AssetObservationData(dg.AssetObservation(
            asset_key=seen.asset_key, description=seen.description, metadata=seen.metadata, partition=partition,
            tags=seen.tags))
    return entry._replace(dagster_event=event._replace(event_specific_data=data))
