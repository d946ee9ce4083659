"""Every tenant's state at a glance (`glue-pipeline status` and the tenant_status asset): its
organization, its state, its last successful sync, its users and what its last sync wrote.

A few queries whatever the number of tenants: the tenants with their match and organization,
each tenant's last result and last successful result (one window query over sync_results), the
sync runs in progress, and which tenants those runs have finished.

A tenant's state, the first that applies:
1. paused: an operator paused it (tenants.paused_at).
2. syncing: a sync run in progress covers it and has not finished it. In progress: its sync_runs
   row says running and its run_heartbeats row beat within three heartbeat intervals
   (GLUE_HEARTBEAT_SECONDS); a running row with no or an older beat is a run whose process is
   gone, not a sync in progress.
3. error: its last result failed (sync_results.error, and the cause word when set).
4. unmatched: its match waits for an analyst (tenant_matches.status suggested, conflict or
   unmatched): `glue-pipeline match list --open`.
5. held: an analyst ignored it (its users are not written), or its last sync held its users
   back for want of an organization and a match recorded since then is written by its next sync.
6. ok: its last sync wrote it.
7. new: discovered, never synced yet.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import pandas as pd
from sqlalchemy import Connection, Engine, Row, Select, and_, func, or_, select

from glue_pipeline.settings import heartbeat_seconds_from_env
from glue_pipeline.store.rows import as_utc
from glue_pipeline.store.schema import (
    organizations,
    run_heartbeats,
    sync_results,
    sync_runs,
    tenant_matches,
    tenants,
)
from glue_pipeline.store.writer import utcnow
from glue_pipeline.vocabulary import OpenMatchStatus, values

# A tenant's state in `glue-pipeline status --json` and the tenant_status asset: stable words.
TenantState = Literal["paused", "syncing", "error", "unmatched", "held", "ok", "new"]
STATES: tuple[TenantState, ...] = get_args(TenantState)
LABELS: dict[TenantState, str] = {"paused": "Paused", "syncing": "Syncing…", "error": "Error",
                                  "unmatched": "Unmatched", "held": "Held", "ok": "OK", "new": "New"}

# A heartbeat older than this many beats (GLUE_HEARTBEAT_SECONDS) is a run whose process is gone.
STALE_AFTER_BEATS = 3

# Results are read for the newest RECENT_RUNS runs first, then older ones, in IN lists of at most
# RUN_CHUNK runs and TENANT_CHUNK tenants (SQLite allows 32,766 parameters a statement).
RECENT_RUNS = 8
RUN_CHUNK = 4000
TENANT_CHUNK = 1000

# For runs in progress, the tenants each covers (None: not known, taken as every tenant).
RunTenants = Callable[[Sequence[str]], Mapping[str, Collection[str] | None]]

_OPEN: tuple[str, ...] = values(OpenMatchStatus)
_UNMATCHED_DETAIL = {
    "suggested": "an organization is suggested: accept it or match the tenant (`glue-pipeline match list --open`)",
    "conflict": "its organization is another tenant's: decide (`glue-pipeline match list --open`)",
    "unmatched": "no organization resembles it: match it or create one (`glue-pipeline match list --open`)",
}


@dataclass(frozen=True)
class TenantStatusRow:
    """One tenant's state. `users` is as of its last successful sync; `created` and `updated` are
    the contacts its last sync wrote (0 when that sync failed); None: no such sync yet."""

    tenant_id: str
    name: str | None
    organization_id: int | None
    organization: str | None
    status: TenantState
    detail: str | None  # why, in words: the error, the pause, what the match waits for
    last_synced_at: datetime | None  # its last successful sync (synced or held)
    users: int | None
    created: int | None
    updated: int | None
    match_status: str | None  # tenant_matches.status
    error: str | None  # its last result's, when that failed
    cause: str | None  # vocabulary.FailureCause, when recorded
    syncing_run_id: str | None
    paused_at: datetime | None
    paused_by: str | None
    pause_reason: str | None
    vanished_at: datetime | None

    @property
    def label(self) -> str:
        return LABELS[self.status]


def stale_after() -> timedelta:
    return timedelta(seconds=STALE_AFTER_BEATS * heartbeat_seconds_from_env())


def live_sync_runs(engine: Engine, stale: timedelta | None = None, now: datetime | None = None) -> list[str]:
    """The sync runs in progress: running, with a heartbeat younger than `stale` (default: three
    heartbeat intervals)."""
    since = (now or utcnow()) - (stale_after() if stale is None else stale)
    query = (select(sync_runs.c.run_id).join(run_heartbeats, run_heartbeats.c.run_id == sync_runs.c.run_id)
             .where(sync_runs.c.status == "running", run_heartbeats.c.beat_at >= since)
             .order_by(sync_runs.c.started_at))
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def tenant_statuses(engine: Engine, tenant_ids: Collection[str] | None = None,
                    run_tenants: RunTenants | None = None, stale: timedelta | None = None,
                    now: datetime | None = None) -> list[TenantStatusRow]:
    """The state of every known tenant (or of `tenant_ids`), by name. `run_tenants` tells which
    tenants each sync run in progress covers; without it (or for a run it does not know) a run
    covers every tenant."""
    wanted = None if tenant_ids is None else sorted(set(tenant_ids))
    live = live_sync_runs(engine, stale, now)
    with engine.connect() as conn:
        known = conn.execute(_tenants_query(wanted)).all()
        latest, latest_ok = _last_results(conn, [t.tenant_id for t in known])
        finished: dict[str, set[str]] = {run_id: set() for run_id in live}
        if live:
            for run_id, tenant_id in conn.execute(select(sync_results.c.run_id, sync_results.c.tenant_id)
                                                  .where(sync_results.c.run_id.in_(live))):
                finished[run_id].add(tenant_id)
    covered = dict(run_tenants(live)) if live and run_tenants is not None else {}
    rows = []
    for tenant in known:
        # The dropped tenants of a run (vanished or paused at its start) are not synced by it.
        syncing = None if tenant.vanished_at is not None else next(
            (run_id for run_id in live if tenant.tenant_id not in finished[run_id]
             and _covers(covered.get(run_id), tenant.tenant_id)), None)
        rows.append(_row(tenant, latest.get(tenant.tenant_id), latest_ok.get(tenant.tenant_id), syncing))
    return sorted(rows, key=lambda r: ((r.name or "").casefold(), r.tenant_id))


def _covers(run_covers: Collection[str] | None, tenant_id: str) -> bool:
    return run_covers is None or tenant_id in run_covers


def _tenants_query(wanted: list[str] | None) -> Select[Any]:
    query = (select(tenants.c.tenant_id, tenants.c.display_name, tenants.c.paused_at, tenants.c.paused_by,
                    tenants.c.pause_reason, tenants.c.vanished_at, tenant_matches.c.status.label("match_status"),
                    tenant_matches.c.organization_id, organizations.c.name.label("organization"))
             .join(tenant_matches, tenant_matches.c.tenant_id == tenants.c.tenant_id, isouter=True)
             .join(organizations, organizations.c.id == tenant_matches.c.organization_id, isouter=True))
    return query if wanted is None else query.where(tenants.c.tenant_id.in_(wanted))


def _last_results(conn: Connection, tenant_ids: list[str]) -> tuple[dict[str, Row[Any]], dict[str, Row[Any]]]:
    """Each tenant's last result, and its last successful one, by tenant id. Read through
    sync_results' key (run_id, tenant_id), never by a scan of its whole history: first in the
    newest runs, where nearly every tenant has both; then, for the tenants still without a
    successful result (failing, paused, gone or new), in the older runs."""
    runs = list(conn.execute(select(sync_runs.c.run_id).order_by(sync_runs.c.started_at.desc(),
                                                                  sync_runs.c.run_id.desc())).scalars())
    latest: dict[str, Row[Any]] = {}
    latest_ok: dict[str, Row[Any]] = {}

    def read(run_ids: list[str], of: list[str]) -> None:
        for start in range(0, len(run_ids), RUN_CHUNK):
            for row in conn.execute(_results_query(run_ids[start:start + RUN_CHUNK], of)):
                for found in [latest] + [latest_ok] * (row.status != "failed"):
                    held = found.get(row.tenant_id)
                    if held is None or (row.finished_at, row.run_id) > (held.finished_at, held.run_id):
                        found[row.tenant_id] = row

    for start in range(0, len(tenant_ids), TENANT_CHUNK):
        read(runs[:RECENT_RUNS], tenant_ids[start:start + TENANT_CHUNK])
    rest = [t for t in tenant_ids if t not in latest_ok]
    for start in range(0, len(rest), TENANT_CHUNK):
        read(runs[RECENT_RUNS:], rest[start:start + TENANT_CHUNK])
    return latest, latest_ok


def _results_query(run_ids: list[str], tenant_ids: list[str]) -> Select[Any]:
    """Of these runs and tenants, each tenant's last result (latest = 1) and its last successful
    one (ok = 1 and not failed): at most two rows a tenant."""
    newest_first = (sync_results.c.finished_at.desc(), sync_results.c.run_id.desc())
    failed = sync_results.c.status == "failed"
    ranked = select(
        sync_results.c.tenant_id, sync_results.c.run_id, sync_results.c.status, sync_results.c.users,
        sync_results.c.created, sync_results.c.updated, sync_results.c.error, sync_results.c.cause,
        sync_results.c.finished_at,
        func.row_number().over(partition_by=sync_results.c.tenant_id, order_by=newest_first).label("latest"),
        func.row_number().over(partition_by=(sync_results.c.tenant_id, failed), order_by=newest_first).label("ok"),
    ).where(sync_results.c.run_id.in_(run_ids), sync_results.c.tenant_id.in_(tenant_ids)).subquery()
    return select(ranked).where(or_(ranked.c.latest == 1, and_(ranked.c.ok == 1, ranked.c.status != "failed")))


def _when(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _state(tenant: Row[Any], last: Row[Any] | None, syncing: str | None) -> tuple[TenantState, str | None]:
    if tenant.paused_at is not None:
        since = f"{as_utc(tenant.paused_at):%Y-%m-%d %H:%M} UTC"
        return "paused", f"paused by {tenant.paused_by or 'unknown'} since {since}" + (
            f": {tenant.pause_reason}" if tenant.pause_reason else "")
    if syncing is not None:
        return "syncing", f"in run {syncing}"
    if last is not None and last.status == "failed":
        error = last.error or "failed without a message"
        return "error", f"{last.cause}: {error}" if last.cause else error
    if tenant.match_status in _OPEN:
        return "unmatched", _UNMATCHED_DETAIL[tenant.match_status]
    if tenant.match_status == "ignored":
        return "held", "ignored by an analyst: its users are not written"
    if last is not None and last.status == "held":
        if tenant.match_status == "matched":
            return "held", "matched since its last sync: the next sync writes its users"
        return "held", "its last sync held its users back: no organization"
    if last is not None:
        return "ok", None
    return "new", "discovered, not synced yet"


def _row(tenant: Row[Any], last: Row[Any] | None, last_ok: Row[Any] | None, syncing: str | None) -> TenantStatusRow:
    state, detail = _state(tenant, last, syncing)
    if tenant.vanished_at is not None:
        gone = f"no longer listed by the partner account since {as_utc(tenant.vanished_at):%Y-%m-%d %H:%M} UTC"
        detail = f"{detail}; {gone}" if detail else gone
    failed = last if last is not None and last.status == "failed" else None
    return TenantStatusRow(
        tenant_id=tenant.tenant_id, name=tenant.display_name, organization_id=tenant.organization_id,
        organization=tenant.organization, status=state, detail=detail,
        last_synced_at=_when(last_ok.finished_at) if last_ok is not None else None,
        users=last_ok.users if last_ok is not None else None,
        created=last.created if last is not None else None, updated=last.updated if last is not None else None,
        match_status=tenant.match_status, error=failed.error if failed else None,
        cause=failed.cause if failed else None, syncing_run_id=syncing, paused_at=_when(tenant.paused_at),
        paused_by=tenant.paused_by, pause_reason=tenant.pause_reason, vanished_at=_when(tenant.vanished_at))


def record(row: TenantStatusRow) -> dict[str, object]:
    """The row as plain JSON values: times in ISO 8601 (UTC), counts as numbers, the state as its
    word (`status`) and as shown (`label`)."""
    fields = {name: value.isoformat() if isinstance(value, datetime) else value
              for name, value in vars(row).items()}
    return {**fields, "label": row.label}


# The columns of the status table (the CLI's lines, the tenant_status asset's preview).
STATUS_COLUMNS = ["tenant", "tenant_id", "organization", "status", "last_synced", "users", "created", "updated",
                  "detail"]
_COUNTS = ["users", "created", "updated"]


def status_frame(rows: Sequence[TenantStatusRow]) -> pd.DataFrame:
    """The rows as the status table shows them (STATUS_COLUMNS): the state as shown, the last
    successful sync to the minute (UTC), counts as nullable integers."""
    frame = pd.DataFrame([[r.name, r.tenant_id, r.organization, r.label,
                           f"{r.last_synced_at:%Y-%m-%d %H:%M}" if r.last_synced_at else None, r.users, r.created,
                           r.updated, r.detail] for r in rows], columns=STATUS_COLUMNS, dtype=object)
    return frame.astype(dict.fromkeys(_COUNTS, "Int64"))
