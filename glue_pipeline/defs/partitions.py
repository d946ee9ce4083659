"""The `tenants` dynamic partitions (one a customer tenant), and one run over all of them."""

from collections.abc import Sequence

import dagster as dg

TENANT_PARTITIONS = "tenants"
TENANTS = dg.DynamicPartitionsDefinition(name=TENANT_PARTITIONS)


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
