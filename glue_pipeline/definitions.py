"""The whole Dagster graph in one place.

    customer_tenants  (discovery; keeps the `tenants` dynamic partitions in step)
           |
    tenant_contacts   (per tenant partition: Graph extracts, match tables, contacts written)
           |
    organization_matches, contacts_needing_review            (across tenants, with asset checks)

Jobs: discover_tenants, sync_tenants, refresh_overview, match_decision (record an analyst's
decision), doctor. The hourly schedule runs discovery; sensors chain the sync and the overview.

A run may carry one tenant or all of them (a partition range), so the hourly sync costs the
work and not a run start per tenant; a large run spreads its tenants over worker processes
(workers.py). Each tenant is one partition of one asset, whose materialization carries all its
tables: Dagster writes an event per asset and partition when a run is planned and when it
materializes, so one asset per table would multiply that bookkeeping by the number of tables.
Inside the run each tenant succeeds or fails on its own: a succeeded tenant's partition is
materialized as it finishes; a failed tenant's is not, and the run fails at the end, so Dagster
shows exactly those partitions as failed, ready to re-run alone. A tenant unchanged since its
last sync keeps its last materialization, except in a failing run (see tenant_sync).
"""

import queue
import sys
import threading
from dataclasses import replace
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field as PydanticField

from glue_pipeline.decisions import apply_decision
from glue_pipeline.doctor import diagnose
from glue_pipeline.extract import CONCEALED_FIX, discover_tenants
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.matching.organizations import OPEN_STATUSES
from glue_pipeline.options import SyncOptions, config_path, load_options
from glue_pipeline.overview import duplicate_emails, held_overview, organization_overview
from glue_pipeline.render import markdown_table, terminal_text
from glue_pipeline.settings import Settings, settings_from_env, store_url_from_env
from glue_pipeline.sources import (
    PARTNER_SOURCE,
    DirectSource,
    direct_credentials,
    disconnected_sources,
    load_direct_sources,
)
from glue_pipeline.store import writer
from glue_pipeline.store.engine import make_engine, store_error, write_transaction
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.sync import TenantOutcome, finish_run, start_run
from glue_pipeline.tables import preview
from glue_pipeline.workers import SyncSpec, sync_batch

TENANTS = dg.DynamicPartitionsDefinition(name="tenants")
TENANT_GROUP = "tenant_sync"


class GlueResource(dg.ConfigurableResource):
    """Connection settings come from environment variables (README 'Configuration'); secrets
    never pass through Dagster config. Sync options come from this resource's `options` when
    set, else from the configuration file (GLUE_CONFIG, or glue.yaml), else the defaults."""

    concurrency: int | None = None
    processes: int | None = None  # worker processes for a large sync (default GLUE_SYNC_PROCESSES)
    show_progress: bool = False
    options: SyncOptions | None = None

    def settings(self) -> Settings:
        return settings_from_env()

    def store_engine(self):  # type: ignore[no-untyped-def]
        """The store, created if new and brought to the schema's head; needs no Graph credentials."""
        engine = make_engine(store_url_from_env())
        upgrade_store(engine)
        return engine

    def sync_options(self) -> SyncOptions:
        return self.options or load_options(config_path())

    def direct_sources(self, engine) -> list[DirectSource]:  # type: ignore[no-untyped-def]
        """The configured direct-login sources that are not disconnected."""
        off = disconnected_sources(engine)
        return [s for s in load_direct_sources(config_path()) if s.name not in off]

    def client(self, settings: Settings, sources: list[DirectSource]) -> GraphClient:
        return GraphClient(settings.graph, direct_credentials=direct_credentials(sources))


def table_metadata(frame: pd.DataFrame, path: object | None = None, preview_rows: int = 10) -> dict:
    """Row count, column schema and a preview, as the Dagster UI shows them."""
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])
    metadata: dict = {"dagster/row_count": len(frame), "dagster/column_schema": schema,
                      "preview": dg.MetadataValue.md(preview(frame, preview_rows))}
    if path is not None:
        metadata["path"] = dg.MetadataValue.path(str(path))
    return metadata


@dg.asset(group_name="discovery", description="Customer tenants of the partner account (DAP contracts "
          "and GDAP relationships, merged by tenant id); keeps the `tenants` partitions in step.")
