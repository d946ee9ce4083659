"""Running the jobs through a real Dagster instance from the command line: discovery, then the
sync of all tenants (one run over the partition range) or of chosen tenants (one run each).

The runs execute in this process but are recorded in the instance under DAGSTER_HOME, so the
UI shows them, their logs and the per-tenant partitions exactly as for scheduled runs. Each run
takes its jobs from definitions built at the call, so its resources read the environment as it
is then (defs/resources.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster_shared.error import SerializableErrorInfo
from filelock import FileLock, Timeout

from glue_pipeline.defs.definitions import build_defs
from glue_pipeline.defs.partitions import all_tenants_run_request, tenant_keys
from glue_pipeline.defs.resources import glue_resources
from glue_pipeline.settings import PROJECT_ROOT, ConfigError, default_var_dir, folder_problem
from glue_pipeline.store.engine import shown_url

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


def _run_job(instance: dg.DagsterInstance, name: str) -> RunOutcome:
    """A run of a job without partitions."""
    result = _job(name).execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
    return _outcome(result, [])


def run_discovery(instance: dg.DagsterInstance) -> RunOutcome:
    return _run_job(instance, "discover_tenants")


def _outcome(result: dg.ExecuteInProcessResult, tenant_ids: list[str]) -> RunOutcome:
    failures = result.get_step_failure_events()
    error = failures[0].step_failure_data.error if failures else None
    return RunOutcome(result.run_id, result.success, tenant_ids, _run_error(error),
                      error.to_string() if error else None,
                      [e.partition for e in result.get_asset_materialization_events() if e.partition])


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
    """Sync every known tenant in one run, or the given tenants in one run each."""
    job = _job("sync_tenants", show_progress)
    if tenant_ids is None:
        request = all_tenants_run_request(instance)
        if isinstance(request, dg.SkipReason):
            return []
        result = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False,
                                        run_config=QUIET)
        return [_outcome(result, list(tenant_keys(instance)))]
    known = set(tenant_keys(instance))
    unknown = [t for t in tenant_ids if t not in known]
    if unknown:
        raise ValueError(f"unknown tenant(s) {', '.join(unknown)}: run discovery first "
                         "(`glue-pipeline sync` with no --tenant) or check the tenant id")
    outcomes = []
    for tenant_id in tenant_ids:
        result = job.execute_in_process(instance=instance, partition_key=tenant_id, raise_on_error=False,
                                        run_config=QUIET)
        outcomes.append(_outcome(result, [tenant_id]))
    return outcomes


def run_overview(instance: dg.DagsterInstance) -> RunOutcome:
    """Rebuild the tables across all tenants and run their asset checks."""
    return _run_job(instance, "refresh_overview")
