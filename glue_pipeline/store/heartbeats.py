"""Run heartbeats: a row per live Dagster run, refreshed by its process (glue_pipeline/heartbeat.py)
and read by run monitoring (glue_pipeline/launcher.py) and `glue-pipeline status`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, select

from glue_pipeline.store.engine import write_transaction
from glue_pipeline.store.rows import as_utc, update_or_insert
from glue_pipeline.store.schema import run_heartbeats
from glue_pipeline.store.writer import utcnow


@dataclass(frozen=True)
class Beat:
    run_id: str
    job_name: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime


def beat(engine: Engine, run_id: str, job_name: str, host: str, pid: int, started_at: datetime) -> None:
    """Record that the run's process is alive now."""
    with write_transaction(engine) as conn:
        update_or_insert(conn, run_heartbeats, {"run_id": run_id},
                         {"job_name": job_name, "host": host, "pid": pid, "started_at": started_at,
                          "beat_at": utcnow()})


def end(engine: Engine, run_id: str) -> None:
    """The run's process finished: its row goes."""
    with write_transaction(engine) as conn:
        conn.execute(delete(run_heartbeats).where(run_heartbeats.c.run_id == run_id))


def beats(engine: Engine, run_ids: Iterable[str] | None = None) -> dict[str, Beat]:
    """The heartbeats of the given runs (default: all), by run id."""
    query = select(run_heartbeats)
    if run_ids is not None:
        query = query.where(run_heartbeats.c.run_id.in_(list(run_ids)))
    with engine.connect() as conn:
        return {row.run_id: Beat(row.run_id, row.job_name, row.host, row.pid, as_utc(row.started_at),
                                 as_utc(row.beat_at)) for row in conn.execute(query)}
