"""Data sources an operator switched off or on (data_sources; a source not listed is connected)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from glue_pipeline.store.engine import write_transaction
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.rows import update_or_insert
from glue_pipeline.store.schema import data_sources
from glue_pipeline.store.writer import utcnow


def disconnected_sources(engine: Engine) -> set[str]:
    upgrade_store(engine)
    with engine.connect() as conn:
        return set(conn.execute(select(data_sources.c.name).where(data_sources.c.connected.is_(False)))
                   .scalars())


def record_connection(engine: Engine, name: str, connected: bool) -> None:
    upgrade_store(engine)
    now = utcnow()
    with write_transaction(engine) as conn:
        update_or_insert(conn, data_sources, {"name": name}, {"connected": connected, "changed_at": now})
