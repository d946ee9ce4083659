"""Connecting to the store: engines and transactions, the store URL (GLUE_STORE_URL) and
what a failure to reach or use the store means, in words that name the setting and the fix.

SQLite by default, PostgreSQL by URL. Engines hide SQL parameters, so an error never carries
row values (customers' data) into messages or logs.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

# Engine and Connection are the store's handles: the rest of the package names them from here.
from sqlalchemy import Connection as Connection
from sqlalchemy import Engine as Engine
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.pool import ConnectionPoolEntry

from glue_pipeline.settings import ConfigError, folder_problem

WRITE_OPTION = "glue_write"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write. On SQLite it takes the write lock at once, so concurrent
    writers wait for each other (busy timeout) instead of failing when a read lock cannot be
    upgraded; reads elsewhere stay plain and never block a writer."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that only reads: a plain BEGIN, so it never blocks a writer."""
    with engine.connect() as conn, conn.begin():
        yield conn


def _sqlite_immediate_transactions(engine: Engine) -> None:
    """Emit SQLite's BEGIN ourselves: IMMEDIATE for write transactions, deferred for reads."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts the file and loses no commit when a process dies;
        # only a power cut may lose the last commits. It saves an fsync per tenant transaction.
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(WRITE_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for the store URL; creates a SQLite file's folder when needed. A URL that is
    not one of the store's (SQLite, PostgreSQL) is a ConfigError naming GLUE_STORE_URL.
    SQL errors never carry row values (customers' data) into messages or logs."""
    parsed = _parse_store_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and parsed.query.get("mode") != "ro":
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"{store_setting(url)}: cannot create the store file {path}: "
                                  f"{folder_problem(path.parent, exc)}: {SQLITE_FIX}") from exc
        engine = create_engine(parsed, connect_args={"timeout": 60}, hide_parameters=True)
        _sqlite_immediate_transactions(engine)
    else:
        # psycopg2 then sends an executemany of UPDATEs in pages rather than one statement per row.
        batch = {"executemany_mode": "values_plus_batch"} if parsed.get_driver_name() == "psycopg2" else {}
        try:
            engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True, **batch)
        except ImportError as exc:
            raise ConfigError(f"{store_setting(url)}: its database driver is not installed ({exc.name}): "
                              f"{URL_FIX}") from exc
    event.listen(engine, "handle_error", _mark_store_error)
    return engine


STORE_ERROR_MARK = "glue_store_error"


def _mark_store_error(context: ExceptionContext) -> None:
    """Marks the errors of the store's engines (connecting included), so that store_error
    explains only them as the store's, not those of Dagster's own database."""
    if context.sqlalchemy_exception is not None:
        setattr(context.sqlalchemy_exception, STORE_ERROR_MARK, True)


STORE_DIALECTS = ("sqlite", "postgresql")
URL_FIX = ("set GLUE_STORE_URL to sqlite:///PATH/store.db or postgresql+psycopg2://USER@HOST:PORT/DATABASE "
           "(README 'The store')")
SQLITE_FIX = "point GLUE_STORE_URL at a file in a writable folder, e.g. sqlite:///var/store.db"


