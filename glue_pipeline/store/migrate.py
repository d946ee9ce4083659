"""Bringing a store to the schema this code expects: the Alembic revisions in migrations/.

A store at head costs one read of its version table, without importing alembic; anything else
migrates in one transaction that holds the store's migration lock, so commands starting at once
on a new or older store take turns and the later ones find it at head.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, false, func, inspect, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from glue_pipeline.settings import ConfigError
from glue_pipeline.store.engine import WRITE_OPTION, make_engine, store_error, store_setting, write_transaction
from glue_pipeline.store.migrations import BASELINE, HEAD, VERSION_TABLE, alembic_config
from glue_pipeline.store.schema import data_sources, organizations

# PostgreSQL's advisory locks are per database: stores sharing a server never wait for each other.
MIGRATION_LOCK = 0x676C7565


@dataclass(frozen=True)
class StoreRevision:
    """Where a store stands: its revision (None for a store without tables) and the head. A store
    whose tables predate versioning (`unversioned`) stands at the baseline, not yet recorded."""

    current: str | None
    head: str = HEAD
    unversioned: bool = False

    @property
    def pending(self) -> bool:
        return self.unversioned or self.current != self.head

    @property
    def described(self) -> str:
        if self.unversioned:
            return f"{self.current} (tables made before the schema was versioned, not yet recorded)"
        return self.current or "none (no tables yet)"


def upgrade_store(engine: Engine) -> StoreRevision:
    """Bring the store to the head revision; returns where it stood before. A new store gets
    every revision, one made before versioning is taken as the baseline and upgraded; a store
    newer than this code is a ConfigError naming GLUE_STORE_URL and the fix."""
    recorded = _recorded_revision(engine)
    if recorded == HEAD:
        return StoreRevision(HEAD)
    if recorded is not None:
        _refuse_unknown(engine, recorded)  # before the lock: a read-only store still says why
    with _migration(engine) as conn:
        before = _standing(conn)  # another process may have migrated it meanwhile
        _bring_to_head(conn, before)
    return before


def store_revision(engine: Engine) -> StoreRevision:
    """Where the store stands, read without changing it."""
    with engine.connect() as conn:
        return _standing(conn)


def _recorded_revision(engine: Engine) -> str | None:
    """The revision the store records; None when it has no version table (or cannot be read:
    the migration then meets the same failure and reports it)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    except (OperationalError, ProgrammingError):
        return None


def _standing(conn: Connection) -> StoreRevision:
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if current is not None:
        _refuse_unknown(conn.engine, current)
        return StoreRevision(current)
    # Releases before versioning made every table at once with create_all.
    if inspect(conn).has_table(organizations.name):
        return StoreRevision(BASELINE, unversioned=True)
    return StoreRevision(None)


def _refuse_unknown(engine: Engine, revision: str) -> None:
    from alembic.script import ScriptDirectory

    known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if revision not in known:
        raise ConfigError(
            f"{store_setting(engine.url.render_as_string(hide_password=False))}: the store's schema is at "
            f"revision {revision}, which this glue-pipeline does not know (its newest is {HEAD}): a newer "
            "release upgraded the store; upgrade glue-pipeline to that release or a later one")


@contextmanager
def _migration(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the store's migration lock until it commits: SQLite's write lock
    (BEGIN IMMEDIATE), a transaction-level advisory lock on PostgreSQL."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # A batch operation copies a table, drops it and renames the copy: a table other tables
            # refer to survives that only without enforced foreign keys (SQLite's own procedure for
            # ALTER), which are checked before the commit instead.
            _sqlite_foreign_keys(conn, False)
        try:
            with conn.execution_options(**{WRITE_OPTION: True}).begin():
                if not sqlite:
                    conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                yield conn
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("a store revision left rows whose foreign key refers to no row")
        finally:
            if sqlite:
                _sqlite_foreign_keys(conn, True)


def _sqlite_foreign_keys(conn: Connection, enforced: bool) -> None:
    """Set on the driver's connection: SQLAlchemy would begin a transaction, where it is ignored."""
    conn.connection.cursor().execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")


def _bring_to_head(conn: Connection, before: StoreRevision) -> None:
    from alembic import command

    config = alembic_config(conn)
    if before.unversioned:
        command.stamp(config, BASELINE)
    if before.current != HEAD:
        command.upgrade(config, "head")


def check_store(url: str, writes: bool = False) -> Engine:
    """The store's engine, once it answers and is at the schema's head revision (and, with
    `writes`, once it takes a write); otherwise a ConfigError naming GLUE_STORE_URL, what failed
    and the fix."""
    engine = make_engine(url)
    try:
        upgrade_store(engine)
        if writes:
            with write_transaction(engine) as conn:  # writes no row, yet a read-only store refuses it
                conn.execute(delete(data_sources).where(false()))
    except Exception as exc:
        engine.dispose()
        error = store_error(exc, url)
        if error is None:
            raise
        raise error from exc
    return engine
