"""The sync log read back (`glue-pipeline logs`): entries filtered in SQL, newest first, and a
running run's new entries as they are committed.

Newest first is the order the entries were written (sync_log.id): the primary key serves it
and, with a tenant or run filter, that column's index.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Engine, Select, and_, func, select, true
from sqlalchemy import Row as SqlRow

from glue_pipeline.render import terminal_text
from glue_pipeline.store.overview import last_run_id
from glue_pipeline.store.rows import as_utc
from glue_pipeline.store.schema import sync_log, sync_runs, tenants
from glue_pipeline.store.tenant_refs import matching_tenants
from glue_pipeline.vocabulary import LogAction, LogLevel, RunStatus, values

LEVELS: tuple[LogLevel, ...] = cast(tuple[LogLevel, ...], values(LogLevel))  # least to most severe
ACTIONS: tuple[LogAction, ...] = cast(tuple[LogAction, ...], values(LogAction))
SINCE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION = re.compile(r"(\d+)\s*([smhd])", re.IGNORECASE)
FOLLOW_INTERVAL_S = 1.0  # how often a follower polls the store


class LogQueryError(ValueError):
    """A filter that names nothing, or names it ambiguously: the message names the fix."""


@dataclass(frozen=True)
class LogFilter:
    tenant_ids: tuple[str, ...] = ()
    run_id: str | None = None
    level: LogLevel | None = None  # this level or worse
    actions: tuple[LogAction, ...] = ()
    since: datetime | None = None  # aware


@dataclass(frozen=True)
class LoggedEntry:
    """A sync_log row with its tenant's display name (None when the tenant is not in `tenants`)."""

    id: int
    run_id: str
    tenant_id: str | None
    tenant_name: str | None
    at: datetime  # aware, UTC
    level: LogLevel
    action: LogAction
    contact_id: int | None
    user_id: str | None
    message: str
    configuration_id: int | None = None
    device_id: str | None = None


@dataclass(frozen=True)
class LogPage:
    entries: list[LoggedEntry]  # newest first
    total: int  # entries matching the filter; more than len(entries) when the limit cut them


def parse_level(word: str) -> LogLevel:
    for level in LEVELS:
        if word.strip().lower() == level:
            return level
    raise LogQueryError(f"unknown level '{terminal_text(word)}': give one of {', '.join(LEVELS)} "
                        "(that level or worse)")


def parse_actions(words: tuple[str, ...]) -> tuple[LogAction, ...]:
    unknown = [w for w in words if w.strip().lower() not in ACTIONS]
    if unknown:
        raise LogQueryError(f"unknown action {', '.join(repr(w) for w in unknown)}: the actions are "
                            f"{', '.join(ACTIONS)}")
    return tuple(cast(LogAction, w.strip().lower()) for w in words)


