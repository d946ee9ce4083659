"""The widths of the store's text columns, as plain numbers: what a value written to a column
may hold at most, so that values from Microsoft are cut to them where they enter (untrusted.py)."""

from __future__ import annotations

from sqlalchemy import String

from glue_pipeline.store.schema import metadata


def column_width(table: str, column: str) -> int:
    """The length of the store's String column `table`.`column`; a TypeError when it has none."""
    found = metadata.tables[table].c[column]
    if not isinstance(found.type, String) or found.type.length is None:
        raise TypeError(f"store column {found} is not a String with a length")
    return found.type.length
