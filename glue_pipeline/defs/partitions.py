"""The `tenants` dynamic partitions (one a customer tenant), one run over all of them, and the
concurrency pool of the runs that sync them."""

from collections.abc import Collection, Sequence

import dagster as dg

TENANT_PARTITIONS = "tenants"
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
