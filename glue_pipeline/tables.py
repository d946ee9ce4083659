"""A tenant's tables as an analyst reads them: Parquet files, and the row counts, column schemas
and previews its Dagster materialization shows (plain values, so a worker process can send them
back).

A preview is read in the Dagster UI, so it is made to fit a 1600 px wide screen: the columns an
analyst decides on come first, each cell is one line cut to its column's length with an ellipsis,
and missing values are empty cells. The Parquet files keep every value whole."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, TypedDict, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from glue_pipeline.cache import write_atomically
from glue_pipeline.frames import is_missing
from glue_pipeline.render import markdown_table, terminal_text

# The per-tenant tables, with what each holds; all are written as TABLE/TENANT_ID.parquet.
TENANT_TABLES = {
    "users": "Users of the tenant as Graph returns them ($select of the mapped fields).",
    "licenses": "Subscribed SKUs: consumed, enabled, suspended, warning, unused.",
    "mailbox_usage": "The mailbox usage report (D7), parsed by column name.",
    "organization_match": "The tenant's organization: status, method, reason, suggestions.",
    "contact_matches": "Each user's contact: match, create, held, skipped, ambiguous, with the reason.",
    "duplicate_risk": "Would-be new contacts that look like an existing contact: candidate, score, "
                      "level and reasons.",
    "differences": "Open differences: documented values a sync replaced with Microsoft's, first and last seen "
                   "(the store's open_differences).",
    "devices": "Intune managed devices as Graph returns them (empty when devices are off or cannot be read).",
    "device_matches": "Each device's configuration: match, create, held, skipped, ambiguous, with the reason.",
    "device_risk": "Would-be new configurations that look like an existing configuration: candidate, score, "
                   "level and reasons.",
}
# Tables small and telling enough to preview in the UI; the others show their row count and file.
PREVIEWED = ("organization_match", "contact_matches", "duplicate_risk", "differences", "licenses",
             "device_matches", "device_risk")
PREVIEW_ROWS = 10
# A contact_matches preview shows every user waiting for an analyst, up to this many rows (a
# tenant whose organization match is open holds all its users: its Parquet file lists them all).
WAITING_PREVIEW_ROWS = 50

# Per previewed table, the columns an analyst decides on, in the order shown; the table's ids
# follow, then its other columns, each in the frame's order.
LEADING_COLUMNS = {
    "organization_match": ["tenant_name", "status", "organization_name", "reason", "suggestions"],
    "contact_matches": ["display_name", "user_principal_name", "action", "reason", "contact_name"],
    "duplicate_risk": ["display_name", "user_principal_name", "contact_name", "score", "level", "reasons"],
    "differences": ["display_name", "user_principal_name", "contact_name", "field", "store_value",
                    "microsoft_value"],
    "licenses": ["product_name", "part_number", "capability_status", "consumed", "enabled", "unused",
                 "suspended", "warning"],
    "device_matches": ["device_name", "serial_number", "action", "reason", "configuration_name"],
    "device_risk": ["device_name", "serial_number", "configuration_name", "score", "level", "reasons"],
}
# How many characters of a column a preview cell shows. A preview of more than 1,000 characters
# opens in a dialog whose table is 1,240 px wide at 1600 px (14 px monospace: 8.4 px a character,
# 16 px of padding a cell); a browser wraps text at spaces but not inside an address or an id, so
# those are cut shortest: a GUID to its first 8 characters (enough to tell rows apart), an address
# to 28, so that a differences row with two addresses still fits. Names wrap; free text (reasons,
# suggestions, a status detail) is cut at CELL_LIMIT, as is any other column.
CELL_LIMITS = {
    **dict.fromkeys(["tenant_id", "user_id", "sku_id", "run_id", "device_id"], 9),
    **dict.fromkeys(["user_principal_name", "store_value", "microsoft_value"], 28),
    **dict.fromkeys(["display_name", "contact_name", "tenant_name", "organization_name", "product_name",
                     "device_name", "configuration_name", "serial_number"], 30),
}
CELL_LIMIT = 60
ELLIPSIS = "…"
# The order of the contact_matches preview: users an analyst must decide on, then new contacts.
ACTION_ORDER = {"held": 0, "ambiguous": 0, "create": 1}


def cell_text(value: object, limit: int) -> str:
    """A value as a preview cell shows it, before markdown escaping: one line without control
    characters, empty when missing, a list's items joined, a whole float without '.0', a time
    to the minute, and text longer than `limit` cut to it, ending in an ellipsis."""
    if isinstance(value, list | tuple | np.ndarray):
        text = ", ".join(cell_text(item, limit) for item in value if not is_missing(item))
    elif isinstance(value, float | np.floating) and float(value).is_integer():
        text = str(int(value))
    elif isinstance(value, datetime) and not is_missing(value):
        text = f"{value:%Y-%m-%d %H:%M}"
    else:
        text = terminal_text(value)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + ELLIPSIS


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's values as preview cells: cell_text, each at its column's limit."""
    limits = [CELL_LIMITS.get(str(c), CELL_LIMIT) for c in frame.columns]
    return pd.DataFrame([[cell_text(v, limit) for v, limit in zip(values, limits, strict=True)]
                         for values in frame.itertuples(index=False, name=None)], columns=frame.columns)


def preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> str:
    """A markdown preview of the first rows ('(empty)' for none), each cell cut to its column's
    limit and escaped; under it, when rows are left out, how many of the frame's it shows."""
    return markdown_table(_cells(frame.head(rows)), total=len(frame))


def _column_order(table: str, columns: pd.Index) -> list[str]:
    """The table's leading columns, then its ids, then the rest."""
    names = [str(c) for c in columns]
    leading = [c for c in LEADING_COLUMNS.get(table, []) if c in names]
    ids = [c for c in names if c not in leading and (c == "id" or c.endswith("_id"))]
    return leading + ids + [c for c in names if c not in leading and c not in ids]


def _waiting_first(matches: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """contact_matches (or device_matches) with held and ambiguous users first, then creates, then the rest; and
    how many rows to preview: every waiting user, from PREVIEW_ROWS up to WAITING_PREVIEW_ROWS."""
    rank = matches["action"].map(ACTION_ORDER).fillna(len(ACTION_ORDER)).to_numpy()
    waiting = int((rank == 0).sum())
    return matches.iloc[np.argsort(rank, kind="stable")], min(max(PREVIEW_ROWS, waiting), WAITING_PREVIEW_ROWS)


def table_preview(table: str, frame: pd.DataFrame) -> str:
    """The preview of one of a tenant's tables (PREVIEWED), its columns and rows in the order
    an analyst reads them."""
    ordered = frame[_column_order(table, frame.columns)]
    if table in ("contact_matches", "device_matches"):
        ordered, rows = _waiting_first(ordered)
        return preview(ordered, rows)
    return preview(ordered)


def column_schema(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Each column's name and dtype, as Dagster's column schema shows them."""
    return [(str(c), str(t)) for c, t in frame.dtypes.items()]


class Published(TypedDict):
    """A table as publish describes it."""

    rows: int
    path: str | None  # its Parquet file, when written
    preview: str | None  # markdown, for the tables in PREVIEWED
    columns: list[tuple[str, str]]  # column_schema


def publish(tables: dict[str, pd.DataFrame], tenant_id: str, tables_dir: Path | None, run_id: str | None = None,
            carried: dict[str, Published] | None = None) -> dict[str, Published]:
    """Write the tenant's tables (when `tables_dir` is set) and describe them, by table name, with
    the descriptions `carried` of its tables left as they were. With a `run_id` the description is
    kept beside the files (last_published)."""
    report: dict[str, Published] = dict(carried or {})
    for name, frame in tables.items():
        path = None
        if tables_dir is not None:
            path = tables_dir / name / f"{tenant_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
        report[name] = {"rows": len(frame), "path": str(path) if path else None,
                        "preview": table_preview(name, frame) if name in PREVIEWED and len(frame) else None,
                        "columns": column_schema(frame)}
    report = {name: report[name] for name in TENANT_TABLES if name in report}
    if tables_dir is not None and run_id is not None:
        _keep_description(tables_dir, tenant_id, LastPublished(run_id, report))
    return report


class LastPublished(NamedTuple):
    """A tenant's tables as the sync of `run_id` published them."""

    run_id: str
    report: dict[str, Published]


DESCRIPTIONS = ".published"  # under the tables directory: each tenant's LastPublished, as JSON


def _keep_description(tables_dir: Path, tenant_id: str, last: LastPublished) -> None:
    path = tables_dir / DESCRIPTIONS / f"{tenant_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(last._asdict()).encode())


def last_published(tables_dir: Path, tenant_id: str) -> LastPublished | None:
    """The tenant's tables as last published, if their description can be read."""
    try:
        kept = json.loads((tables_dir / DESCRIPTIONS / f"{tenant_id}.json").read_text())
        report = {name: {**described, "columns": [tuple(c) for c in described["columns"]]}
                  for name, described in kept["report"].items()}
        return LastPublished(str(kept["run_id"]), cast(dict[str, Published], report))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_published(described: Published, columns: list[str] | None = None) -> pd.DataFrame | None:
    """A published table as its file holds it (None: no file, or it cannot be read)."""
    if not described["path"]:
        return None
    try:
        return pd.read_parquet(described["path"], columns=columns)
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None