def customer_tenants(context: dg.AssetExecutionContext, glue: GlueResource) -> dg.MaterializeResult:
    settings = glue.settings()
    engine = glue.store_engine()
    sources = glue.direct_sources(engine)
    frame = discover_tenants(glue.client(settings, sources), [(s.name, s.tenant_id) for s in sources],
                             partner=PARTNER_SOURCE not in disconnected_sources(engine))
    with write_transaction(engine) as conn:
        vanished = writer.record_discovered_tenants(conn, frame, writer.utcnow())
    known = set(context.instance.get_dynamic_partitions(TENANTS.name))
    new = [t for t in frame["tenant_id"] if t not in known]
    if new:
        context.instance.add_dynamic_partitions(TENANTS.name, new)
    if vanished:
        context.log.warning(f"{len(vanished)} tenants are no longer listed by the partner account and "
                            f"will not be synced: {terminal_text(', '.join(vanished))}")
    path = settings.data_dir / "customer_tenants.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return dg.MaterializeResult(metadata={**table_metadata(frame, path), "new_tenants": len(new),
                                          "vanished_tenants": dg.MetadataValue.json(vanished)})


TENANT_ASSET = "tenant_contacts"
TENANT_SPEC = dg.AssetSpec(
    TENANT_ASSET, deps=["customer_tenants"], group_name=TENANT_GROUP, partitions_def=TENANTS,
    skippable=True, description="Per tenant: users, domains, licenses and mailbox usage read from "
    "Graph; the organization and contact matches, duplicate risk and differences; the contacts "
    "written to the store with sync-log rows. Each materialization shows the tenant's tables "
    "(row counts, previews of the match tables, their Parquet files) and its counts.")


PROGRESS_STEPS = 50  # progress lines in the run's log per pass (each is an event Dagster stores)


def _report_progress(context: dg.AssetExecutionContext, show: bool):  # type: ignore[no-untyped-def]
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


def _materialization(outcome: TenantOutcome) -> dg.AssetMaterialization:
    """A tenant that finished: its counts, and its tables (row counts, previews, files). An
    unchanged tenant was not re-planned, so its tables are those of its last materialization.
    Each materialization is an event Dagster stores, so unchanged tenants are materialized only
    when the run fails (see tenant_sync)."""
    metadata: dict = {k: v for k, v in outcome.summary().items() if v is not None}
    metadata["unchanged since last sync"] = outcome.unchanged
    for table, described in outcome.report.items():
        metadata[f"{table} rows"] = described["rows"]
        if described["preview"]:
            metadata[table] = dg.MetadataValue.md(described["preview"])
        if described["path"]:
            metadata[f"{table} file"] = dg.MetadataValue.path(described["path"])
    return dg.AssetMaterialization(asset_key=TENANT_ASSET, partition=outcome.tenant_id, metadata=metadata)


def _in_background(work):  # type: ignore[no-untyped-def]
    """Run `work(on_done)` in a thread; yield ("tenant", outcome, done, total) as tenants finish,
    then ("done", outcomes). Dagster events are logged from the step's own thread as they come."""
    events: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            events.put(("done", work(lambda *args: events.put(("tenant", *args)))))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the step's thread
            events.put(("error", exc))

    threading.Thread(target=run, name="glue-sync-batch", daemon=True).start()
    while True:
        event = events.get()
        if event[0] == "error":
            raise event[1]
        yield event
        if event[0] == "done":
            return


@dg.multi_asset(specs=[TENANT_SPEC], backfill_policy=dg.BackfillPolicy.single_run(),
                description="Extract, match and write each tenant of the run.")
