"""Discovery: the partner account's customer tenants, which keep the `tenants` partitions in step."""

import dagster as dg

from glue_pipeline.defs.metadata import table_metadata
from glue_pipeline.defs.partitions import TENANT_PARTITIONS, ensure_sync_pool, tenant_keys
from glue_pipeline.defs.resources import GraphResource, StoreResource, SyncResource
from glue_pipeline.extract import discover_tenants
from glue_pipeline.render import terminal_text
from glue_pipeline.store import writer
from glue_pipeline.store.engine import write_transaction


@dg.asset(group_name="discovery", description="Customer tenants of the partner account (DAP contracts "
          "and GDAP relationships, merged by tenant id); keeps the `tenants` partitions in step.")
def customer_tenants(context: dg.AssetExecutionContext, graph: GraphResource, store: StoreResource,
                     sync: SyncResource) -> dg.MaterializeResult[None]:
    frame = discover_tenants(graph.client, graph.direct_logins, partner=graph.partner_connected)
    with write_transaction(store.engine) as conn:
        vanished = writer.record_discovered_tenants(conn, frame, writer.utcnow())
    ensure_sync_pool(context.instance)
    known = set(tenant_keys(context.instance))
    new = [t for t in frame["tenant_id"] if t not in known]
    if new:
        context.instance.add_dynamic_partitions(TENANT_PARTITIONS, new)
    if vanished:
        context.log.warning(f"{len(vanished)} tenants are no longer listed by the partner account and "
                            f"will not be synced: {terminal_text(', '.join(vanished))}")
    path = sync.settings.tables / "customer_tenants.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return dg.MaterializeResult(metadata={**table_metadata(frame, path), "new_tenants": len(new),
                                          "vanished_tenants": dg.MetadataValue.json(vanished)})


discover_job = dg.define_asset_job("discover_tenants", selection=[customer_tenants],
                                   description="Find the partner's customer tenants.")
