"""Discovery: the partner account's customer tenants, which keep the `tenants` partitions in step."""

import dagster as dg

from glue_pipeline.defs.metadata import table_metadata
from glue_pipeline.defs.partitions import ensure_sync_pool, keep_partitions_in_step
from glue_pipeline.defs.resources import GraphResource, StoreResource, SyncResource
from glue_pipeline.extract import discover_tenants
from glue_pipeline.render import terminal_text
from glue_pipeline.store import writer
from glue_pipeline.store.engine import write_transaction
from glue_pipeline.store.partition_keys import assign_partition_keys


@dg.asset(group_name="discovery", description="Customer tenants of the partner account (DAP contracts "
          "and GDAP relationships, merged by tenant id); keeps the `tenants` partitions in step: one a "
          "tenant, keyed by its name when first found and a short id, as `Contoso Ltd (3f2a9c1e)`.")
def customer_tenants(context: dg.AssetExecutionContext, graph: GraphResource, store: StoreResource,
                     sync: SyncResource) -> dg.MaterializeResult[None]:
    frame = discover_tenants(graph.client, graph.direct_logins, partner=graph.partner_connected)
    with write_transaction(store.engine) as conn:
        vanished = writer.record_discovered_tenants(conn, frame, writer.utcnow())
        keys = assign_partition_keys(conn)
    ensure_sync_pool(context.instance)
    new = keep_partitions_in_step(context.instance, keys, list(frame["tenant_id"]))
    frame.insert(0, "partition", frame["tenant_id"].map(keys))
    if vanished:
        context.log.warning(f"{len(vanished)} tenants are no longer listed by the partner account and "
                            f"will not be synced: {terminal_text(', '.join(vanished))}")
    path = sync.settings.tables / "customer_tenants.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return dg.MaterializeResult(metadata={**table_metadata(frame, path), "new_tenants": new,
                                          "vanished_tenants": dg.MetadataValue.json(vanished)})


discover_job = dg.define_asset_job("discover_tenants", selection=[customer_tenants],
                                   description="Find the partner's customer tenants.")
