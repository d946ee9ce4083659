"""Running the jobs through a real Dagster instance from the command line: discovery, then the
sync of all tenants (one run over the partition range) or of chosen tenants (one run each).

The runs execute in this process but are recorded in the instance under DAGSTER_HOME, so the
UI shows them, their logs and the per-tenant partitions exactly as for scheduled runs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from glue_pipeline.definitions import TENANTS, all_tenants_run_request, defs
from glue_pipeline.settings import PROJECT_ROOT, default_var_dir

POSTGRES_INSTANCE_VARS = ("DAGSTER_PG_URL",)


def instance_config_source() -> Path:
    """dagster.yaml by default; dagster-postgres.yaml when DAGSTER_PG_URL is set."""
    name = "dagster-postgres.yaml" if os.environ.get("DAGSTER_PG_URL") else "dagster.yaml"
    return PROJECT_ROOT / name


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME (default var/dagster) holding the project's instance settings."""
    home = Path(os.environ.get("DAGSTER_HOME") or default_var_dir() / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = instance_config_source()
    if not target.exists() or target.read_text() != source.read_text():
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    return dg.DagsterInstance.get()


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    tenant_ids: list[str]
    error: str | None = None


def _run_config(show_progress: bool) -> dict:
    """Progress on the terminal when asked. Dagster's console log is kept quiet: failures reach
    the terminal through the summary read from the store, and the full event log is in the
    instance, shown by the UI."""
    return {"resources": {"glue": {"config": {"show_progress": show_progress}}},
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def run_discovery(instance: dg.DagsterInstance) -> RunOutcome:
    result = defs.resolve_job_def("discover_tenants").execute_in_process(
        instance=instance, raise_on_error=False, run_config=_run_config(False))
    return RunOutcome(result.run_id, result.success, [], _run_error(result))


def _run_error(result: dg.ExecuteInProcessResult) -> str | None:
    """The first step failure's message (for a sync run: which tenants failed and why)."""
    failures = result.get_step_failure_events()
    if not failures:
        return None
    error = failures[0].step_failure_data.error
    # Dagster wraps what the step raised; the cause carries our message.
    while error.cause is not None and "DagsterExecutionStepExecutionError" in error.cls_name:
        error = error.cause
    return error.message.strip()


def run_sync(instance: dg.DagsterInstance, tenant_ids: list[str] | None = None,
             show_progress: bool = False) -> list[RunOutcome]:
    """Sync every known tenant in one run, or the given tenants in one run each."""
    job = defs.resolve_job_def("sync_tenants")
    if tenant_ids is None:
        request = all_tenants_run_request(instance)
        if isinstance(request, dg.SkipReason):
            return []
        result = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False,
                                        run_config=_run_config(show_progress))
        return [RunOutcome(result.run_id, result.success,
                           list(instance.get_dynamic_partitions(TENANTS.name)), _run_error(result))]
    known = set(instance.get_dynamic_partitions(TENANTS.name))
    unknown = [t for t in tenant_ids if t not in known]
    if unknown:
        raise ValueError(f"unknown tenant(s) {', '.join(unknown)}: run discovery first "
                         "(`glue-pipeline sync` with no --tenant) or check the tenant id")
    outcomes = []
    for tenant_id in tenant_ids:
        result = job.execute_in_process(instance=instance, partition_key=tenant_id, raise_on_error=False,
                                        run_config=_run_config(show_progress))
        outcomes.append(RunOutcome(result.run_id, result.success, [tenant_id], _run_error(result)))
    return outcomes


def run_overview(instance: dg.DagsterInstance) -> RunOutcome:
    """Rebuild the tables across all tenants and run their asset checks."""
    result = defs.resolve_job_def("refresh_overview").execute_in_process(
        instance=instance, raise_on_error=False, run_config=_run_config(False))
    return RunOutcome(result.run_id, result.success, [], _run_error(result))