def parse_since(text: str, now: datetime) -> datetime:
    """The aware time `text` names: a duration before `now` (90s, 30m, 2h, 7d) or an ISO-8601
    time (a date alone is its midnight; without a zone it is UTC)."""
    value = text.strip()
    duration = _DURATION.fullmatch(value)
    if duration:
        amount, unit = int(duration[1]), SINCE_UNITS[duration[2].lower()]
        try:
            return now - timedelta(**{unit: amount})
        except OverflowError:
            raise LogQueryError(f"--since '{terminal_text(text)}' reaches too far back: give a shorter "
                                "duration or an ISO-8601 time") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LogQueryError(f"--since '{terminal_text(text)}' is neither a duration (90s, 30m, 2h, 7d) nor an "
                            "ISO-8601 time (2024-05-01, 2024-05-01T08:00:00Z, 2024-05-01T10:00:00+02:00; "
                            "without a zone it is UTC)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_tenants(engine: Engine, refs: tuple[str, ...]) -> tuple[str, ...]:
    """The tenant id each reference names: a tenant id, partition key or display name
    (store/tenant_refs.py), else the start of one tenant's id (as the log's lines show it), else an
    id the log holds for a tenant `tenants` does not know."""
    if not refs:
        return ()
    with engine.connect() as conn:
        known = [(row.tenant_id, row.display_name)
                 for row in conn.execute(select(tenants.c.tenant_id, tenants.c.display_name)
                                         .order_by(tenants.c.tenant_id))]
        found: list[str] = []
        for ref in refs:
            wanted = ref.strip().lower()
            matches = [(t["tenant_id"], t["display_name"]) for t in matching_tenants(conn, ref)] \
                or [(i, n) for i, n in known if wanted and i.lower().startswith(wanted)]
            if len(matches) > 1:
                listed = "; ".join(f"{terminal_text(n)} ({i})" for i, n in matches)
                raise LogQueryError(f"{len(matches)} tenants match '{terminal_text(ref)}': {listed}: give the "
                                    "tenant id with --tenant")
            if matches:
                found.append(matches[0][0])
            elif wanted and conn.execute(select(sync_log.c.tenant_id).where(sync_log.c.tenant_id == ref.strip())
                                         .limit(1)).first():
                found.append(ref.strip())
            else:
                raise LogQueryError(f"no tenant has the id or name '{terminal_text(ref)}': `glue-pipeline match "
                                    "list` lists every tenant with its id, `glue-pipeline status` the last "
                                    "sync's failed ones")
    return tuple(dict.fromkeys(found))


def resolve_run(engine: Engine, ref: str) -> str:
    """The run id `ref` names: `last` (the newest run), a run id, or the start of one (as the
    Dagster UI shortens them)."""
    if ref.strip().lower() == "last":
        run_id = last_run_id(engine)
        if run_id is None:
            raise LogQueryError("no sync has run yet against this store, so there is no last run: run "
                                "`glue-pipeline sync` or `make demo`")
        return run_id
    wanted = ref.strip()
    with engine.connect() as conn:
        if conn.execute(select(sync_runs.c.run_id).where(sync_runs.c.run_id == wanted)).first() or \
                conn.execute(select(sync_log.c.id).where(sync_log.c.run_id == wanted).limit(1)).first():
            return wanted
        starting = list(conn.execute(select(sync_runs.c.run_id)
                                     .where(sync_runs.c.run_id.startswith(wanted, autoescape=True))
                                     .order_by(sync_runs.c.started_at.desc()).limit(6)).scalars())
    if len(starting) == 1 and wanted:
        return str(starting[0])
    if len(starting) > 1 and wanted:
        raise LogQueryError(f"several sync runs start with '{terminal_text(ref)}' ({', '.join(starting[:5])}"
                            f"{', ...' if len(starting) > 5 else ''}): give more of the run id")
    raise LogQueryError(f"no sync run '{terminal_text(ref)}' is in the store: `--run last` is the newest run, "
                        "`glue-pipeline status` names it, the Dagster UI lists them all")


def run_status(engine: Engine, run_id: str) -> RunStatus | None:
    with engine.connect() as conn:
        status = conn.execute(select(sync_runs.c.status).where(sync_runs.c.run_id == run_id)).scalar()
    return cast(RunStatus | None, status)


def newest_running_run(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(sync_runs.c.run_id).where(sync_runs.c.status == "running")
                            .order_by(sync_runs.c.started_at.desc()).limit(1)).scalar()


def _where(filters: LogFilter) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if filters.tenant_ids:
        conditions.append(sync_log.c.tenant_id.in_(filters.tenant_ids))
    if filters.run_id is not None:
        conditions.append(sync_log.c.run_id == filters.run_id)
    if filters.level is not None:
        conditions.append(sync_log.c.level.in_(LEVELS[LEVELS.index(filters.level):]))
    if filters.actions:
        conditions.append(sync_log.c.action.in_(filters.actions))
    if filters.since is not None:
        # SQLite keeps the time's text without its zone: compare in UTC, as the store writes it.
        conditions.append(sync_log.c.at >= filters.since.astimezone(UTC))
    return and_(true(), *conditions)


def _entries(where: ColumnElement[bool]) -> Select[Any]:
    return (select(sync_log, tenants.c.display_name)
            .join(tenants, tenants.c.tenant_id == sync_log.c.tenant_id, isouter=True)
            .where(where))


def _entry(row: SqlRow[Any]) -> LoggedEntry:
    values = dict(row._mapping)
    name = values.pop("display_name")
    # PostgreSQL hands times back in the session's zone, SQLite without one.
    return LoggedEntry(**{**values, "at": as_utc(values["at"]).astimezone(UTC), "tenant_name": name})


def read_log(engine: Engine, filters: LogFilter, limit: int) -> LogPage:
    """The newest `limit` entries matching the filter, newest first, and how many match in all."""
    where = _where(filters)
    with engine.connect() as conn:
        rows = [_entry(r) for r in conn.execute(_entries(where).order_by(sync_log.c.id.desc()).limit(limit + 1))]
        total = len(rows)
        if total > limit:  # counted only when the limit cuts them
            total = conn.execute(select(func.count()).select_from(sync_log).where(where)).scalar_one()
    return LogPage(rows[:limit], total)


class LogFollower:
    """A run's new entries (of those matching the filter), oldest first, as their transactions
    commit. On PostgreSQL a transaction may commit after another that took later ids, so each poll
    looks again at the ids of the last `lookback` polls, and the last poll at every id since the
    start; an entry is handed out once."""

    def __init__(self, engine: Engine, filters: LogFilter, shown: list[LoggedEntry], lookback: int = 30) -> None:
        self._engine = engine
        self._filters = filters
        self._seen = {e.id for e in shown}
        # Entries before the oldest one shown were left out on purpose (--limit).
        self._start = min(self._seen) - 1 if shown else 0
        top = max(self._seen, default=0)
        self._marks: deque[int] = deque([top], maxlen=lookback)

    def poll(self, last: bool = False) -> list[LoggedEntry]:
        """The entries committed since the last poll; `last`: every entry since the start not yet
        handed out (call it once the run has ended)."""
        floor = self._start if last else self._marks[0]
        query = _entries(and_(_where(self._filters), sync_log.c.id > floor)).order_by(sync_log.c.id)
        with self._engine.connect() as conn:
            rows = [e for e in (_entry(r) for r in conn.execute(query)) if e.id not in self._seen]
        self._seen.update(e.id for e in rows)
        self._marks.append(max(self._marks[-1], *(e.id for e in rows)) if rows else self._marks[-1])
        return rows

    def running(self) -> bool:
        assert self._filters.run_id is not None, "a follower follows one run"
        return run_status(self._engine, self._filters.run_id) == "running"
