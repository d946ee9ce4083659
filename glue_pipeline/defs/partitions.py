"""The `tenants` dynamic partitions (one a customer tenant), one run over all of them, and the
concurrency pool of the runs that sync them."""

from collections.abc import Sequence

import dagster as dg

TENANT_PARTITIONS = "tenants"
TENANTS = dg.DynamicPartitionsDefinition(name=TENANT_PARTITIONS)

# The concurrency pool of every run that syncs tenants, whatever launched it: the instance limits
# how many such runs are in progress at once (dagster.yaml, concurrency > pools).
SYNC_POOL = "microsoft_graph"


def ensure_sync_pool(instance: dg.DagsterInstance) -> None:
    """Give the pool its limit (the instance's default) before the first sync is queued: the run
    queue applies a pool's limit only from the pass after the one that first meets the pool, so
    a first batch of queued syncs would all start at once."""
    instance.event_log_storage.initialize_concurrency_limit_to_default(SYNC_POOL)


def tenant_keys(instance: dg.DagsterInstance) -> Sequence[str]:
    """Every tenant partition, in the order discovery added them."""
    return instance.get_dynamic_partitions(TENANT_PARTITIONS)


def all_tenants_run_request(instance: dg.DagsterInstance, run_key: str | None = None) -> dg.RunRequest | dg.SkipReason:
    """One run over every tenant partition, as a partition range."""
    keys = tenant_keys(instance)
    if not keys:
        return dg.SkipReason("no tenants discovered yet")
    return dg.RunRequest(run_key=run_key, tags={
        "dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