def tenant_sync(context: dg.AssetExecutionContext, glue: GlueResource):
    settings, options = glue.settings(), glue.sync_options()
    engine = glue.store_engine()
    requested = list(context.partition_keys)
    with engine.connect() as conn:
        vanished = writer.vanished_tenants(conn, requested)
    for tenant_id in vanished:
        context.log.warning(f"tenant {terminal_text(tenant_id)} is no longer listed by the partner account: "
                            "not synced")
    tenant_ids = [t for t in requested if t not in vanished]
    graph = settings.graph if glue.concurrency is None else replace(settings.graph, concurrency=glue.concurrency)
    sources = glue.direct_sources(engine)
    spec = SyncSpec(graph, direct_credentials(sources), settings.store_url, context.run_id, options,
                    settings.cache_dir, settings.data_dir)
    start_run(engine, context.run_id, len(tenant_ids))
    progress = _report_progress(context, glue.show_progress)
    outcomes: list[TenantOutcome] = []
    unchanged: list[TenantOutcome] = []
    processes = glue.processes or settings.sync_processes
    for event in _in_background(lambda on_done: sync_batch(spec, tenant_ids, processes, on_done, engine)):
        if event[0] == "tenant":
            outcome = event[1]
            progress(*event[1:])
            if outcome.unchanged:
                unchanged.append(outcome)
            elif outcome.status != "failed":  # final: only failures are ever retried
                yield _materialization(outcome)
        else:
            outcomes = event[1]
    try:
        finish_run(engine, context.run_id, outcomes)
    except Exception as exc:  # noqa: BLE001 - a store gone mid-run: the tenants' results still decide
        gone = store_error(exc, settings.store_url)
        if gone is None:
            raise
        context.log.warning(terminal_text(f"the run's totals could not be recorded in the store: {gone}"))
    failed = [o for o in outcomes if o.status == "failed"]
    if unchanged and not failed:
        context.log.info(f"{len(unchanged)} tenants unchanged since their last sync: not materialized "
                         "again, their last materialization still holds")
    if failed:
        # Dagster marks every partition a failed run planned and did not materialize as failed:
        # the unchanged tenants are materialized so that only the failed ones are.
        yield from (_materialization(o) for o in unchanged)
        raise dg.Failure(
            description=f"{len(failed)} of {len(outcomes)} tenants failed; their partitions are marked "
                        "failed and can be re-run alone:\n"
                        + "\n".join(terminal_text(f"- {o.display_name} ({o.tenant_id}): {o.error}")
                                    for o in failed),
            metadata={"failed_tenants": dg.MetadataValue.json([o.tenant_id for o in failed])})


OVERVIEW_GROUP = "overview"


def _check(name: str, asset: str, failing: pd.DataFrame, what: str, severity: dg.AssetCheckSeverity,
           columns: list[str]) -> dg.AssetCheckResult:
    """Passes when `failing` is empty; otherwise lists the rows at fault."""
    return dg.AssetCheckResult(
        check_name=name, asset_key=asset, passed=failing.empty, severity=severity,
        description=f"{len(failing)} {what}" if len(failing) else None,
        metadata={"count": len(failing), "rows": dg.MetadataValue.md(
            markdown_table(failing[columns], limit=50) if len(failing) else "(none)")})


@dg.asset(group_name=OVERVIEW_GROUP, deps=["tenant_contacts"],
          description="Every tenant's organization match across all tenants: status, method, "
                      "organization, best suggestion, conflicts.",
          check_specs=[dg.AssetCheckSpec("no_conflicting_tenants", asset="organization_matches",
                                         description="No two tenants share an organization by rule (exact name): "
                                                     "only an analyst's decision may put two on one."),
                       dg.AssetCheckSpec("all_tenants_matched", asset="organization_matches",
                                         description="Every tenant is matched or ignored."),
                       dg.AssetCheckSpec("reports_not_concealed", asset="organization_matches",
                                         description="No tenant conceals user names in its reports.")])
def organization_matches(glue: GlueResource):
    frame = organization_overview(glue.store_engine())
    counts = frame["status"].value_counts().to_dict()
    yield dg.MaterializeResult(metadata={**table_metadata(frame, preview_rows=25),
                                         **{f"tenants {k}": int(v) for k, v in counts.items()}})
    columns = ["tenant_name", "tenant_id", "status", "organization_id", "best_suggestion"]
    yield _check("no_conflicting_tenants", "organization_matches", frame[frame["conflict"]],
                 "tenants share an organization with another tenant without an analyst's decision",
                 dg.AssetCheckSeverity.ERROR, columns)
    open_tenants = frame[frame["status"].isin(OPEN_STATUSES) & ~frame["vanished"]]
    yield _check("all_tenants_matched", "organization_matches", open_tenants,
                 "tenants wait for a match decision (`glue-pipeline match list`)",
                 dg.AssetCheckSeverity.WARN, columns)
    yield _check("reports_not_concealed", "organization_matches", frame[frame["reports_concealed"]],
                 "tenants conceal report names, so mailbox usage is not joined: " + CONCEALED_FIX,
                 dg.AssetCheckSeverity.WARN, ["tenant_name", "tenant_id"])


@dg.asset(group_name=OVERVIEW_GROUP, deps=["tenant_contacts"],
          description="Users the last sync held for an analyst (ambiguous matches, likely duplicates, "
                      "links to another organization), with candidate contacts.",
          check_specs=[dg.AssetCheckSpec("no_ambiguous_contacts", asset="contacts_needing_review"),
                       dg.AssetCheckSpec("no_likely_duplicates_held", asset="contacts_needing_review"),
                       dg.AssetCheckSpec("no_duplicate_emails_in_an_organization",
                                         asset="contacts_needing_review",
                                         description="No email belongs to two contacts of one organization.")])
