"""The whole Dagster graph in one place.

    customer_tenants  (discovery; keeps the `tenants` dynamic partitions in step)
           |
    tenant_users, tenant_licenses, tenant_mailbox_usage      (per tenant: Graph extracts)
           |
    tenant_organization_match -> tenant_contact_matches      (per tenant: match tables)
           |
    tenant_contacts                                          (per tenant: contacts written)

The per-tenant assets are computed together by one multi-asset: a run may carry one tenant or
all of them (a partition range, one Python process), so the hourly sync costs the work and not
a run start per tenant. Inside the run each tenant succeeds or fails on its own: a succeeded
tenant's partitions are materialized as it finishes; a failed tenant's are not, and the run
fails at the end, so Dagster shows exactly those partitions as failed, ready to re-run alone.
"""



import sys
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from glue_pipeline.extract import discover_tenants
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.settings import Settings, settings_from_env
from glue_pipeline.store import writer
from glue_pipeline.store.schema import create_tables, make_engine
from glue_pipeline.sync import (
    SyncContext,
    TenantOutcome,
    finish_run,
    start_run,
    sync_tenants,
    write_tables,
)

TENANTS = dg.DynamicPartitionsDefinition(name="tenants")
TENANT_GROUP = "tenant_sync"


class GlueResource(dg.ConfigurableResource):
    """Settings come from environment variables (README 'Configuration'); secrets never pass
    through Dagster config."""

    concurrency: int | None = None
    show_progress: bool = False

    def settings(self) -> Settings:
        return settings_from_env()

    def client(self, settings: Settings) -> GraphClient:
        return GraphClient(settings.graph)


def table_metadata(frame: pd.DataFrame, path: object | None = None, preview_rows: int = 10) -> dict:
    """Row count, column schema and a preview, as the Dagster UI shows them."""
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])
    preview = frame.head(preview_rows).astype(str).to_markdown(index=False) if len(frame) else "(empty)"
    metadata: dict = {"dagster/row_count": len(frame), "dagster/column_schema": schema,
                      "preview": dg.MetadataValue.md(preview)}
    if path is not None:
        metadata["path"] = dg.MetadataValue.path(str(path))
    return metadata


@dg.asset(group_name="discovery", description="Customer tenants of the partner account (DAP contracts "
          "and GDAP relationships, merged by tenant id); keeps the `tenants` partitions in step.")
def customer_tenants(context: dg.AssetExecutionContext, glue: GlueResource) -> dg.MaterializeResult:
    settings = glue.settings()
    frame = discover_tenants(glue.client(settings))
    engine = make_engine(settings.store_url)
    create_tables(engine)
    with engine.begin() as conn:
        vanished = writer.record_discovered_tenants(conn, frame, writer.utcnow())
    known = set(context.instance.get_dynamic_partitions(TENANTS.name))
    new = [t for t in frame["tenant_id"] if t not in known]
    if new:
        context.instance.add_dynamic_partitions(TENANTS.name, new)
    if vanished:
        context.log.warning(f"{len(vanished)} tenants are no longer listed by the partner account and "
                            f"will not be synced: {', '.join(vanished)}")
    path = settings.data_dir / "customer_tenants.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return dg.MaterializeResult(metadata={**table_metadata(frame, path), "new_tenants": len(new),
                                          "vanished_tenants": dg.MetadataValue.json(vanished)})


# Per-tenant tables: asset name -> (table written by the sync, description).
TENANT_TABLES = {
    "tenant_users": ("users", "Users of the tenant as Graph returns them ($select of the mapped fields)."),
    "tenant_licenses": ("licenses", "Subscribed SKUs: consumed, enabled, suspended, warning, unused."),
    "tenant_mailbox_usage": ("mailbox_usage", "The mailbox usage report (D7), parsed by column name."),
    "tenant_organization_match": ("organization_match", "The tenant's organization: status, method, reason."),
    "tenant_contact_matches": ("contact_matches", "Each user's contact: match, create, held, skipped, "
                                                  "ambiguous, with the reason."),
}
_DEPS = {
    "tenant_users": ["customer_tenants"], "tenant_licenses": ["customer_tenants"],
    "tenant_mailbox_usage": ["customer_tenants"], "tenant_organization_match": ["customer_tenants"],
    "tenant_contact_matches": ["tenant_users", "tenant_organization_match"],
    "tenant_contacts": ["tenant_contact_matches", "tenant_licenses", "tenant_mailbox_usage"],
}
TENANT_SPECS = [
    dg.AssetSpec(name, deps=_DEPS[name], group_name=TENANT_GROUP, partitions_def=TENANTS,
                 skippable=True, description=TENANT_TABLES.get(name, ("", "Contacts created and updated "
                                                                 "in the store, with sync-log rows."))[1])
    for name in _DEPS
]


