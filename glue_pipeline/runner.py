"""Running the jobs through a real Dagster instance from the command line: discovery, then the
sync of all tenants (one run over the partition range) or of chosen tenants (one run each).

The runs execute in this process but are runs of the code location (workspace.yaml): they are
recorded in the instance under DAGSTER_HOME with the same origin as a run launched from the UI,
so the UI lists them under their job and on the timeline, shows their logs and per-tenant
partitions, and can re-execute them (from failure, or in full). Each run takes its jobs from
definitions built at the call, so its resources read the environment as it is then
(defs/resources.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster_shared.error import SerializableErrorInfo
from filelock import FileLock, Timeout

from glue_pipeline.defs.automation import COMMAND, COMMAND_TAG
from glue_pipeline.defs.definitions import build_defs
from glue_pipeline.defs.partitions import all_tenants_run_requests, range_keys, tenant_keys
from glue_pipeline.defs.resources import glue_resources
from glue_pipeline.settings import PROJECT_ROOT, ConfigError, default_var_dir, folder_problem, store_url_from_env
from glue_pipeline.store.engine import Engine, shown_url
from glue_pipeline.store.partition_keys import partitions_of, tenants_by_partition

if TYPE_CHECKING:
    from dagster._core.origin import JobPythonOrigin
    from dagster._core.remote_origin import RemoteJobOrigin

POSTGRES_INSTANCE_VARS = ("DAGSTER_PG_URL",)


def instance_config_source() -> Path:
    """dagster.yaml by default; dagster-postgres.yaml when DAGSTER_PG_URL is set."""
    name = "dagster-postgres.yaml" if os.environ.get("DAGSTER_PG_URL") else "dagster.yaml"
    return PROJECT_ROOT / name


INSTANCE_LOCK = ".glue-instance.lock"
INSTANCE_LOCK_WAIT_S = 600


def _home_error(home: Path, exc: OSError) -> ConfigError:
    return ConfigError(f"DAGSTER_HOME={home} cannot be used: {folder_problem(home, exc)}: point "
                       f"DAGSTER_HOME at a folder this user can write, or unset it to use "
                       f"{default_var_dir() / 'dagster'}")


@contextmanager
def _instance_lock(home: Path) -> Iterator[None]:
    """Dagster creates and migrates a new instance's SQLite storage without a lock of its own:
    two commands starting at once on a new DAGSTER_HOME would both create its tables ("table
    ... already exists"). They take turns here; the second finds the tables made."""
    try:
        lock = FileLock(home / INSTANCE_LOCK, timeout=INSTANCE_LOCK_WAIT_S)
        lock.acquire()
    except Timeout:
        raise ConfigError(f"DAGSTER_HOME={home}: another glue-pipeline process held {INSTANCE_LOCK} "
                          f"there for over {INSTANCE_LOCK_WAIT_S} s: stop it, or delete the file if "
                          "no such process runs") from None
    except OSError as exc:
        raise _home_error(home, exc) from exc
    try:
        yield
    finally:
        lock.release()


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME (default var/dagster) holding the project's instance settings."""
    home = Path(os.environ.get("DAGSTER_HOME") or default_var_dir() / "dagster").resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _home_error(home, exc) from exc
    with _instance_lock(home):
        target, source = home / "dagster.yaml", instance_config_source().read_text()
        try:
            if not target.exists() or target.read_text() != source:
                staged = home / "dagster.yaml.new"
                staged.write_text(source)
                staged.replace(target)  # a Dagster process reading it never sees half a file
        except OSError as exc:
            raise _home_error(home, exc) from exc
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> dg.DagsterInstance:
    home = ensure_dagster_home()
    with _instance_lock(home):
        try:
            return dg.DagsterInstance.get()
        except Exception as exc:
            pg_url = os.environ.get("DAGSTER_PG_URL")
            if not pg_url or type(exc).__name__ not in ("DagsterPostgresException", "OperationalError"):
                raise
            raise ConfigError(f"DAGSTER_PG_URL={shown_url(pg_url)}: the Dagster instance's PostgreSQL "
                              "database cannot be reached: start it or fix the URL, or unset DAGSTER_PG_URL "
                              "to keep the instance on SQLite under DAGSTER_HOME") from exc


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    tenant_ids: list[str]
    error: str | None = None
    detail: str | None = None  # the failure as Dagster recorded it: stack and causes (--verbose)
    materialized: list[str] = field(default_factory=list)  # tenants whose partition was materialized


# Dagster's console log is kept quiet: failures reach the terminal through the summary read from
# the store, and the full event log is in the instance, shown by the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _job(name: str, show_progress: bool = False) -> dg.JobDefinition:
    """The job, with resources built from the environment as it is now (progress on the
    terminal when asked)."""
    return build_defs(glue_resources(show_progress=show_progress)).resolve_job_def(name)


LOCATION_NAME = "glue_pipeline"  # workspace.yaml's code location
REPOSITORY_NAME = "__repository__"  # the one repository of a Definitions object


def _origins(job_name: str) -> tuple[RemoteJobOrigin, JobPythonOrigin]:
    """The job's origins as a launch from the UI records them: the code location of
    workspace.yaml (re-execution finds it by name), and the module that defines the job."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    locations = WorkspaceFileTarget(paths=[str(PROJECT_ROOT / "workspace.yaml")]).create_origins()
    location = next(origin for origin in locations if origin.location_name == LOCATION_NAME)
    repository = ReconstructableRepository.for_module("glue_pipeline.definitions", "defs",
                                                      working_directory=str(PROJECT_ROOT))
    return (RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY_NAME), job_name),
            repository.get_reconstructable_job(job_name).get_python_origin())


def execute(instance: dg.DagsterInstance, job: dg.JobDefinition, tags: Mapping[str, str] | None = None,
            partition_key: str | None = None) -> str:
    """Run the job in this process as a run of the code location (what `execute_in_process` does,
    with the origins a UI launch records); returns the run id."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import create_execution_plan, execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags

    in_process = job.as_ephemeral_job(resource_defs={}, input_values={})
    run_tags = merge_run_tags(job, partition_key, {**(tags or {}), COMMAND_TAG: COMMAND}, None, instance, QUIET)
    wrapped = InMemoryJob(in_process)
    plan = create_execution_plan(wrapped, run_config=QUIET, instance_ref=instance.get_ref())
    remote_origin, python_origin = _origins(job.name)
    run = instance.create_run_for_job(job_def=in_process, execution_plan=plan, run_config=QUIET,
                                      tags={**job.run_tags, **run_tags}, remote_job_origin=remote_origin,
                                      job_code_origin=python_origin)
    execute_run(wrapped, run, instance, raise_on_error=False)
    return run.run_id


def _run_job(instance: dg.DagsterInstance, name: str) -> RunOutcome:
    """A run of a job without partitions."""
    return outcome_of(instance, execute(instance, _job(name)), [])


def run_discovery(instance: dg.DagsterInstance) -> RunOutcome:
    return _run_job(instance, "discover_tenants")


def outcome_of(instance: dg.DagsterInstance, run_id: str, tenant_ids: list[str],
               tenant_of: Mapping[str, str] | None = None) -> RunOutcome:
    """What the run did, read back from the instance; `tenant_of` (partition key -> tenant id, read
    before the run: the store may be gone after it) names the tenants it materialized."""
    run = instance.get_run_by_id(run_id)
    failures = [e.dagster_event for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)]
    error = next((f.step_failure_data.error for f in failures if f is not None), None)
    partitions = [e.dagster_event.partition for e in
                  instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
                  if e.dagster_event is not None and e.dagster_event.partition]
    materialized = [(tenant_of or {}).get(key, key) for key in partitions]
    success = run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    return RunOutcome(run_id, success, tenant_ids, _run_error(error), error.to_string() if error else None,
                      materialized)


