"""One tenant's sync from Graph to the store, and a batch of tenants run side by side.

Graph is read outside any transaction; the store is then read, matched and written for the
tenant in one transaction, so a tenant's writes are all or nothing. A tenant's failure is
recorded (sync_results, sync_log) and never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, insert, select, update

from glue_pipeline.extract import TenantExtract, extract_tenant
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.graph.errors import GraphError
from glue_pipeline.mapping import ContactFields, admin_center_url, contact_fields, overlay_fields
from glue_pipeline.matching.contacts import MATCH_COLUMNS, match_contacts, skip_reason
from glue_pipeline.matching.organizations import OrgMatch, match_organization
from glue_pipeline.store import writer
from glue_pipeline.store.schema import sync_runs, tenants
from glue_pipeline.store.writer import ContactCounts, ContactWrite, LogEntry, utcnow

log = logging.getLogger(__name__)


@dataclass
class TenantOutcome:
    tenant_id: str
    display_name: str
    status: str  # synced | held | failed
    match: OrgMatch | None = None
    users: int = 0
    counts: ContactCounts = field(default_factory=ContactCounts)
    error: str | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def summary(self) -> dict:
        c = self.counts
        return {"tenant_id": self.tenant_id, "display_name": self.display_name, "status": self.status,
                "match_status": self.match.status if self.match else None,
                "organization_id": self.match.organization_id if self.match else None,
                "users": self.users, "created": c.created, "updated": c.updated,
                "unchanged": c.unchanged, "held": c.held, "skipped": c.skipped, "error": self.error}


@dataclass
class SyncContext:
    client: GraphClient
    engine: Engine
    run_id: str
    organizations: pd.DataFrame  # id, name: the store's organizations when the batch began


def tenant_row(engine: Engine, tenant_id: str) -> dict:
    """The tenant as discovery last saw it (name, relationship); a bare row if never discovered."""
    with engine.connect() as conn:
        row = conn.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)).first()
    return dict(row._mapping) if row else {"tenant_id": tenant_id, "display_name": None,
                                          "relationship": None}


def sync_tenant(ctx: SyncContext, tenant_id: str) -> TenantOutcome:
    """Extract, match and write one tenant; failures come back as a failed outcome."""
    known = tenant_row(ctx.engine, tenant_id)
    name = known.get("display_name") or tenant_id
    try:
        extract = extract_tenant(ctx.client, tenant_id)
        return _write_tenant(ctx, known, extract)
    except Exception as exc:  # noqa: BLE001 - any failure of one tenant must not stop the others
        message = str(exc) if isinstance(exc, GraphError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, GraphError):
            log.exception("unexpected failure for tenant %s", tenant_id)
        _record_failure(ctx, tenant_id, message)
        return TenantOutcome(tenant_id, name, "failed", error=message)


def _write_tenant(ctx: SyncContext, known: dict, extract: TenantExtract) -> TenantOutcome:
    tenant_id = extract.tenant_id
    now = utcnow()
    users = extract.users
    with ctx.engine.begin() as conn:
        writer.lock_tenant(conn, tenant_id)
        writer.upsert_tenant(conn, {
            "tenant_id": tenant_id, "display_name": extract.display_name,
            "default_domain": extract.default_domain, "initial_domain": extract.initial_domain,
            "relationship": known.get("relationship"),
            "manage_url": admin_center_url(extract.initial_domain, tenant_id)}, now)
        recorded = writer.read_recorded_match(conn, tenant_id)
        match = match_organization(tenant_id, extract.display_name, ctx.organizations, recorded)
        writer.record_match(conn, match, recorded, now)
        writer.replace_licenses(conn, tenant_id, match.organization_id, extract.licenses)
        if match.status == "matched":
            assert match.organization_id is not None
            emails, linked = writer.read_contact_index(conn, match.organization_id, tenant_id)
            matches = match_contacts(users, emails, linked)
            counts = _write_contacts(conn, match.organization_id, extract, matches, now)
            status = "synced"
        else:
            matches = _held_matches(users, match)
            counts = ContactCounts(held=int((matches["action"] == "held").sum()),
                                   skipped=int((matches["action"] == "skipped").sum()))
            counts.log.append(LogEntry("warning", "tenant_held",
                                       f"{counts.held} users held back: {match.reason}"))
            status = "held"
        if counts.skipped:
            reasons = matches.loc[matches["action"] == "skipped", "reason"].value_counts()
            counts.log.append(LogEntry("info", "users_skipped", f"{counts.skipped} users not synced: "
                                       + ", ".join(f"{n} {r}" for r, n in reasons.items())))
        writer.write_log(conn, ctx.run_id, tenant_id, counts.log, now)
        writer.write_result(conn, {
            "run_id": ctx.run_id, "tenant_id": tenant_id, "status": status,
            "organization_id": match.organization_id, "users": len(users), "created": counts.created,
            "updated": counts.updated, "unchanged": counts.unchanged, "held": counts.held,
            "skipped": counts.skipped, "error": None, "finished_at": now})
    return TenantOutcome(tenant_id, extract.display_name, status, match, len(users), counts,
                         tables=_tables(extract, match, matches))


def _held_matches(users: pd.DataFrame, match: OrgMatch) -> pd.DataFrame:
    """Every user of a tenant without an organization: held, or skipped by the user selection."""
    rows = []
    for user in users.to_dict("records"):
        reason = skip_reason(user)
        rows.append({"user_id": user["id"], "user_principal_name": user["userPrincipalName"],
                     "display_name": user.get("displayName"),
                     "action": "skipped" if reason else "held", "contact_id": pd.NA,
                     "matched_on": None, "reason": reason or f"tenant {match.status}: {match.reason}"})
    return pd.DataFrame(rows, columns=MATCH_COLUMNS).astype({"contact_id": "Int64"})


def _write_contacts(conn, organization_id: int, extract: TenantExtract, matches: pd.DataFrame,
                    now) -> ContactCounts:  # type: ignore[no-untyped-def]
    users = {u["id"]: u for u in extract.users.to_dict("records")}
    license_names = dict(zip(extract.licenses["sku_id"], extract.licenses["product_name"]))
    mailboxes = {m["user_principal_name"]: m for m in extract.mailboxes.to_dict("records")}
    writes = []
    for row in matches[matches["action"].isin(["match", "create"])].itertuples(index=False):
        user = users[row.user_id]
        writes.append(ContactWrite(
            user_id=row.user_id,
            contact_id=None if row.action == "create" else int(row.contact_id),
            fields=contact_fields(user),
            overlay=overlay_fields(user, extract.tenant_id, extract.default_domain, license_names,
                                   mailboxes.get(str(user["userPrincipalName"]).lower()))))
    counts = writer.apply_contacts(conn, organization_id, writes, now)
    for row in matches[matches["action"].isin(["ambiguous", "held"])].itertuples(index=False):
        counts.held += 1
        counts.log.append(LogEntry("warning", f"contact_{row.action}", f"{row.user_principal_name}: "
                                   f"{row.reason}", None if pd.isna(row.contact_id) else int(row.contact_id),
                                   row.user_id))
    counts.skipped = int((matches["action"] == "skipped").sum())
    writer.mark_removed_users(conn, extract.tenant_id, set(users), counts)
    # The contact ids of created contacts are known only now.
    created = {w.user_id: w.contact_id for w in writes}
    matches["contact_id"] = matches["user_id"].map(created).fillna(matches["contact_id"]).astype("Int64")
    return counts


def _tables(extract: TenantExtract, match: OrgMatch, matches: pd.DataFrame) -> dict[str, pd.DataFrame]:
    users = extract.users.copy()
    users["assignedLicenses"] = users["assignedLicenses"].map(
        lambda items: [i.get("skuId") for i in items] if isinstance(items, list) else [])
    org = pd.DataFrame([{"tenant_id": match.tenant_id, "tenant_name": match.tenant_name,
                         "status": match.status, "organization_id": match.organization_id,
                         "method": match.method, "reason": match.reason}])
    org["organization_id"] = org["organization_id"].astype("Int64")
    return {"users": users, "licenses": extract.licenses, "mailbox_usage": extract.mailboxes,
            "organization_match": org, "contact_matches": matches}


def _record_failure(ctx: SyncContext, tenant_id: str, message: str) -> None:
    now = utcnow()
    try:
        with ctx.engine.begin() as conn:
            writer.write_log(conn, ctx.run_id, tenant_id, [LogEntry("error", "tenant_failed", message)], now)
            writer.write_result(conn, {"run_id": ctx.run_id, "tenant_id": tenant_id, "status": "failed",
                                       "users": 0, "created": 0, "updated": 0, "unchanged": 0,
                                       "held": 0, "skipped": 0, "error": message, "finished_at": now})
    except Exception:  # noqa: BLE001 - the store itself may be the failure; the run still reports it
        log.exception("could not record the failure of tenant %s in the store", tenant_id)


def sync_tenants(ctx: SyncContext, tenant_ids: list[str], concurrency: int,
                 on_done: Callable[[TenantOutcome, int, int], None] | None = None) -> list[TenantOutcome]:
    """Sync tenants side by side; `on_done(outcome, done, total)` reports progress."""
    outcomes: list[TenantOutcome] = []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(tenant_ids) or 1))) as pool:
        futures = [pool.submit(sync_tenant, ctx, t) for t in tenant_ids]
        for future in as_completed(futures):
            outcomes.append(future.result())
            if on_done:
                on_done(outcomes[-1], len(outcomes), len(tenant_ids))
    return sorted(outcomes, key=lambda o: tenant_ids.index(o.tenant_id))


def write_tables(outcomes: list[TenantOutcome], tables_dir: Path) -> dict[str, Path]:
    """Each tenant's tables as Parquet files an analyst can open: TABLE/TENANT_ID.parquet."""
    written: dict[str, Path] = {}
    for outcome in outcomes:
        for name, frame in outcome.tables.items():
            path = tables_dir / name / f"{outcome.tenant_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
            written[f"{name}/{outcome.tenant_id}"] = path
    return written


def start_run(engine: Engine, run_id: str, tenants_total: int) -> None:
    with engine.begin() as conn:
        if conn.execute(select(sync_runs.c.run_id).where(sync_runs.c.run_id == run_id)).first():
            conn.execute(update(sync_runs).where(sync_runs.c.run_id == run_id)
                         .values(status="running", finished_at=None))
        else:
            conn.execute(insert(sync_runs).values(run_id=run_id, started_at=utcnow(), status="running",
                                                  tenants_total=tenants_total, tenants_failed=0))


def finish_run(engine: Engine, run_id: str, outcomes: list[TenantOutcome]) -> None:
    failed = sum(o.status == "failed" for o in outcomes)
    with engine.begin() as conn:
        conn.execute(update(sync_runs).where(sync_runs.c.run_id == run_id).values(
            finished_at=utcnow(), status="failed" if failed else "succeeded",
            tenants_total=len(outcomes), tenants_failed=failed))
