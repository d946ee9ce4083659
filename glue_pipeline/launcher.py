"""The instance's run launcher: Dagster's default launcher, which can also tell run monitoring
whether a run's process still lives.

Dagster's DefaultRunLauncher cannot check a run's worker, so with it a run whose process was
killed (SIGKILL, out of memory, a lost machine) stays STARTED for good. Every run of this code
location records a heartbeat in the store while its process lives (heartbeat.py); this launcher
answers run monitoring's health check from it: a run whose last beat is older than
`heartbeat_timeout_seconds` is reported failed, and the daemon marks it failed. A run with no
heartbeat row (not yet set up, between two steps, or using no store) counts as running; the
instance's `max_runtime_seconds` bounds it.

Enabled in dagster.yaml and dagster-postgres.yaml (run_launcher, run_monitoring).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Self

from dagster import Field, IntSource
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClassData

from glue_pipeline.settings import store_url_from_env
from glue_pipeline.store import heartbeats
from glue_pipeline.store.engine import Engine, make_engine
from glue_pipeline.store.writer import utcnow

HEARTBEAT_TIMEOUT_S = 180


class GlueRunLauncher(DefaultRunLauncher):
    def __init__(self, inst_data: ConfigurableClassData | None = None,
                 heartbeat_timeout_seconds: int = HEARTBEAT_TIMEOUT_S) -> None:
        super().__init__(inst_data=inst_data)
        self.heartbeat_timeout = timedelta(seconds=heartbeat_timeout_seconds)
        self._engine: Engine | None = None

    @classmethod
    def config_type(cls) -> Mapping[str, Any]:
        return {"heartbeat_timeout_seconds": Field(
            IntSource, is_required=False, default_value=HEARTBEAT_TIMEOUT_S,
            description="A run whose process has not recorded a heartbeat for this long is failed.")}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        try:
            beat = heartbeats.beats(self._store(), [run.run_id]).get(run.run_id)
        except Exception as exc:  # the store away for a moment must not fail a run
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"heartbeat not readable: {exc}", transient=True)
        if beat is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no heartbeat recorded")
        silent = utcnow() - beat.beat_at
        if silent <= self.heartbeat_timeout:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run's process (pid {beat.pid} on {beat.host}) last recorded a heartbeat at "
            f"{beat.beat_at:%Y-%m-%d %H:%M:%S} UTC, {int(silent.total_seconds())} s ago (limit "
            f"{int(self.heartbeat_timeout.total_seconds())} s): it was killed or crashed. Its tenants that "
            "did not finish are synced again by the next run; re-execute this run from the UI to retry "
            "them now.")

    def _store(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(store_url_from_env())
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        super().dispose()