def _run_error(error: SerializableErrorInfo | None) -> str | None:
    """The first step failure's message (for a sync run: which tenants failed and why)."""
    if error is None:
        return None
    # Dagster wraps what the step raised; the cause carries our message.
    while error.cause is not None and "DagsterExecutionStepExecutionError" in (error.cls_name or ""):
        error = error.cause
    # The project's own errors are written for operators: their class path adds nothing.
    return re.sub(r"^glue_pipeline(\.\w+)+: ", "", error.message.strip())


def run_sync(instance: dg.DagsterInstance, tenant_ids: list[str] | None = None,
             show_progress: bool = False) -> list[RunOutcome]:
    """Sync every known tenant but the paused and parked ones in one run (one per stretch between
    those left out), or the given tenants in one run each."""
    job = _job("sync_tenants", show_progress)
    if tenant_ids is None:
        from glue_pipeline.store.parked import left_out_of_full_syncs

        with _store() as engine:
            keys = partitions_of(engine)
            left_out = [keys[t] for t in left_out_of_full_syncs(engine) if t in keys]
        tenant_of = {key: tenant_id for tenant_id, key in keys.items()}
        requests = all_tenants_run_requests(instance, set(left_out))
        if isinstance(requests, dg.SkipReason):
            return []
        return [outcome_of(instance, execute(instance, job, tags=r.tags),
                           [tenant_of[k] for k in range_keys(instance, r) if k in tenant_of], tenant_of)
                for r in requests]
    with _store() as engine:
        keys = partitions_of(engine, tenant_ids)
    known = set(tenant_keys(instance))
    unknown = [t for t in tenant_ids if keys.get(t) not in known]
    if unknown:
        raise ValueError(f"unknown tenant(s) {', '.join(unknown)}: run discovery first "
                         "(`glue-pipeline sync` with no --tenant) or check the tenant id")
    _refuse_paused(tenant_ids)
    outcomes = []
    for tenant_id in tenant_ids:
        outcomes.append(outcome_of(instance, execute(instance, job, partition_key=keys[tenant_id]), [tenant_id],
                                   {keys[tenant_id]: tenant_id}))
    return outcomes


def partition_tenants(keys: list[str]) -> dict[str, str]:
    """Partition key -> tenant id, in the order of `keys`."""
    with _store() as engine:
        found = tenants_by_partition(engine, keys)
    return {key: found[key] for key in keys if key in found}


@contextmanager
def _store() -> Iterator[Engine]:
    """The store of GLUE_STORE_URL, for a read before a run."""
    from glue_pipeline.store.engine import make_engine

    engine = make_engine(store_url_from_env())
    try:
        yield engine
    finally:
        engine.dispose()


def _refuse_paused(tenant_ids: list[str]) -> None:
    """A paused tenant is not synced, even when named: the command says so and how to resume it."""
    from glue_pipeline.store.tenant_control import pauses

    with _store() as engine:
        paused = pauses(engine, tenant_ids)
    if paused:
        raise ValueError("\n".join(
            f"tenant {p.name or p.tenant_id} ({p.tenant_id}) is {p.described()}: it is not synced until "
            f"`glue-pipeline tenant resume {p.tenant_id}`; resume it first, or leave it out" for p in paused))


def run_overview(instance: dg.DagsterInstance) -> RunOutcome:
    """Rebuild the tables across all tenants and run their asset checks."""
    return _run_job(instance, "refresh_overview")
