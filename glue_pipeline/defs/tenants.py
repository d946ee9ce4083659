"""The per-tenant sync: `tenant_contacts`, one partition a tenant, and the sync_tenants job.

A run may carry one tenant or all of them (a partition range), so the hourly sync costs the work
and not a run start per tenant; a large run spreads its tenants over worker processes
(workers.py). Each tenant is one partition of one asset, whose materialization carries all its
tables: Dagster writes an event per asset and partition when a run is planned and when it
materializes, so one asset per table would multiply that bookkeeping by the number of tables.
Inside the run each tenant succeeds or fails on its own: a succeeded tenant's partition is
materialized as it finishes; a failed tenant's is not, its partition gets an observation naming
the tenant, the cause and the fix, and the run fails at the end, so Dagster shows exactly those
partitions as failed, ready to re-run alone. A tenant that fails again for the same permanent
cause (consent revoked, tenant gone, permission missing) is parked: when only parked tenants
failed, the run succeeds with a warning instead (see _parked). A tenant unchanged since its last
sync keeps its last materialization, except in a failing run (see tenant_sync).
"""

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import dagster as dg

from glue_pipeline.defs.metadata import table_schema
from glue_pipeline.defs.monitoring import reconcile_sync_runs
from glue_pipeline.defs.overview import tenant_report_evaluations
from glue_pipeline.defs.partitions import SYNC_POOL, TENANT_ASSET, TENANTS
from glue_pipeline.defs.resources import GraphResource, StoreResource, SyncResource
from glue_pipeline.graph.errors import CAUSE_FIXES, CAUSE_TEXT
from glue_pipeline.render import markdown_cell, terminal_text
from glue_pipeline.sources import direct_credentials
from glue_pipeline.store import partition_keys, writer
from glue_pipeline.store.engine import Engine, store_error
from glue_pipeline.store.parked import PERMANENT_CAUSES, previous_causes
from glue_pipeline.store.runs import start_run
from glue_pipeline.sync import OnDone, TenantOutcome, finish_run, planning_order
from glue_pipeline.workers import SyncSpec, sync_batch

TENANT_GROUP = "tenant_sync"
TENANT_SPEC = dg.AssetSpec(
    TENANT_ASSET, deps=["customer_tenants"], group_name=TENANT_GROUP, partitions_def=TENANTS,
    skippable=True, description="Per tenant: users, domains, licenses and mailbox usage read from "
    "Graph; the organization and contact matches, duplicate risk and differences; the contacts "
    "written to the store with sync-log rows. Each materialization shows the tenant's tables "
    "(row counts, previews of the match tables, their Parquet files) and its counts.")

PROGRESS_STEPS = 50  # progress lines in the run's log per pass (each is an event Dagster stores)