def contacts_needing_review(glue: GlueResource):
    engine = glue.store_engine()
    held = held_overview(engine)
    yield dg.MaterializeResult(metadata=table_metadata(held, preview_rows=25))
    columns = ["tenant_name", "user_principal_name", "user_id", "reason"]
    ambiguous = held[held["reason"].str.contains("several|is an email of", regex=True)]
    yield _check("no_ambiguous_contacts", "contacts_needing_review", ambiguous,
                 "users match more than one contact, or share one: link each (`glue-pipeline match held`)",
                 dg.AssetCheckSeverity.WARN, columns)
    likely = held[held["reason"].str.startswith("likely duplicate")]
    yield _check("no_likely_duplicates_held", "contacts_needing_review", likely,
                 "users are held as likely duplicates: link them or approve the create",
                 dg.AssetCheckSeverity.WARN, columns)
    yield _check("no_duplicate_emails_in_an_organization", "contacts_needing_review",
                 duplicate_emails(engine), "emails belong to two contacts of one organization",
                 dg.AssetCheckSeverity.ERROR, ["organization_id", "email", "contacts"])


class DecisionConfig(dg.Config):
    """A match decision, as `glue-pipeline match ...` records it."""

    action: Literal["accept", "match", "ignore", "unignore", "create_organization", "link_user",
                    "approve_create"]
    tenant: str = PydanticField(description="Tenant id or name.")
    organization: str | None = None
    rank: int = 1
    user_id: str | None = None
    contact_id: int | None = None
    force: bool = False
    decided_by: str = "dagster-ui"


@dg.op(description="Record one match decision in the store; the next sync of the tenant honours it.")
def record_decision(context: dg.OpExecutionContext, config: DecisionConfig, glue: GlueResource) -> None:
    result = apply_decision(glue.store_engine(), config.action, config.tenant,
                            config.organization, config.rank, config.user_id, config.contact_id,
                            config.force, config.decided_by)
    context.log.info(terminal_text(f"recorded {config.action}: {result}"))


@dg.job(description="Record a match decision (launch it from the Launchpad with run config).")
def match_decision():
    record_decision()


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


@dg.op(description="Check credentials, permissions, reports and endpoints for every tenant.")
def diagnose_tenants(context: dg.OpExecutionContext, glue: GlueResource) -> None:
    settings, options = glue.settings(), glue.sync_options()
    engine = glue.store_engine()
    sources = glue.direct_sources(engine)
    report = diagnose(glue.client(settings, sources), [(s.name, s.tenant_id) for s in sources],
                      PARTNER_SOURCE not in disconnected_sources(engine), options)
    problems = report[report["status"] != "OK"]
    context.log_event(dg.AssetObservation(asset_key="customer_tenants", metadata={
        "doctor checks": len(report), "doctor problems": len(problems),
        "doctor report": dg.MetadataValue.md(markdown_table(report))}))
    if len(problems):
        raise dg.Failure(description=f"{len(problems)} problem(s) found:\n" + "\n".join(
            terminal_text(f"- {r.tenant} ({r.source}) {r.check}: {r.detail} Fix: {r.fix}")
            for r in problems.itertuples()))


@dg.job(description="Doctor: can every tenant be synced? (the same checks as `glue-pipeline doctor`)")
def doctor():
    diagnose_tenants()


overview_job = dg.define_asset_job("refresh_overview", selection=dg.AssetSelection.groups(OVERVIEW_GROUP),
                                   description="Rebuild the tables across all tenants and run their checks.")


def _overview_after(status: dg.DagsterRunStatus) -> dg.SensorDefinition:
    @dg.run_status_sensor(name=f"overview_after_sync_{status.value.lower()}", run_status=status,
                          monitored_jobs=[sync_job], request_job=overview_job,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="After each sync, refresh the tables across all tenants.")
    def _sensor(context: dg.RunStatusSensorContext):  # type: ignore[no-untyped-def]
        return dg.RunRequest(run_key=context.dagster_run.run_id)
    return _sensor


defs = dg.Definitions(
    assets=[customer_tenants, tenant_sync, organization_matches, contacts_needing_review],
    jobs=[discover_job, sync_job, overview_job, match_decision, doctor],
    schedules=[hourly_schedule],
    sensors=[sync_after_discovery, _overview_after(dg.DagsterRunStatus.SUCCESS),
             _overview_after(dg.DagsterRunStatus.FAILURE)],
    resources={"glue": GlueResource()},
)
