"""Keeping the store's run bookkeeping true to Dagster's: a sync_runs row still `running` whose
Dagster run has ended (run monitoring failed it after its process died, someone cancelled it, or
it is gone) becomes `failed`, with the cause Dagster recorded. Done by a sensor every minute and
at the start of every sync run, so the next run proceeds from a true state either way."""

from __future__ import annotations

import dagster as dg
from dagster._core.events import DagsterEventType

from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.render import terminal_text
from glue_pipeline.store import heartbeats
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.runs import fail_run, running_runs

ENDED = {dg.DagsterRunStatus.FAILURE: "failed", dg.DagsterRunStatus.CANCELED: "was cancelled"}


def _cause(instance: dg.DagsterInstance, run_id: str, status: dg.DagsterRunStatus) -> str:
    """Why the Dagster run ended, from its run failure or cancellation event."""
    kinds = {DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}
    records = instance.get_records_for_run(run_id, of_type=kinds, ascending=False, limit=1).records
    message = records[0].event_log_entry.message if records else ""
    return f"the Dagster run {ENDED[status]} before the sync finished: {message or status.value}"


def reconcile_sync_runs(engine: Engine, instance: dg.DagsterInstance, current: str | None = None) -> list[str]:
    """Fail every running sync_runs row (but `current`'s) whose Dagster run has ended or is
    unknown to the instance; returns their run ids."""
    failed = []
    for run_id in running_runs(engine):
        if run_id == current:
            continue
        run = instance.get_run_by_id(run_id)
        if run is None:
            cause = "the Dagster run is not in this instance (deleted, or another instance's): closed as failed"
        elif run.status in ENDED:
            cause = _cause(instance, run_id, run.status)
        else:
            continue
        if fail_run(engine, run_id, cause):
            failed.append(run_id)
        heartbeats.end(engine, run_id)  # a dead process's last beat
    return failed


@dg.sensor(name="close_ended_sync_runs", minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Every minute: a sync run whose Dagster run ended without finishing it (its process "
                       "died and run monitoring failed it, or it was cancelled) is recorded as failed in the "
                       "store, with the cause.")
def close_ended_sync_runs(context: dg.SensorEvaluationContext, store: StoreResource) -> dg.SkipReason:
    closed = reconcile_sync_runs(store.engine, context.instance)
    if closed:
        context.log.warning(terminal_text(f"sync runs closed as failed: {', '.join(closed)}"))
    return dg.SkipReason(f"{len(closed)} ended sync runs closed" if closed else "no ended sync run left open")
