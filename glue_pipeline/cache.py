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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from glue_pipeline import frames

_META_KEY = b"glue_pipeline"


class CacheError(Exception):
    """A cached file whose rows cannot be read. It has been removed, so the next sync reads the
    tenant in full."""


class CacheState(TypedDict, total=False):
    """What an entry keeps beside its rows, as JSON; `generation` names the file it belongs to."""

    # users
    delta_link: str
    full_read_at: str  # ISO-8601
    fields: list[str]
    # the mailbox report
    fetched_on: str  # the UTC day
    mailbox_state: str
    # both
    cleaning: int  # untrusted.CLEANING_VERSION
    generation: str


class CachedTable:
    """A cached table and its state (delta_link / full_read_at for users; fetched_on for the
    mailbox report). Loaded from a file, only the state is read at once: the rows are read, and
    the frame built, when first asked for (an unchanged tenant never needs them). `frame` may
    also be a function that builds it."""

    def __init__(self, frame: pd.DataFrame | Callable[[], pd.DataFrame] | None, state: CacheState,
                 source: pq.ParquetFile | None = None, path: Path | None = None,
                 rows_unchanged: bool = False) -> None:
        self._frame, self.state = frame, state
        # The open file: its rows are read from it even if a newer file replaced it since.
        self._source, self._path = source, path
        self._table: pa.Table | None = None
        # The rows are those of the file it was loaded from: saving it rewrites only the state.
        self.rows_unchanged = rows_unchanged

    @property
    def frame(self) -> pd.DataFrame:
        if callable(self._frame):
            self._frame = self._frame()
        if self._frame is None:
            self._frame = self._arrow().to_pandas()
        return self._frame

    def rows(self) -> list[dict[str, Any]]:
        """Rows as plain Python values (lists stay lists)."""
        return self._arrow().to_pylist() if self._source is not None else records(self.frame)

    def _arrow(self) -> pa.Table:
        if self._table is None:
            assert self._source is not None and self._path is not None
            try:
                self._table = self._source.read()
            except (pa.ArrowException, OSError) as exc:
                self._path.unlink(missing_ok=True)
                raise CacheError(f"the cached file {self._path} could not be read ({exc}); it was removed, "
                                 "so the next sync reads the tenant in full") from None
            finally:
                self._source.close()
        return self._table


class TenantCache:
    """One folder per kind of table, one file per tenant."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, kind: str, tenant_id: str) -> Path:
        return self.root / kind / f"{tenant_id}.parquet"

    def _state_path(self, kind: str, tenant_id: str) -> Path:
        return self.root / kind / f"{tenant_id}.state.json"

    def load(self, kind: str, tenant_id: str) -> CachedTable | None:
        """The entry with its state; None when there is none or its file is damaged (the sync
        then reads everything again). Its rows are read only when asked for."""
        path = self._path(kind, tenant_id)
        try:
            source = pq.ParquetFile(path)
            metadata = source.schema_arrow.metadata or {}
        except (FileNotFoundError, pa.ArrowException, OSError):
            return None
        state: CacheState = json.loads(metadata.get(_META_KEY, b"{}"))
        try:  # a newer state for the same rows (same generation), written without the rows
            newer = json.loads(self._state_path(kind, tenant_id).read_text(encoding="utf-8"))
            if newer.get("generation") == state.get("generation"):
                state = newer["state"]
        except (OSError, ValueError, KeyError):
            pass
        return CachedTable(None, state, source, path)

    def save(self, kind: str, tenant_id: str, entry: CachedTable) -> None:
        path = self._path(kind, tenant_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.rows_unchanged and entry.state.get("generation"):
            write_atomically(self._state_path(kind, tenant_id), json.dumps(
                {"generation": entry.state["generation"], "state": entry.state}).encode())
            return
        state: CacheState = {**entry.state, "generation": uuid.uuid4().hex}
        table = pa.Table.from_pandas(entry.frame, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), _META_KEY: json.dumps(state).encode()}
        tmp = _temporary(path)
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
        os.replace(tmp, path)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # unique per writer, threads too


def write_atomically(path: Path, data: bytes) -> None:
    """Write the file whole or not at all: a reader never sees half of it."""
    tmp = _temporary(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values (Parquet gives numpy arrays for list columns)."""
    out = []
    for row in frames.records(frame):
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
