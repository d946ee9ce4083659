"""What runs by itself (the Dagster daemon): the hourly discovery, the sync of every tenant after
each discovery, and the overview after each sync."""

import dagster as dg

from glue_pipeline.defs.discovery import discover_job
from glue_pipeline.defs.overview import overview_job
from glue_pipeline.defs.partitions import all_tenants_run_request
from glue_pipeline.defs.tenants import sync_job

hourly_schedule = dg.ScheduleDefinition(
    name="hourly_sync", job=discover_job, cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: discover tenants; the sync of all of them follows (sync_after_discovery).")


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[discover_job],
                      request_job=sync_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="After each discovery, sync every tenant in one run.")
def sync_after_discovery(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    return all_tenants_run_request(context.instance, run_key=context.dagster_run.run_id)


def _overview_after(status: dg.DagsterRunStatus) -> dg.SensorDefinition:
    @dg.run_status_sensor(name=f"overview_after_sync_{status.value.lower()}", run_status=status,
                          monitored_jobs=[sync_job], request_job=overview_job,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="After each sync, refresh the tables across all tenants.")
    def _sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest:
        return dg.RunRequest(run_key=context.dagster_run.run_id)
    return _sensor


SENSORS = [sync_after_discovery, _overview_after(dg.DagsterRunStatus.SUCCESS),
           _overview_after(dg.DagsterRunStatus.FAILURE)]
