"""What a sync did, read back from the store: per-run totals and the failed tenants."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from glue_pipeline.matching.organizations import OPEN_STATUSES
from glue_pipeline.render import terminal_text
from glue_pipeline.store.schema import contacts, sync_results, sync_runs, tenants


@dataclass
class SyncSummary:
    run_ids: list[str]
    tenants: int = 0
    matched: int = 0
    unmatched: int = 0
    failed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    held: int = 0
    skipped: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (tenant id, name, message)


def summarize(engine: Engine, run_ids: list[str]) -> SyncSummary:
    summary = SyncSummary(run_ids)
    with engine.connect() as conn:
        rows = conn.execute(
            select(sync_results, tenants.c.display_name)
            .join(tenants, tenants.c.tenant_id == sync_results.c.tenant_id, isouter=True)
            .where(sync_results.c.run_id.in_(run_ids))).all()
    for row in rows:
        summary.tenants += 1
        summary.matched += row.status == "synced"
        summary.unmatched += row.status == "held"
        summary.failed += row.status == "failed"
        for name in ("created", "updated", "unchanged", "held", "skipped"):
            setattr(summary, name, getattr(summary, name) + getattr(row, name))
        if row.error:
            summary.errors.append((row.tenant_id, row.display_name or row.tenant_id, row.error))
    return summary


def contact_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(contacts)).scalar_one()


def last_run_id(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(sync_runs.c.run_id).order_by(sync_runs.c.started_at.desc())
                            .limit(1)).scalar()


def format_summary(summary: SyncSummary) -> str:
    """Lines for a terminal: the tenants' names, ids and errors come from Microsoft, each is made
    one safe line."""
    lines = [
        f"tenants: {summary.tenants} ({summary.matched} matched, {summary.unmatched} unmatched, "
        f"{summary.failed} failed)",
        f"contacts: {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.held} held back",
        f"users not synced by the user selection: {summary.skipped}",
        f"errors: {len(summary.errors)}",
    ]
    lines += [f"  - {terminal_text(name)}: {terminal_text(message)}"
              for _tenant_id, name, message in summary.errors]
    if summary.errors:
        lines.append("re-run the failed tenants alone: glue-pipeline sync " + " ".join(
            f"--tenant {terminal_text(tenant_id)}" for tenant_id, _name, _message in summary.errors))
    return "\n".join(lines)


def next_steps(engine: Engine) -> list[str]:
    """What an analyst can do now, with the commands."""
    from glue_pipeline.store.schema import held_users, tenant_matches

    with engine.connect() as conn:
        waiting = conn.execute(select(func.count()).select_from(tenant_matches).where(
            tenant_matches.c.status.in_(OPEN_STATUSES))).scalar_one()
        held = conn.execute(select(func.count()).select_from(held_users)).scalar_one()
    steps = []
    if waiting:
        steps.append(f"{waiting} tenants wait for an organization match: glue-pipeline match list --open")
    if held:
        steps.append(f"{held} users wait for a decision (likely duplicates, ambiguous): glue-pipeline match held")
    return steps
