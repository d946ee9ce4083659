"""What the last successful sync of a tenant read, kept so the next one can read less: the user
table with its Graph delta link, and the mailbox report with the day it was fetched.

Each entry is one Parquet file written atomically (temporary file, then rename) after the
tenant's store transaction has committed, so the state never runs ahead of the store: after a
crash the next sync replays changes from the older link, and the store's keyed writes make that
harmless. When a delta query brought no change, only the new state is written, beside the file
(TENANT_ID.state.json); it applies while the file is the one it was written for (the same
`generation`).
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_META_KEY = b"glue_pipeline"


class CachedTable:
    """A cached table and its state (delta_link / full_read_at for users; fetched_on for the
    mailbox report). Loaded from a file, the frame and the rows are built only when asked for."""

    def __init__(self, frame: pd.DataFrame | None, state: dict, table: pa.Table | None = None,
                 rows_unchanged: bool = False) -> None:
        self._frame, self.state, self._table = frame, state, table
        # The rows are those of the file it was loaded from: saving it rewrites only the state.
        self.rows_unchanged = rows_unchanged

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            assert self._table is not None
            self._frame = self._table.to_pandas()
        return self._frame

    def rows(self) -> list[dict]:
        """Rows as plain Python values (lists stay lists)."""
        return self._table.to_pylist() if self._table is not None else records(self.frame)


class TenantCache:
    """One folder per kind of table, one file per tenant."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, kind: str, tenant_id: str) -> Path:
        return self.root / kind / f"{tenant_id}.parquet"

    def _state_path(self, kind: str, tenant_id: str) -> Path:
        return self.root / kind / f"{tenant_id}.state.json"

    def load(self, kind: str, tenant_id: str) -> CachedTable | None:
        path = self._path(kind, tenant_id)
        try:
            table = pq.read_table(path)
        except (FileNotFoundError, pa.ArrowInvalid, OSError):
            return None  # missing or damaged: the sync reads everything again
        state = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
        try:  # a newer state for the same rows (same generation), written without the rows
            newer = json.loads(self._state_path(kind, tenant_id).read_text(encoding="utf-8"))
            if newer.get("generation") == state.get("generation"):
                state = newer["state"]
        except (OSError, ValueError, KeyError):
            pass
        return CachedTable(None, state, table)

    def save(self, kind: str, tenant_id: str, entry: CachedTable) -> None:
        path = self._path(kind, tenant_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.rows_unchanged and entry.state.get("generation"):
            _write_atomically(self._state_path(kind, tenant_id), json.dumps(
                {"generation": entry.state["generation"], "state": entry.state}).encode())
            return
        state = {**entry.state, "generation": uuid.uuid4().hex}
        table = pa.Table.from_pandas(entry.frame, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), _META_KEY: json.dumps(state).encode()}
        tmp = _temporary(path)
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
        os.replace(tmp, path)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # unique per writer, threads too


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = _temporary(path)
    tmp.write_bytes(data)
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
