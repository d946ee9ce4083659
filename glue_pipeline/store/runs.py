"""A sync run's bookkeeping: its sync_runs row, each tenant's sync_results row, and what a
failed tenant leaves in the store."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from sqlalchemy import Connection, Engine, and_, delete, insert, select, update

from glue_pipeline.store.engine import write_transaction
from glue_pipeline.store.schema import sync_results, sync_runs
from glue_pipeline.store.writer import LogEntry, forget_sync_state, utcnow, write_log
from glue_pipeline.vocabulary import FailureCause, RunStatus, TenantStatus


class TenantResult(TypedDict):
    """A tenant's sync_results row but for the run id and the time it finished."""

    tenant_id: str
    status: TenantStatus
    organization_id: int | None
    users: int
    created: int
    updated: int
    unchanged: int
    held: int
    skipped: int
    error: str | None  # a failed tenant's
    cause: FailureCause | None  # a failed tenant's (graph.errors.failure_cause)


def start_run(engine: Engine, run_id: str, tenants_total: int) -> None:
    """Open the run's row; a run id started again is running again."""
    status: RunStatus = "running"
    with write_transaction(engine) as conn:
        if conn.execute(select(sync_runs.c.run_id).where(sync_runs.c.run_id == run_id)).first():
            conn.execute(update(sync_runs).where(sync_runs.c.run_id == run_id)
                         .values(status=status, finished_at=None))
        else:
            conn.execute(insert(sync_runs).values(run_id=run_id, started_at=utcnow(), status=status,
                                                  tenants_total=tenants_total, tenants_failed=0))


def finish_run(engine: Engine, run_id: str, tenants_total: int, tenants_failed: int) -> None:
    """Close the run's row with its counts: failed when a tenant failed."""
    status: RunStatus = "failed" if tenants_failed else "succeeded"
    with write_transaction(engine) as conn:
        conn.execute(update(sync_runs).where(sync_runs.c.run_id == run_id).values(
            finished_at=utcnow(), status=status, tenants_total=tenants_total, tenants_failed=tenants_failed))


def running_runs(engine: Engine) -> list[str]:
    """The runs whose row still says running."""
    with engine.connect() as conn:
        return list(conn.execute(select(sync_runs.c.run_id).where(sync_runs.c.status == "running")).scalars())


def fail_run(engine: Engine, run_id: str, error: str) -> bool:
    """Close a run that ended without closing its row (its process died, it was cancelled):
    failed, with the cause. False when the row no longer says running."""
    status: RunStatus = "failed"
    with write_transaction(engine) as conn:
        return bool(conn.execute(update(sync_runs).where(and_(sync_runs.c.run_id == run_id,
                                                              sync_runs.c.status == "running"))
                                 .values(status=status, finished_at=utcnow(), error=error)).rowcount)


def write_result(conn: Connection, run_id: str, result: TenantResult, now: datetime) -> None:
    """The tenant's outcome in this run (a re-run of the same run id replaces it)."""
    conn.execute(delete(sync_results).where(and_(sync_results.c.run_id == run_id,
                                                 sync_results.c.tenant_id == result["tenant_id"])))
    conn.execute(insert(sync_results).values(run_id=run_id, **result, finished_at=now))


def record_failed_tenant(engine: Engine, run_id: str, result: TenantResult) -> None:
    """A failed tenant's result (with its error and cause) and its error in the log, in one
    transaction; its sync state is forgotten, so that its next sync plans and writes it in full."""
    error = result["error"]
    assert error is not None, "a failed tenant's result names its error"  # sync_log.message is NOT NULL
    assert result["cause"] is not None, "a failed tenant's result names its cause"
    now = utcnow()
    with write_transaction(engine) as conn:
        forget_sync_state(conn, result["tenant_id"])
        write_log(conn, run_id, result["tenant_id"], [LogEntry("error", "tenant_failed", error)], now)
        write_result(conn, run_id, result, now)
