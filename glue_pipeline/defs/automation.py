"""What runs by itself (the Dagster daemon): the hourly discovery, the sync of every tenant after
each discovery, the overview after any run that syncs tenants, and the closing of sync runs whose
Dagster run ended without finishing them (monitoring.py)."""

import dagster as dg
from dagster._core.storage.tags import PARENT_RUN_ID_TAG

from glue_pipeline.defs.discovery import discover_job
from glue_pipeline.defs.monitoring import close_ended_sync_runs
from glue_pipeline.defs.overview import overview_job
from glue_pipeline.defs.partitions import TENANT_ASSET, all_tenants_run_requests
from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.defs.tenants import sync_job
from glue_pipeline.render import terminal_text
from glue_pipeline.store.parked import left_out_of_full_syncs
from glue_pipeline.store.partition_keys import partitions_of

TENANT_KEY = dg.AssetKey(TENANT_ASSET)

# Runs the command line starts carry this tag: the command runs discovery, the sync and the
# overview itself, so the sensors do not chain them again (a re-execution from the UI is chained).
COMMAND_TAG = "glue-pipeline/started_by"
COMMAND = "command"


def chained_by_the_command(run: dg.DagsterRun) -> bool:
    return run.tags.get(COMMAND_TAG) == COMMAND and PARENT_RUN_ID_TAG not in run.tags


hourly_schedule = dg.ScheduleDefinition(
    name="hourly_sync", job=discover_job, cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: discover tenants; the sync of all of them follows (sync_after_discovery).")


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[discover_job],
                      request_job=sync_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="After each discovery, sync every tenant in one run, but the paused "
                                  "and parked ones (a run per stretch of tenants between them).")
def sync_after_discovery(context: dg.RunStatusSensorContext,
                         store: StoreResource) -> list[dg.RunRequest] | dg.SkipReason:
    if chained_by_the_command(context.dagster_run):
        return dg.SkipReason(f"run {context.dagster_run.run_id} was started by a command, which syncs itself")
    left_out = left_out_of_full_syncs(store.engine)
    if left_out:
        context.log.info(terminal_text(f"{len(left_out)} tenants left out: " + ", ".join(
            f"{tenant_id} {why}" for tenant_id, why in sorted(left_out.items()))))
    return all_tenants_run_requests(context.instance, set(partitions_of(store.engine, left_out).values()),
                                    run_key=context.dagster_run.run_id)


def syncs_tenants(run: dg.DagsterRun) -> bool:
    """Whether the run materializes tenant partitions: a sync_tenants run, or any run whose asset
    selection holds tenant_contacts (a partition launched or re-executed from the asset's page, a
    backfill)."""
    return run.job_name == sync_job.name or TENANT_KEY in (run.asset_selection or set())


OVERVIEW_SENSOR_INTERVAL_S = 10


def _overview_after(status: dg.DagsterRunStatus) -> dg.SensorDefinition:
    # Every job of the code location is watched: partition runs from the UI run as __ASSET_JOB.
    # Every 10 s rather than Dagster's 30: the tables across tenants follow a sync promptly, and a
    # tick that finds no finished run costs one read of the event log.
    @dg.run_status_sensor(name=f"overview_after_sync_{status.value.lower()}", run_status=status,
                          request_job=overview_job, default_status=dg.DefaultSensorStatus.RUNNING,
                          minimum_interval_seconds=OVERVIEW_SENSOR_INTERVAL_S,
                          description="After any run that syncs tenants (sync_tenants, a partition run or "
                                      "re-execution from the UI, a backfill), refresh the tables across all "
                                      "tenants.")
    def _sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
        if not syncs_tenants(context.dagster_run):
            return dg.SkipReason(f"run {context.dagster_run.run_id} of {context.dagster_run.job_name} syncs no tenant")
        if chained_by_the_command(context.dagster_run):
            return dg.SkipReason(f"run {context.dagster_run.run_id} was started by a command, which refreshes "
                                 "the overview itself")
        return dg.RunRequest(run_key=context.dagster_run.run_id)
    return _sensor


SENSORS = [sync_after_discovery, _overview_after(dg.DagsterRunStatus.SUCCESS),
           _overview_after(dg.DagsterRunStatus.FAILURE), close_ended_sync_runs]
