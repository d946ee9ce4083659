"""What the last successful sync of a tenant read, kept so the next one can read less: the user
table with its Graph delta link, and the mailbox report with the day it was fetched.

Each entry is one Parquet file written atomically (temporary file, then rename) after the
tenant's store transaction has committed, so the state never runs ahead of the store: after a
crash the next sync replays changes from the older link, and the store's keyed writes make that
harmless.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_META_KEY = b"glue_pipeline"


@dataclass
class CachedTable:
    frame: pd.DataFrame
    # delta_link / full_read_at for users; fetched_on for the mailbox report.
    state: dict


class TenantCache:
    """One folder per kind of table, one file per tenant."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, kind: str, tenant_id: str) -> Path:
        return self.root / kind / f"{tenant_id}.parquet"

    def load(self, kind: str, tenant_id: str) -> CachedTable | None:
        path = self._path(kind, tenant_id)
        try:
            table = pq.read_table(path)
        except (FileNotFoundError, pa.ArrowInvalid, OSError):
            return None  # missing or damaged: the sync reads everything again
        state = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
        return CachedTable(table.to_pandas(), state)

    def save(self, kind: str, tenant_id: str, entry: CachedTable) -> None:
        path = self._path(kind, tenant_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(entry.frame, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), _META_KEY: json.dumps(entry.state).encode()}
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # unique per writer, threads too
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
        os.replace(tmp, path)


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain Python values (Parquet gives numpy arrays for list columns)."""
    out = []
    for row in frame.to_dict("records"):
        out.append({k: _plain(v) for k, v in row.items()})
    return out


def _plain(value: object) -> object:
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value.tolist()] if isinstance(value.tolist(), list) else value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def utc_day(moment: datetime) -> str:
    return moment.date().isoformat()