def shown_url(url: str) -> str:
    """A database URL as a message shows it, without the password (quoted when it is not a URL)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(re.sub(r"//[^/@]*@", "//***@", url))


def store_setting(url: str) -> str:
    """`GLUE_STORE_URL=...` as a message shows it, without the password."""
    return f"GLUE_STORE_URL={shown_url(url)}"


def _parse_store_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"{store_setting(url)} is not a database URL: {URL_FIX}") from exc
    if parsed.get_backend_name() not in STORE_DIALECTS:
        try:
            parsed.get_dialect()
        except NoSuchModuleError as exc:
            raise ConfigError(f"{store_setting(url)}: unknown database dialect '{parsed.drivername}' (the "
                              f"store is SQLite or PostgreSQL): {URL_FIX}") from exc
        raise ConfigError(f"{store_setting(url)}: the store is SQLite or PostgreSQL, not "
                          f"{parsed.get_backend_name()}: {URL_FIX}")
    return parsed


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite store URL (also of a `file:` URI); None for memory and other databases."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or parsed.query.get("mode") == "memory":
        return None
    return Path(urlsplit(database).path if database.startswith("file:") else database)


def store_identity(url: str) -> object:
    """What tells the store at `url` from another one put in its place: a SQLite file's inode,
    a PostgreSQL database's oid; None for a SQLite file that is gone (or in memory). A store
    that cannot be reached raises as a query would."""
    if make_url(url).get_backend_name() == "sqlite":
        path = sqlite_path(url)
        try:
            stat = path.stat() if path is not None else None
        except FileNotFoundError:
            return None
        return (stat.st_dev, stat.st_ino) if stat else None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar()
    finally:
        engine.dispose()


def confirm_same_store(url: str, identity: object) -> None:
    """A ConfigError when the store at `url` is gone, unreachable or another one than `identity`
    (store_identity) was taken from, e.g. deleted or dropped while a sync ran."""
    try:
        now = store_identity(url)
    except Exception as exc:
        error = store_error(exc, url)
        if error is None:
            raise
        raise error from exc
    if now != identity:
        what = "file was deleted" if sqlite_path(url) else "database was dropped"
        raise ConfigError(f"{store_setting(url)}: the store {what} or replaced: what was written to it "
                          "went with it; restore the store (or `glue-pipeline store init` a new one) "
                          "and run the command again")


SQLITE_READ_ONLY_FIX = ("point GLUE_STORE_URL at a file this user may write, opened without mode=ro "
                        "(e.g. sqlite:///var/store.db)")
POSTGRES_READ_ONLY_FIX = ("point GLUE_STORE_URL at the primary server (not a read replica), as a role that "
                          "may write; a database set read-only takes writes again after ALTER DATABASE "
                          "{name} SET default_transaction_read_only = off")
# What a database driver says -> what failed and the fix; the first match wins.
STORE_PROBLEMS: list[tuple[str, str, str]] = [
    (r"readonly database|read-only transaction",
     "the store refused the write because it is read-only", "{read_only_fix}"),
    (r"Connection refused", "the database server refused the connection ({where})",
     "start the database server, or set its host and port in GLUE_STORE_URL"),
    (r'database "(?P<name>[^"]+)" does not exist', "the database {name} does not exist (at {where})",
     "create it (createdb {name}), or set the database name in GLUE_STORE_URL"),
    (r"role .* does not exist|password authentication failed|no password supplied|authentication failed",
     "the database server refused the login ({where})",
     "set a user (and password) it accepts in GLUE_STORE_URL"),
    (r"could not translate host name|Name or service not known", "the database host is unknown ({where})",
     "set the database server's host in GLUE_STORE_URL"),
    (r"timeout expired|timed out", "the database server did not answer in time ({where})",
     "check that it runs and can be reached from here"),
    (r"terminating connection|server closed the connection|connection already closed|"
     r"connection has been closed|the database system is (shutting down|starting up|in recovery)",
     "the database server closed the connection: the database was dropped or the server stopped "
     "({where})", "check that the server runs and the database exists, then run the command again"),
    (r"permission denied", "the database user may not use the store's tables ({where})",
     "grant it the rights on the store's tables, or set the owner's user in GLUE_STORE_URL"),
    (r"unable to open database file",
     "cannot open or create the store file {where}: its folder is missing or not writable, or it is a folder",
     SQLITE_FIX),
    (r'(?:no such table: |relation ")(?P<name>[\w.]+)',
     "the store has no table {name}: it is not a glue-pipeline store, or it was deleted or replaced "
     "meanwhile", "run `glue-pipeline store init`, or point GLUE_STORE_URL at the store"),
    (r"file is not a database|database disk image is malformed",
     "the store file {where} is not a SQLite database, or it is damaged",
     "point GLUE_STORE_URL at the store's file, or restore it from a backup"),
    (r"database is locked", "another process held the store's write lock for over 60 s ({where})",
     "wait for the other sync or command to finish, then run this one again"),
    (r"disk I/O error|database or disk is full|No space left",
     "the store file {where} cannot be written (disk full or failing)",
     "free space on its disk, or point GLUE_STORE_URL at a file on another one"),
]


def store_error(exc: BaseException, url: str) -> ConfigError | None:
    """A driver's failure to reach or use the store as a ConfigError naming GLUE_STORE_URL, what
    failed and the fix; None for errors that are not the store's (a bug shows as itself)."""
    if isinstance(exc, ConfigError):
        return exc
    if not isinstance(exc, DatabaseError | InterfaceError) or not getattr(exc, STORE_ERROR_MARK, False):
        return None
    said = str(getattr(exc, "orig", None) or exc)
    if getattr(getattr(exc, "orig", None), "pgcode", None) == "25006":  # read_only_sql_transaction
        said += " read-only transaction"
    path, parsed = sqlite_path(url), make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    where = str(path or parsed.database) if sqlite else f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    for pattern, problem, fix in STORE_PROBLEMS:
        found = re.search(pattern, said)
        if found:
            names = {"where": where, "name": found.groupdict().get("name") or parsed.database,
                     "read_only_fix": SQLITE_READ_ONLY_FIX if sqlite
                     else POSTGRES_READ_ONLY_FIX.format(name=parsed.database)}
            return ConfigError(f"{store_setting(url)}: {problem.format(**names)}: {fix.format(**names)}")
    if isinstance(exc, OperationalError | InterfaceError):
        return ConfigError(f"{store_setting(url)}: the store could not be used ({type(exc).__name__}; "
                           "--verbose shows the database's own message): check that the database it "
                           "names runs and is reachable")
    return None


def refusing_error(exc: BaseException) -> BaseException | None:
    """The driver's own error behind a statement the database refused, without the statement
    that SQLAlchemy's wrapper adds; None for an error that is not the database's."""
    if not isinstance(exc, DBAPIError):
        return None
    return exc.orig if exc.orig is not None else exc
