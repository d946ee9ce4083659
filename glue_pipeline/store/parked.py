"""Tenants that fail for a permanent cause (vocabulary.PermanentCause), read from sync_results: the
cause a tenant's previous result recorded, which tells a run whether a failure is already known,
and the tenants whose last sync failed for such a cause, with since when."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, func, not_, or_, select

from glue_pipeline.store.rows import as_utc
from glue_pipeline.store.schema import sync_results, tenants
from glue_pipeline.vocabulary import FailureCause, PermanentCause, values

PERMANENT_CAUSES = values(PermanentCause)
CHUNK = 500  # tenant ids per IN (...) list


def previous_causes(engine: Engine, run_id: str, tenant_ids: Iterable[str]) -> dict[str, FailureCause | None]:
    """Each tenant's result before this run (its latest in another run): the cause it failed
    for, or None when it did not fail. A tenant without an earlier result is left out."""
    ids = sorted(set(tenant_ids))
    found: dict[str, FailureCause | None] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            others = and_(sync_results.c.tenant_id.in_(chunk), sync_results.c.run_id != run_id)
            latest = (select(sync_results.c.tenant_id, func.max(sync_results.c.finished_at).label("at"))
                      .where(others).group_by(sync_results.c.tenant_id).subquery())
            rows = conn.execute(
                select(sync_results.c.tenant_id, sync_results.c.status, sync_results.c.cause)
                .join(latest, and_(latest.c.tenant_id == sync_results.c.tenant_id,
                                   latest.c.at == sync_results.c.finished_at))
                .where(others))
            for row in rows:
                found[row.tenant_id] = row.cause if row.status == "failed" else None
    return found


@dataclass(frozen=True)
class ParkedTenant:
    """A tenant whose last sync failed for a permanent cause."""

    tenant_id: str
    display_name: str | None
    cause: FailureCause
    error: str | None  # its last result's
    since: datetime  # the first of its results in a row that failed for this cause (UTC)
    failed_runs: int  # how many results in a row failed for it
    last_failed_at: datetime


def parked_tenants(engine: Engine) -> list[ParkedTenant]:
    """The tenants whose last result failed for a permanent cause, by name; tenants discovery no
    longer lists and paused tenants are left out (they are not synced)."""
    latest = (select(sync_results.c.tenant_id, func.max(sync_results.c.finished_at).label("at"))
              .group_by(sync_results.c.tenant_id).subquery())
    query = (select(sync_results.c.tenant_id, tenants.c.display_name, sync_results.c.cause, sync_results.c.error,
                    sync_results.c.finished_at)
             .join(latest, and_(latest.c.tenant_id == sync_results.c.tenant_id,
                                latest.c.at == sync_results.c.finished_at))
             .join(tenants, tenants.c.tenant_id == sync_results.c.tenant_id, isouter=True)
             .where(sync_results.c.status == "failed", sync_results.c.cause.in_(PERMANENT_CAUSES),
                    tenants.c.vanished_at.is_(None), tenants.c.paused_at.is_(None))
             .order_by(tenants.c.display_name, sync_results.c.tenant_id))
    parked = []
    with engine.connect() as conn:
        for row in conn.execute(query).all():
            # The streak: its results since the last one that did not fail for this cause.
            other = or_(sync_results.c.status != "failed", sync_results.c.cause.is_(None),
                        not_(sync_results.c.cause == row.cause))
            before = conn.execute(select(func.max(sync_results.c.finished_at))
                                  .where(sync_results.c.tenant_id == row.tenant_id, other)).scalar()
            streak = [sync_results.c.tenant_id == row.tenant_id]
            if before is not None:
                streak.append(sync_results.c.finished_at > before)
            since, count = conn.execute(select(func.min(sync_results.c.finished_at), func.count())
                                        .where(*streak)).one()
            parked.append(ParkedTenant(row.tenant_id, row.display_name, row.cause, row.error, as_utc(since),
                                       int(count), as_utc(row.finished_at)))
    return parked


def left_out_of_full_syncs(engine: Engine) -> dict[str, str]:
    """The tenants a sync of every tenant leaves out, with why: paused by an operator, or parked
    (their last sync failed for a permanent cause: syncing them again every hour would only fail
    again). Each is synced when named (`glue-pipeline sync --tenant`, or its partition from the UI)."""
    with engine.connect() as conn:
        paused = conn.execute(select(tenants.c.tenant_id).where(tenants.c.paused_at.is_not(None))).scalars()
        left_out = {tenant_id: "paused" for tenant_id in paused}
    for tenant in parked_tenants(engine):
        left_out.setdefault(tenant.tenant_id, f"parked ({tenant.cause})")
    return left_out