def _report_progress(context: dg.AssetExecutionContext, show: bool) -> OnDone:
    """Failures are logged at once; other tenants about every 2% of the pass (and `show`
    prints every tenant on stderr)."""
    def on_done(outcome: TenantOutcome, done: int, total: int) -> None:
        line = f"tenants done {done}/{total}: {terminal_text(outcome.display_name)} {outcome.status}"
        if outcome.status == "failed":
            context.log.warning(f"{line}: {terminal_text(outcome.error)}")
        elif done == total or done % max(1, total // PROGRESS_STEPS) == 0:
            context.log.info(line)
        if show:
            print(line, file=sys.stderr, flush=True)
    return on_done


def _materialization(outcome: TenantOutcome, partition: str) -> dg.AssetMaterialization:
    """A tenant that finished: its counts, and its tables (row counts, previews, files). An
    unchanged tenant was not re-planned, so its tables are those of its last materialization.
    Each materialization is an event Dagster stores, so unchanged tenants are materialized only
    when the run fails (see tenant_sync)."""
    metadata: dict[str, Any] = {k: v for k, v in outcome.summary().items() if v is not None}
    metadata["unchanged since last sync"] = outcome.unchanged
    if outcome.planned_users is not None:  # only the users that changed (and those held) were planned
        metadata["users planned again"] = outcome.planned_users
    if "contact_matches" in outcome.report:  # the asset's own table, in Dagster's Columns view
        metadata["dagster/column_schema"] = table_schema(outcome.report["contact_matches"]["columns"])
    for table, described in outcome.report.items():
        metadata[f"{table} rows"] = described["rows"]
        metadata[f"{table} columns"] = table_schema(described["columns"])  # dagster/column_schema: one per event
        if described["preview"]:
            metadata[table] = dg.MetadataValue.md(described["preview"])
        if described["path"]:
            metadata[f"{table} file"] = dg.MetadataValue.path(described["path"])
    return dg.AssetMaterialization(asset_key=TENANT_ASSET, partition=partition, metadata=metadata)


Event = tuple[Any, ...]  # ("tenant", outcome, done, total) or ("done", outcomes)


def _in_background(work: Callable[[OnDone], list[TenantOutcome]]) -> Iterator[Event]:
    """Run `work(on_done)` in a thread; yield ("tenant", outcome, done, total) as tenants finish,
    then ("done", outcomes). Dagster events are logged from the step's own thread as they come."""
    events: queue.Queue[Event] = queue.Queue()

    def run() -> None:
        try:
            events.put(("done", work(lambda *args: events.put(("tenant", *args)))))
        except BaseException as exc:  # re-raised in the step's thread
            events.put(("error", exc))

    threading.Thread(target=run, name="glue-sync-batch", daemon=True).start()
    while True:
        event = events.get()
        if event[0] == "error":
            raise event[1]
        yield event
        if event[0] == "done":
            return


def _run_tenants(context: dg.AssetExecutionContext, engine: Engine) -> dict[str, str]:
    """The run's tenants: tenant id -> partition key. A partition no tenant has in the store
    (a store reset under an old instance) is named in the log and not synced."""
    with engine.connect() as conn:
        tenant_of = partition_keys.tenants_of(conn, context.partition_keys)
    unknown = [key for key in context.partition_keys if key not in tenant_of]
    if unknown:
        context.log.warning(terminal_text(f"{len(unknown)} partitions name no tenant of the store and are not "
                                          f"synced: {', '.join(unknown[:20])}; run discover_tenants first"))
    return {tenant_of[key]: key for key in context.partition_keys if key in tenant_of}


def _listed_tenants(context: dg.AssetExecutionContext, engine: Engine, keys: dict[str, str]) -> list[str]:
    """The run's tenants (`keys`: tenant id -> partition key) that the partner account still lists
    and that no operator paused."""
    requested = list(keys)
    with engine.connect() as conn:
        vanished = writer.vanished_tenants(conn, requested)
        paused = writer.paused_tenants(conn, requested)
    for tenant_id in vanished:
        context.log.warning(f"tenant {terminal_text(tenant_id)} is no longer listed by the partner account: "
                            "not synced")
    if paused:
        named = ", ".join(f"{name or tenant_id} ({tenant_id})" for tenant_id, name in sorted(paused.items()))
        context.log.info(terminal_text(f"{len(paused)} paused tenant(s) not synced: {named}; resume one with "
                                       "`glue-pipeline tenant resume ID`"))
    return [t for t in requested if t not in vanished and t not in paused]


def _sync_spec(run_id: str, graph: GraphResource, store: StoreResource, sync: SyncResource) -> SyncSpec:
    """What each process of the run needs to sync tenants (the sync may have its own concurrency)."""
    settings = graph.settings if sync.concurrency is None else replace(graph.settings, concurrency=sync.concurrency)
    return SyncSpec(settings, direct_credentials(graph.sources), store.url, run_id, sync.settings.options,
                    sync.settings.cache, sync.settings.tables)


def _record_totals(context: dg.AssetExecutionContext, store: StoreResource, outcomes: list[TenantOutcome]) -> None:
    try:
        finish_run(store.engine, context.run_id, outcomes)
    except Exception as exc:  # a store gone mid-run: the tenants' results still decide
        gone = store_error(exc, store.url)
        if gone is None:
            raise
        context.log.warning(terminal_text(f"the run's totals could not be recorded in the store: {gone}"))


def _parked(context: dg.AssetExecutionContext, store: StoreResource, failed: list[TenantOutcome]) -> set[str]:
    """The failed tenants that are parked: failed for a permanent cause that their previous result
    (in an earlier run) already recorded. Such a failure alone does not fail the run."""
    permanent = [o for o in failed if o.cause in PERMANENT_CAUSES]
    if not permanent:
        return set()
    try:
        before = previous_causes(store.engine, context.run_id, [o.tenant_id for o in permanent])
    except Exception as exc:  # a store gone mid-run: no failure counts as known, so the run fails
        gone = store_error(exc, store.url)
        if gone is None:
            raise
        context.log.warning(terminal_text(f"the tenants' earlier results could not be read: {gone}"))
        return set()
    return {o.tenant_id for o in permanent if before.get(o.tenant_id) == o.cause}


def _failure_line(outcome: TenantOutcome, parked: bool) -> str:
    """One failed tenant on one line: name, id, cause (parked or not), the error and the fix."""
    cause = outcome.cause or "unexpected"
    error = outcome.error or CAUSE_TEXT[cause]
    fix = "" if "Fix: " in error else f" Fix: {CAUSE_FIXES[cause]}"
    return terminal_text(f"- {outcome.display_name} ({outcome.tenant_id}): {cause}{', parked' if parked else ''}: "
                         f"{error}{fix}")


def _failure_observation(outcome: TenantOutcome, parked: bool, partition: str) -> dg.AssetObservation:
    """What the failed tenant's partition shows: its name, cause and fix, and whether it is parked.
    Dagster marks the partition failed only in a run that fails; the observation is there either way."""
    cause = outcome.cause or "unexpected"
    return dg.AssetObservation(
        asset_key=TENANT_ASSET, partition=partition,
        description=markdown_cell(f"{outcome.display_name}: {CAUSE_TEXT[cause]} ({cause}). "
                                  f"Fix: {CAUSE_FIXES[cause]}"),
        metadata={"tenant_id": outcome.tenant_id, "display_name": terminal_text(outcome.display_name),
                  "status": outcome.status, "cause": cause, "fix": CAUSE_FIXES[cause], "parked": parked,
                  "error": terminal_text(outcome.error)})


def _run_failure(failed: list[TenantOutcome], total: int, parked: set[str]) -> dg.Failure:
    known = f" ({len(parked)} of them parked: their cause was already known)" if parked else ""
    return dg.Failure(
        description=f"{len(failed)} of {total} tenants failed{known}; their partitions are marked "
                    "failed and can be re-run alone:\n"
                    + "\n".join(_failure_line(o, o.tenant_id in parked) for o in failed),
        metadata={"failed_tenants": dg.MetadataValue.json([o.tenant_id for o in failed]),
                  "causes": dg.MetadataValue.json({o.tenant_id: o.cause for o in failed}),
                  "parked_tenants": dg.MetadataValue.json(sorted(parked))})


def _parked_warning(failed: list[TenantOutcome], total: int) -> str:
    return (f"{len(failed)} of {total} tenants failed for a permanent cause an earlier run already recorded: "
            "they are parked, so the run succeeds; check no_parked_tenants lists them until they sync again:\n"
            + "\n".join(_failure_line(o, True) for o in failed))


def _tenant_checks(context: dg.AssetExecutionContext, materialized: list[TenantOutcome],
                   keys: dict[str, str]) -> Iterator[dg.AssetCheckEvaluation]:
    """The checks of each tenant the run materialized, on its own partition (`keys`: tenant id ->
    partition key): whether its reports conceal user names. Only those: a tenant's result refers to
    its latest materialization, which an unchanged tenant keeps, with its result."""
    return tenant_report_evaluations(context.instance, {keys[o.tenant_id]: o.reports_concealed for o in materialized})


# Tenants whose check is evaluated together (one read of their latest materializations).
CHECK_BATCH = 50
SyncEvents = Iterator[dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckEvaluation]


@dg.multi_asset(specs=[TENANT_SPEC], backfill_policy=dg.BackfillPolicy.single_run(), pool=SYNC_POOL,
                description="Extract, match and write each tenant of the run.")
def tenant_sync(context: dg.AssetExecutionContext, graph: GraphResource, store: StoreResource,
                sync: SyncResource) -> SyncEvents:
    keys = _run_tenants(context, store.engine)
    tenant_ids = _listed_tenants(context, store.engine, keys)
    spec = _sync_spec(context.run_id, graph, store, sync)
    reconcile_sync_runs(store.engine, context.instance, current=context.run_id)
    start_run(store.engine, context.run_id, len(tenant_ids))
    progress = _report_progress(context, sync.show_progress)
    outcomes: list[TenantOutcome] = []
    unchanged: list[TenantOutcome] = []
    checking: list[TenantOutcome] = []  # materialized, their check not yet evaluated

    ordered = planning_order(store.engine, tenant_ids)

    def work(on_done: OnDone) -> list[TenantOutcome]:
        return sync_batch(spec, ordered, sync.settings.processes, on_done, store.engine)

    for event in _in_background(work):
        if event[0] == "tenant":
            outcome = event[1]
            progress(*event[1:])
            if outcome.unchanged:
                unchanged.append(outcome)
            elif outcome.status != "failed":  # final: only failures are ever retried
                checking.append(outcome)
                yield _materialization(outcome, keys[outcome.tenant_id])
                if len(checking) >= CHECK_BATCH:  # while the other tenants sync: not all at the end
                    yield from _tenant_checks(context, checking, keys)
                    checking = []
        else:
            outcomes = event[1]
    _record_totals(context, store, outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    parked = _parked(context, store, failed)
    yield from (_failure_observation(o, o.tenant_id in parked, keys[o.tenant_id]) for o in failed)
    failing = len(parked) < len(failed)
    if unchanged and not failing:
        context.log.info(f"{len(unchanged)} tenants unchanged since their last sync: not materialized "
                         "again, their last materialization still holds")
    if failing:
        # Dagster marks every partition a failed run planned and did not materialize as failed:
        # the unchanged tenants are materialized so that only the failed ones are.
        yield from (_materialization(o, keys[o.tenant_id]) for o in unchanged)
        checking += unchanged
    yield from _tenant_checks(context, checking, keys)
    if failing:
        raise _run_failure(failed, len(outcomes), parked)
    if failed:
        context.log.warning(_parked_warning(failed, len(outcomes)))


# Without the tenants' reports check: the sync evaluates it with each materialization it makes.
sync_job = dg.define_asset_job("sync_tenants", selection=dg.AssetSelection.groups(TENANT_GROUP).without_checks(),
                               partitions_def=TENANTS,
                               description="Sync tenants: one, a range, or all in one run.")
