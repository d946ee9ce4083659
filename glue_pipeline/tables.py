"""A tenant's tables as an analyst reads them: Parquet files, and the row counts and previews
its Dagster materialization shows (plain values, so a worker process can send them back)."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import pandas as pd

from glue_pipeline.render import markdown_table

# The per-tenant tables, with what each holds; all are written as TABLE/TENANT_ID.parquet.
TENANT_TABLES = {
    "users": "Users of the tenant as Graph returns them ($select of the mapped fields).",
    "licenses": "Subscribed SKUs: consumed, enabled, suspended, warning, unused.",
    "mailbox_usage": "The mailbox usage report (D7), parsed by column name.",
    "organization_match": "The tenant's organization: status, method, reason, suggestions.",
    "contact_matches": "Each user's contact: match, create, held, skipped, ambiguous, with the reason.",
    "duplicate_risk": "Would-be new contacts that look like an existing contact: candidate, score, "
                      "level and reasons.",
    "differences": "Fields where the store and Microsoft differed before the sync wrote Microsoft's value.",
}
# Tables small and telling enough to preview in the UI; the others show their row count and file.
PREVIEWED = ("organization_match", "contact_matches", "duplicate_risk", "differences", "licenses")
PREVIEW_ROWS = 10


def preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> str:
    """A markdown preview of the first rows ('(empty)' for none), every cell escaped."""
    return markdown_table(frame, rows)


class Published(TypedDict):
    """A table as publish describes it."""

    rows: int
    path: str | None  # its Parquet file, when written
    preview: str | None  # markdown, for the tables in PREVIEWED


def publish(tables: dict[str, pd.DataFrame], tenant_id: str, tables_dir: Path | None) -> dict[str, Published]:
    """Write the tenant's tables (when `tables_dir` is set) and describe them, by table name."""
    report: dict[str, Published] = {}
    for name, frame in tables.items():
        path = None
        if tables_dir is not None:
            path = tables_dir / name / f"{tenant_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
        report[name] = {"rows": len(frame), "path": str(path) if path else None,
                        "preview": preview(frame) if name in PREVIEWED and len(frame) else None}
    return report
