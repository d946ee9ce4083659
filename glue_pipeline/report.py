"""What a sync did, read back from the store: per-run totals and the failed tenants."""

from __future__ import annotations

from dataclasses import dataclass, field

from glue_pipeline.matching.organizations import OPEN_STATUSES
from glue_pipeline.render import terminal_text
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.overview import (
    contact_count,
    device_actions,
    last_run_id,
    run_results,
    waiting_for_analysts,
)
from glue_pipeline.store.parked import left_out_of_full_syncs
from glue_pipeline.vocabulary import TenantStatus

# The names other code imports from here, wherever they are defined.
__all__ = ["SyncSummary", "contact_count", "format_summary", "last_run_id", "next_steps", "summarize"]


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
    # Configurations created and updated from Intune devices, and devices held back.
    configurations_created: int = 0
    configurations_updated: int = 0
    devices_held: int = 0


def summarize(engine: Engine, run_ids: list[str]) -> SyncSummary:
    summary = SyncSummary(run_ids)
    for row in run_results(engine, run_ids):
        status: TenantStatus = row["status"]
        summary.tenants += 1
        summary.matched += status == "synced"
        summary.unmatched += status == "held"
        summary.failed += status == "failed"
        for name in ("created", "updated", "unchanged", "held", "skipped"):
            setattr(summary, name, getattr(summary, name) + row[name])
        if row["error"]:
            summary.errors.append((row["tenant_id"], row["display_name"] or row["tenant_id"], row["error"]))
    devices = device_actions(engine, run_ids)
    summary.configurations_created = devices.get("configuration_created", 0)
    summary.configurations_updated = devices.get("configuration_updated", 0)
    summary.devices_held = devices.get("device_held", 0) + devices.get("device_ambiguous", 0)
    return summary


def format_summary(summary: SyncSummary) -> str:
    """Lines for a terminal: the tenants' names, ids and errors come from Microsoft, each is made
    one safe line."""
    lines = [
        f"tenants: {summary.tenants} ({summary.matched} matched, {summary.unmatched} unmatched, "
        f"{summary.failed} failed)",
        f"contacts: {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.held} held back",
        f"users not synced by the user selection: {summary.skipped}",
        f"configurations (Intune devices): {summary.configurations_created} created, "
        f"{summary.configurations_updated} updated, {summary.devices_held} devices held back",
        f"errors: {len(summary.errors)}",
    ]
    lines += [f"  - {terminal_text(name)}: {terminal_text(message)}"
              for _tenant_id, name, message in summary.errors]
    if summary.errors:
        lines.append("re-run the failed tenants alone: glue-pipeline sync " + " ".join(
            f"--tenant {terminal_text(tenant_id)}" for tenant_id, _name, _message in summary.errors))
    return "\n".join(lines)


def next_steps(engine: Engine) -> list[str]:
    """What an analyst or an operator can do now, with the commands."""
    waiting = waiting_for_analysts(engine, OPEN_STATUSES)
    steps = []
    left_out = left_out_of_full_syncs(engine)
    if left_out:
        kinds = " or ".join(sorted({why.split(" ")[0] for why in left_out.values()}))
        steps.append(f"{len(left_out)} {kinds} tenants are left out of syncs of every tenant "
                     f"({', '.join(sorted(left_out))}): glue-pipeline status says why; sync one by name "
                     "with glue-pipeline sync --tenant ID")
    if waiting.tenants:
        steps.append(f"{waiting.tenants} tenants wait for an organization match: glue-pipeline match list --open")
    if waiting.users:
        steps.append(f"{waiting.users} users wait for a decision (likely duplicates, ambiguous): "
                     "glue-pipeline match held")
    if waiting.devices:
        steps.append(f"{waiting.devices} devices wait for a decision (likely duplicates, ambiguous): "
                     "glue-pipeline match held-devices")
    return steps