def _report_progress(context: dg.AssetExecutionContext, show: bool):  # type: ignore[no-untyped-def]
    def on_done(outcome: TenantOutcome, done: int, total: int) -> None:
        line = f"tenants done {done}/{total}: {outcome.display_name} {outcome.status}"
        context.log.info(line)
        if show:
            print(line, file=sys.stderr, flush=True)
    return on_done


def _materializations(outcome: TenantOutcome, paths: dict) -> Iterator[dg.AssetMaterialization]:
    """One materialization per asset for a tenant that finished, with its table as metadata."""
    for name, (table, _description) in TENANT_TABLES.items():
        frame = outcome.tables[table]
        yield dg.AssetMaterialization(
            asset_key=name, partition=outcome.tenant_id,
            metadata=table_metadata(frame, paths.get(f"{table}/{outcome.tenant_id}")))
    yield dg.AssetMaterialization(
        asset_key="tenant_contacts", partition=outcome.tenant_id,
        metadata={k: v for k, v in outcome.summary().items() if v is not None})


@dg.multi_asset(specs=TENANT_SPECS, backfill_policy=dg.BackfillPolicy.single_run(),
                description="Extract, match and write each tenant of the run.")
def tenant_sync(context: dg.AssetExecutionContext, glue: GlueResource):
    settings = glue.settings()
    engine = make_engine(settings.store_url)
    create_tables(engine)
    requested = list(context.partition_keys)
    with engine.connect() as conn:
        vanished = writer.vanished_tenants(conn, requested)
        organizations = writer.read_organizations(conn)
    for tenant_id in vanished:
        context.log.warning(f"tenant {tenant_id} is no longer listed by the partner account: not synced")
    tenant_ids = [t for t in requested if t not in vanished]
    ctx = SyncContext(glue.client(settings), engine, context.run_id, organizations)
    start_run(engine, context.run_id, len(tenant_ids))
    outcomes = sync_tenants(ctx, tenant_ids, glue.concurrency or settings.graph.concurrency,
                            _report_progress(context, glue.show_progress))
    finish_run(engine, context.run_id, outcomes)
    ok = [o for o in outcomes if o.status != "failed"]
    paths = write_tables(ok, settings.data_dir)
    for outcome in ok:
        yield from _materializations(outcome, paths)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(outcomes)} tenants failed; their partitions are marked "
                        "failed and can be re-run alone:\n"
                        + "\n".join(f"- {o.display_name} ({o.tenant_id}): {o.error}" for o in failed),
            metadata={"failed_tenants": dg.MetadataValue.json([o.tenant_id for o in failed])})


discover_job = dg.define_asset_job("discover_tenants", selection=[customer_tenants],
                                   description="Find the partner's customer tenants.")
sync_job = dg.define_asset_job("sync_tenants", selection=dg.AssetSelection.groups(TENANT_GROUP),
                               partitions_def=TENANTS,
                               description="Sync tenants: one, a range, or all in one run.")

hourly_schedule = dg.ScheduleDefinition(
    name="hourly_sync", job=discover_job, cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: discover tenants; the sync of all of them follows (sync_after_discovery).")


def all_tenants_run_request(instance: dg.DagsterInstance, run_key: str | None = None) -> dg.RunRequest | dg.SkipReason:
    """One run over every tenant partition, as a partition range."""
    keys = instance.get_dynamic_partitions(TENANTS.name)
    if not keys:
        return dg.SkipReason("no tenants discovered yet")
    return dg.RunRequest(run_key=run_key, tags={
        "dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[discover_job],
                      request_job=sync_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="After each discovery, sync every tenant in one run.")
def sync_after_discovery(context: dg.RunStatusSensorContext):  # type: ignore[no-untyped-def]
    return all_tenants_run_request(context.instance, run_key=context.dagster_run.run_id)


defs = dg.Definitions(
    assets=[customer_tenants, tenant_sync],
    jobs=[discover_job, sync_job],
    schedules=[hourly_schedule],
    sensors=[sync_after_discovery],
    resources={"glue": GlueResource()},
)
