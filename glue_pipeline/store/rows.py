"""How the store's repositories hand rows out and write keyed rows: a row leaves the store as a
plain dict, never as a SQLAlchemy row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Executable, Table, and_, insert, update

Row = dict[str, Any]  # column name -> value


def first_row(conn: Connection, query: Executable) -> Row | None:
    row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def all_rows(conn: Connection, query: Executable) -> list[Row]:
    return [dict(row._mapping) for row in conn.execute(query)]


def update_or_insert(conn: Connection, table: Table, key: Row, values: Row) -> None:
    """Set `values` on the row with this key; insert the row when there is none."""
    where = and_(*(table.c[name] == value for name, value in key.items()))
    if not conn.execute(update(table).where(where).values(**values)).rowcount:
        conn.execute(insert(table).values(**key, **values))


def as_utc(value: datetime) -> datetime:
    """A time the store wrote (always UTC) as an aware datetime: SQLite hands it back without its zone."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
