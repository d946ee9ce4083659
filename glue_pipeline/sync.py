"""One tenant's sync from Graph to the store, and a batch of tenants run side by side.

Graph is read outside any transaction; the store is then read, matched and written for the
tenant in one transaction, so a tenant's writes are all or nothing. A tenant's failure is
recorded (sync_results, sync_log) and never stops the others.

A tenant whose users came back unchanged from a delta query, and whose other Microsoft data and
store rows (for a tenant without a match: the organizations it is matched against) fingerprint
as in its last sync, is not planned or written again: its result is recorded as unchanged. A
failure forgets the fingerprint, so the next sync is a full one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from pandas.api.typing import NAType

from glue_pipeline import frames
from glue_pipeline.cache import TenantCache
from glue_pipeline.columns import RISK_COLUMNS
from glue_pipeline.decisions import PolicyAcceptance, policy_acceptance
from glue_pipeline.device_plan import (
    DevicePlan,
    contacts_moved,
    device_skips,
    held_device_plan,
    held_device_rows,
    plan_devices,
)
from glue_pipeline.extract import discover_tenants, extract_tenant
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.graph.errors import GraphError, failure_cause
from glue_pipeline.mapping import admin_center_url
from glue_pipeline.matching.organizations import OPEN_STATUSES, OrgMatch, normalize_name
from glue_pipeline.matching.suggest import (
    domain_evidence_index,
    domain_evidence_of,
    organization_table,
    organizations_with_contact_domains,
)
from glue_pipeline.options import SyncOptions
from glue_pipeline.plan import (
    ContactPlan,
    OrganizationPlan,
    carried_matches,
    held_on_others,
    held_plan,
    held_rows,
    merged_matches,
    plan_contacts,
    plan_organization,
    skip_reasons,
)
from glue_pipeline.settings import clock_from_env
from glue_pipeline.snapshot import Cleaned, TenantHead, TenantRead, TenantSnapshot, UnchangedTenant
from glue_pipeline.store import configurations, runs, writer
from glue_pipeline.store.decisions import record_policy_acceptance
from glue_pipeline.store.differences import read_open_differences
from glue_pipeline.store.engine import (
    Connection,
    Engine,
    read_transaction,
    refusing_error,
    store_error,
    write_transaction,
)
from glue_pipeline.store.rows import Row
from glue_pipeline.store.runs import TenantResult, start_run
from glue_pipeline.store.writer import ContactCounts, LogEntry, utcnow
from glue_pipeline.tables import Published, last_published, publish, read_published
from glue_pipeline.tenant_tables import contact_tables, device_tables, tenant_tables
from glue_pipeline.vocabulary import (
    HELD_DEVICE_LOG_ACTIONS,
    HELD_LOG_ACTIONS,
    FailureCause,
    HeldAction,
    MatchStatus,
    TenantStatus,
)

log = logging.getLogger(__name__)


def tenant_result(tenant_id: str, status: TenantStatus, organization_id: int | None = None, users: int = 0,
                  counts: ContactCounts | None = None, error: str | None = None,
                  cause: FailureCause | None = None) -> TenantResult:
    """A tenant's result in a run: its sync_results row but for the run id and the time, and the
    counts of its outcome's summary."""
    c = counts or ContactCounts()
    return {"tenant_id": tenant_id, "status": status, "organization_id": organization_id, "users": users,
            "created": c.created, "updated": c.updated, "unchanged": c.unchanged, "held": c.held,
            "skipped": c.skipped, "error": error, "cause": cause}


class TenantSummary(TenantResult):
    """A tenant's outcome as a run reports it: its result, its name and its match's status."""

    display_name: str
    match_status: MatchStatus | None


@dataclass
class TenantOutcome:
    tenant_id: str
    display_name: str
    status: TenantStatus
    match: OrgMatch | None = None
    users: int = 0
    counts: ContactCounts = field(default_factory=ContactCounts)
    error: str | None = None
    # The tenant's tables as published (tables.publish): row counts, files, previews.
    report: dict[str, Published] = field(default_factory=dict)
    cause: FailureCause | None = None  # why a failed tenant failed (graph.errors.failure_cause)
    unchanged: bool = False  # nothing changed since its last sync, so nothing was planned or written
    planned_users: int | None = None  # when only some users were planned again (_Changes): how many
    reports_concealed: bool = False  # its mailbox usage report conceals user names

    @property
    def transient(self) -> bool:
        """Failed on throttling, server errors or the network: worth a retry."""
        return self.cause == "transient"

    def result(self) -> TenantResult:
        return tenant_result(self.tenant_id, self.status, self.match.organization_id if self.match else None,
                             self.users, self.counts, self.error, self.cause)

    def summary(self) -> TenantSummary:
        return {"tenant_id": self.tenant_id, "display_name": self.display_name, "status": self.status,
                "match_status": self.match.status if self.match else None, **self.result()}


@dataclass
class SyncContext:
    client: GraphClient
    engine: Engine
    run_id: str
    organizations: pd.DataFrame  # id, name: the store's organizations when the batch began
    organization_domains: pd.DataFrame  # organization_id, domain: their contacts' email domains
    options: SyncOptions = field(default_factory=SyncOptions)
    cache: TenantCache | None = None
    tables_dir: Path | None = None  # where each tenant's tables are written as Parquet
    organization_names: pd.DataFrame | None = None  # name features for suggestions (once per batch)
    # What a tenant without a match is matched and suggested against: a digest of the
    # organizations' ids and names, the domain evidence by domain (domain_evidence_index), and
    # the organizations whose contacts use distinctive domains (a name-only suggestion loses
    # points when those conflict with the tenant's; suggest.organizations_with_contact_domains).
    organizations_digest: str = ""
    domain_evidence: dict[str, list[list[int]]] = field(default_factory=dict)
    with_contact_domains: frozenset[int] = frozenset()
    # The time Microsoft's data is read and judged at (the cache's freshness, a last sign-in
    # shown within mapping.SIGN_IN_SHOWN_FOR of it); the store's own timestamps are when it was
    # written. Tests pin it.
    clock: Callable[[], datetime] = utcnow


def sync_context(client: GraphClient, engine: Engine, run_id: str, options: SyncOptions,
                 cache: TenantCache | None = None, tables_dir: Path | None = None,
                 clock: Callable[[], datetime] | None = None) -> SyncContext:
    """Read the store's organizations once for a batch of tenants. The clock defaults to GLUE_CLOCK's
    (settings.clock_from_env: the current time when it is unset)."""
    with read_transaction(engine) as conn:
        organizations = writer.read_organizations(conn)
        domains = writer.read_organization_domains(conn)
    # Normalized names and name features once per batch, not once per tenant.
    organizations["key"] = organizations["name"].map(normalize_name)
    return SyncContext(client, engine, run_id, organizations, domains, options, cache, tables_dir,
                       organization_table(organizations), organizations_digest(organizations),
                       domain_evidence_index(domains), frozenset(organizations_with_contact_domains(domains)),
                       clock or clock_from_env())


def organizations_digest(organizations: pd.DataFrame) -> str:
    """The organizations' ids and names: what every tenant without a match is planned against."""
    names = pd.util.hash_pandas_object(organizations[["id", "name"]], index=False).to_numpy().tobytes()
    return hashlib.sha256(names).hexdigest()


def discover_into(engine: Engine, client: GraphClient) -> list[str]:
    """The partner's customer tenants recorded in the store, without Dagster; their ids."""
    frame = discover_tenants(client)
    with write_transaction(engine) as conn:
        writer.record_discovered_tenants(conn, frame, utcnow())
    return list(frame["tenant_id"])


def planning_order(engine: Engine, tenant_ids: list[str]) -> list[str]:
    """The tenants in the order a run plans them: first those an organization's name matches
    (matched by rule), then the others. A tenant held for an analyst weighs the other tenants'
    matches (a conflict, or a suggestion another tenant holds); planned after them, its first plan
    already sees them, rather than the next sync finding them and planning it again."""
    with engine.connect() as conn:
        names = set(writer.read_organizations(conn)["name"].map(normalize_name))
        tenant_names = writer.read_tenant_names(conn)
    return sorted(tenant_ids, key=lambda t: normalize_name(tenant_names.get(t)) not in names)


def tenant_row(engine: Engine, tenant_id: str) -> Row:
    """The tenant as discovery last saw it (name, relationship); a bare row if never discovered."""
    with read_transaction(engine) as conn:
        row = writer.read_tenant(conn, tenant_id)
    return row or {"tenant_id": tenant_id, "display_name": None, "relationship": None}


def sync_tenant(ctx: SyncContext, tenant_id: str) -> TenantOutcome:
    """Extract, match and write one tenant; failures come back as a failed outcome."""
    name = tenant_id
    try:
        known = tenant_row(ctx.engine, tenant_id)
        name = known.get("display_name") or tenant_id
        at = ctx.clock()
        read = extract_tenant(ctx.client, tenant_id, ctx.options, ctx.cache, at)
        outcome, tables = _write_tenant(ctx, known, read, at)
        if ctx.cache:  # only once the store has what the cache says was read
            for kind, entry in read.head.cache_updates.items():
                ctx.cache.save(kind, tenant_id, entry)
        if tables:
            outcome.report = publish(tables, tenant_id, ctx.tables_dir, ctx.run_id, carried=outcome.report)
        return outcome
    except Exception as exc:  # any failure of one tenant must not stop the others
        message = failure_message(exc, ctx.engine)
        if not isinstance(exc, GraphError) and store_error(exc, _url(ctx.engine)) is None:
            log.exception("unexpected failure for tenant %s", tenant_id)
        cause = failure_cause(exc, store_failure=_store_failure(exc, ctx.engine))
        record_failure(ctx.engine, ctx.run_id, tenant_id, message, cause)
        return TenantOutcome(tenant_id, name, "failed", error=message, cause=cause)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _store_failure(exc: Exception, engine: Engine) -> bool:
    """The store could not be reached, or refused the tenant's writes."""
    return store_error(exc, _url(engine)) is not None or refusing_error(exc) is not None


def failure_message(exc: Exception, engine: Engine) -> str:
    """What a tenant's failure says. Graph's errors name their cause and fix; a store that cannot
    be reached says so with GLUE_STORE_URL; a write the store refuses is told by the database's
    own first line, without the statement or its values, so no user's data is copied into an
    error."""
    if isinstance(exc, GraphError):
        return str(exc)
    unreachable = store_error(exc, _url(engine))
    if unreachable is not None:
        return str(unreachable)
    refusal = refusing_error(exc)
    if refusal is not None:
        return (f"the store refused the tenant's writes ({_first_line(refusal)}); nothing of the tenant was "
                "written: check the store (GLUE_STORE_URL) and re-run the tenant")
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


def _fingerprint(ctx: SyncContext, head: TenantHead, extract_digest: str, store_version: list[list[str]],
                 match_status: MatchStatus, weighed: list[int]) -> str:
    """What a tenant's plan reads: its Microsoft data and options, its store rows, and for a
    tenant without a match the organizations' names, the domain evidence its domains meet, and
    which of the organizations its suggestions weighed (`weighed`, recorded with the plan) have
    contacts on distinctive domains. While the names and that evidence stay, the weighed
    organizations stay, so contacts added to other organizations do not plan it again. The
    domains a conflict's reasons name are those of the tenant's last plan."""
    against = [ctx.organizations_digest,
               domain_evidence_of(ctx.domain_evidence, head.organization.verified_domains),
               [[o, o in ctx.with_contact_domains] for o in weighed]] \
        if match_status in OPEN_STATUSES else []
    return hashlib.sha256((extract_digest + json.dumps([store_version, against])).encode()).hexdigest()


def _weighed(state: Row) -> list[int]:
    """The organizations a tenant's last plan weighed for its suggestions (none recorded: none)."""
    return [int(o) for o in json.loads(state.get("weighed_organizations") or "[]")]


# The version of a tenant's store rows (writer.read_store_version), and its sync state's fingerprint.
_Inputs = tuple[list[list[str]], str | None]


@dataclass(frozen=True)
class _Unchanged:
    """A tenant whose fingerprint is as in its last sync: nothing is to be planned."""

    recorded: Row
    state: Row
    inputs: _Inputs


@dataclass(frozen=True)
class _Contacts:
    """A matched tenant's contact plan and the organization it writes to."""

    organization_id: int
    plan: ContactPlan


@dataclass(frozen=True)
class _Draft:
    """A tenant's plan and what it was made from: the recorded match, and `inputs` (the version
    of the tenant's and `organization_id`'s store rows, and its sync state). The plan is its
    match and suggestions, its users' skips and, for a matched tenant, its contacts; `accepted`
    is the suggestion the auto-accept policy matched it to, if it did."""

    recorded: Row | None
    organization_id: int | None
    inputs: _Inputs
    state: Row | None
    org: OrganizationPlan
    skips: pd.Series
    contacts: _Contacts | None
    accepted: PolicyAcceptance | None = None
    devices: DevicePlan | None = None  # a matched tenant's device plan, when its devices were read


def _inputs(conn: Connection, tenant_id: str, organization_id: int | None, state: Row | None) -> _Inputs:
    return _store_version(conn, tenant_id, organization_id), state["fingerprint"] if state else None


def _store_version(conn: Connection, tenant_id: str, organization_id: int | None) -> list[list[str]]:
    """The version of what a tenant's plan reads from the store: its contacts' side and its devices'."""
    return writer.read_store_version(conn, tenant_id, organization_id) + \
        configurations.configuration_version(conn, tenant_id, organization_id)


def _unchanged(conn: Connection, ctx: SyncContext, head: TenantHead, digest: str) -> _Unchanged | None:
    """The tenant's recorded match and sync state when its fingerprint is as in its last sync."""
    recorded = writer.read_recorded_match(conn, head.tenant_id)
    state = writer.read_sync_state(conn, head.tenant_id)
    if not recorded or not state:
        return None
    inputs = _inputs(conn, head.tenant_id, recorded["organization_id"], state)
    same = state["fingerprint"] == _fingerprint(ctx, head, digest, inputs[0], recorded["status"], _weighed(state))
    return _Unchanged(recorded, state, inputs) if same else None


def _draft(conn: Connection, ctx: SyncContext, snapshot: TenantSnapshot, at: datetime) -> _Draft:
    """Plan the tenant from the store as `conn` sees it, Microsoft's data judged `at`; reads only.
    The version of the rows the plan reads is taken before them, so a change made meanwhile shows
    as a newer version."""
    tenant_id = snapshot.tenant_id
    recorded = writer.read_recorded_match(conn, tenant_id)
    state = writer.read_sync_state(conn, tenant_id)
    # Other tenants' matches count only for a tenant that may be matched by rule.
    claims = None if _kept(recorded, ctx.organizations) else writer.read_claims(conn, tenant_id)
    org = plan_organization(snapshot, ctx.organizations, ctx.organization_domains, recorded,
                            ctx.organization_names, claims)
    accepted = policy_acceptance(org.match, org.suggestions, ctx.options.accept_suggestions_at)
    if accepted is not None:  # matched now, so its contacts are planned and written in this sync
        org = OrganizationPlan(accepted.match(org.match), org.suggestions.iloc[:0])
    organization_id = org.match.organization_id
    skips = skip_reasons(snapshot, ctx.options)
    inputs = _inputs(conn, tenant_id, organization_id, state)
    contacts = devices = None
    if org.match.status == "matched" and organization_id is not None:
        index = writer.read_contact_index(conn, organization_id, tenant_id)
        contacts = _Contacts(organization_id, plan_contacts(
            snapshot, ctx.options, skips, index.emails, index.linked, writer.read_contact_decisions(conn, tenant_id),
            writer.read_org_contacts(conn, organization_id), at, index.foreign))
        if snapshot.head.devices_state == "read":
            devices = _plan_devices(conn, ctx, snapshot, organization_id, contacts.plan)
    return _Draft(recorded, organization_id, inputs, state, org, skips, contacts, accepted, devices)


def _plan_devices(conn: Connection, ctx: SyncContext, snapshot: TenantSnapshot, organization_id: int,
                  contacts: ContactPlan) -> DevicePlan:
    """The device plan of a matched tenant: its primary users are the users its contact plan writes."""
    index = configurations.read_configuration_index(conn, organization_id, snapshot.tenant_id)
    written = contacts.matches[contacts.matches["action"].isin(["match", "create"])]
    synced = dict(zip(written["user_id"], written["user_principal_name"], strict=True))
    matched = written[written["action"] == "match"]
    linked_users = {str(u): int(c) for u, c in zip(matched["user_id"], matched["contact_id"], strict=True)}
    return plan_devices(snapshot, ctx.options, device_skips(snapshot, ctx.options), index.configurations,
                        index.linked, configurations.read_device_decisions(conn, snapshot.tenant_id), index.foreign,
                        synced, linked_users)


def _kept(recorded: Row | None, organizations: pd.DataFrame) -> bool:
    """A recorded decision stands whatever other tenants are matched to."""
    if not recorded or recorded["status"] not in ("matched", "ignored"):
        return False
    return recorded["status"] == "ignored" or bool((organizations["id"] == recorded["organization_id"]).any())


def _new_claim(draft: _Draft) -> int | None:
    """The organization a draft matches the tenant to by rule or by the auto-accept policy for
    the first time, if any."""
    match, recorded = draft.org.match, draft.recorded or {}
    if match.status != "matched" or (match.method != "exact" and draft.accepted is None):
        return None
    if recorded.get("status") == "matched" and recorded.get("organization_id") == match.organization_id:
        return None
    return match.organization_id


def _still_holds(conn: Connection, tenant_id: str, recorded: Row | None, organization_id: int | None,
                 inputs: _Inputs) -> bool:
    """Whether what a plan was made from (the recorded match, and `inputs` read with
    `organization_id`'s rows) is unchanged (read under the write lock)."""
    return writer.read_recorded_match(conn, tenant_id) == recorded and \
        _inputs(conn, tenant_id, organization_id, writer.read_sync_state(conn, tenant_id)) == inputs


def _write_tenant(ctx: SyncContext, known: Row, read: TenantRead,
                  at: datetime) -> tuple[TenantOutcome, dict[str, pd.DataFrame]]:
    """Match and write one tenant in one transaction, under the tenant's lock; the outcome and
    its tables (none when the tenant was unchanged). Microsoft's data is judged `at` (the sync's
    clock). A tenant whose users a delta query found
    unchanged is first looked up: if its fingerprint is as in its last sync it is recorded as
    unchanged, else its snapshot is built (outside any transaction) and planned. The plan is made
    outside the write transaction (SQLite has one write lock for the whole store, so planning
    inside it would make tenants wait for each other), and written if the store rows it read are
    as they were; otherwise it is made again under the lock. A tenant whose delta returned a few
    users is planned for those only when it can be (_changes_only); if the store moved on before
    that plan is written, the tenant is planned in full."""
    tenant_id = read.tenant_id
    now = utcnow()
    digest = read.head.fingerprint(ctx.options)
    if isinstance(read, UnchangedTenant):
        with write_transaction(ctx.engine) as conn:
            writer.lock_tenant(conn, tenant_id)
            unchanged = _unchanged(conn, ctx, read.head, digest)
            if unchanged is not None:
                return _record_unchanged(conn, ctx, read.head, unchanged, now), {}
        snapshot = read.load()
    else:
        snapshot = read
        if snapshot.changed_users is not None and ctx.tables_dir is not None:
            with read_transaction(ctx.engine) as conn:
                changes = _changes_only(conn, ctx, snapshot, digest, ctx.tables_dir)
                plan = _plan_changes(conn, ctx, snapshot, changes, at) if changes is not None else None
            if changes is not None and plan is not None:
                recorded = changes.unchanged.recorded
                with write_transaction(ctx.engine) as conn:
                    writer.lock_tenant(conn, tenant_id)
                    if _still_holds(conn, tenant_id, recorded, recorded["organization_id"], changes.unchanged.inputs):
                        return _write_changes(conn, ctx, snapshot, changes, plan, digest, now)
    with read_transaction(ctx.engine) as conn:
        draft = _draft(conn, ctx, snapshot, at)
    with write_transaction(ctx.engine) as conn:
        writer.lock_tenant(conn, tenant_id)
        if not _still_holds(conn, tenant_id, draft.recorded, draft.organization_id, draft.inputs):
            # the store moved on since the draft
            draft = _draft(conn, ctx, snapshot, at)
        claim = _new_claim(draft)
        if claim is not None:
            # Two tenants named alike may claim one organization at once: the first to commit
            # has it, the other sees its claim once it holds the organization's lock.
            writer.lock_tenant(conn, f"organization:{claim}")
            if len(writer.read_claims(conn, tenant_id, claim)):
                draft = _draft(conn, ctx, snapshot, at)
        outcome, plan, device_plan = _write_plan(conn, ctx, known, snapshot, draft, digest, now)
        differences = read_open_differences(conn, tenant_id)
    return outcome, tenant_tables(snapshot, draft.org, plan, differences, ctx.organizations, device_plan)


def _write_plan(conn: Connection, ctx: SyncContext, known: Row, extract: TenantSnapshot, draft: _Draft,
                digest: str, now: datetime) -> tuple[TenantOutcome, ContactPlan, DevicePlan | None]:
    """Write a tenant's plan: the tenant, its match, contacts and configurations (or its users
    and devices held back), log, result and sync state; its outcome, and its contact and device
    plans as written (with the ids of the contacts and configurations created)."""
    tenant_id, org = extract.tenant_id, draft.org
    writer.upsert_tenant(conn, {
        "tenant_id": tenant_id, **extract.head.details(), "relationship": known.get("relationship"),
        "data_source": known.get("data_source"),
        "manage_url": admin_center_url(extract.organization.initial_domain, tenant_id,
                                       direct=known.get("relationship") == "direct")}, now)
    if draft.accepted is not None:
        record_policy_acceptance(conn, tenant_id, draft.accepted.organization_id, draft.accepted.note, now)
    else:
        writer.record_match(conn, org.match, draft.recorded, now)
    writer.replace_suggestions(conn, tenant_id, org.suggestions)
    writer.replace_licenses(conn, tenant_id, org.match.organization_id, extract.licenses)
    device_plan = draft.devices
    if draft.contacts is not None:
        counts = _write_contacts(conn, ctx.run_id, extract, draft.contacts.organization_id, draft.contacts.plan, now)
        plan = _with_created(draft.contacts.plan, counts.created_ids)
        if device_plan is not None:
            device_plan = _write_devices(conn, extract, draft.contacts.organization_id, device_plan, counts.log, now)
        status: TenantStatus = "synced"
    else:
        plan = held_plan(extract.users, draft.skips, org.match)
        counts = ContactCounts(held=int((plan.matches["action"] == "held").sum()))
        counts.log.append(LogEntry("warning", "tenant_held",
                                   f"{counts.held} users held back: {org.match.reason}"))
        status = "held"
        if extract.head.devices_state == "read":
            device_plan = held_device_plan(extract.devices, device_skips(extract, ctx.options), org.match)
    # An unmatched tenant is one decision, not one per user: its users are not listed.
    writer.replace_held_users(conn, tenant_id, held_rows(plan) if status == "synced" else [], now)
    if device_plan is not None:
        configurations.replace_held_devices(conn, tenant_id, held_device_rows(device_plan)
                                            if status == "synced" else [], now)
    counts.skipped = int((plan.matches["action"] == "skipped").sum())
    counts.log += _tenant_notes(extract, plan.matches)
    outcome = TenantOutcome(tenant_id, extract.display_name, status, org.match, len(extract.users), counts,
                            reports_concealed=extract.head.mailbox_state == "concealed")
    _record_planned(conn, ctx, extract.head, outcome, digest, org.weighed,
                    (*extract.head.cleaned, *extract.devices_cleaned), now)
    return outcome, plan, device_plan


def _record_planned(conn: Connection, ctx: SyncContext, head: TenantHead, outcome: TenantOutcome, digest: str,
                    weighed: list[int], cleaned: Iterable[Cleaned], now: datetime) -> None:
    """A tenant's plan just written: its log (with what cleaning changed), its result, and its
    sync state with the fingerprint of what the plan read (`weighed`: the organizations its
    suggestions weighed)."""
    counts, match = outcome.counts, outcome.match
    assert match is not None  # a planned tenant has a match
    counts.log += [LogEntry("warning", "value_cleaned", c.message, user_id=c.user_id) for c in cleaned]
    writer.write_log(conn, ctx.run_id, outcome.tenant_id, counts.log, now)
    runs.write_result(conn, ctx.run_id, outcome.result(), now)
    version = _store_version(conn, outcome.tenant_id, match.organization_id)
    writer.save_sync_state(conn, {
        "tenant_id": outcome.tenant_id,
        "fingerprint": _fingerprint(ctx, head, digest, version, match.status, weighed),
        "weighed_organizations": json.dumps(weighed) if match.status in OPEN_STATUSES else None,
        "status": outcome.status, "organization_id": match.organization_id, "users": outcome.users,
        "contacts": counts.created + counts.updated + counts.unchanged, "held": counts.held,
        "skipped": counts.skipped, "run_id": ctx.run_id, "synced_at": now})


def _record_unchanged(conn: Connection, ctx: SyncContext, extract: TenantHead, unchanged: _Unchanged,
                      now: datetime) -> TenantOutcome:
    """Record a tenant whose inputs are as in its last sync: its result then still holds."""
    recorded, state = unchanged.recorded, unchanged.state
    counts = ContactCounts(unchanged=state["contacts"], held=state["held"], skipped=state["skipped"])
    writer.write_log(conn, ctx.run_id, extract.tenant_id, [LogEntry(
        "info", "tenant_unchanged", "nothing changed in Microsoft or in the store since the sync of "
        f"{state['synced_at']:%Y-%m-%d %H:%M} UTC; the tenant was not planned or written again")], now)
    runs.write_result(conn, ctx.run_id, tenant_result(extract.tenant_id, state["status"], state["organization_id"],
                                                      state["users"], counts), now)
    match = OrgMatch(extract.tenant_id, extract.display_name, recorded["status"],
                     recorded["organization_id"], recorded["method"], "as recorded")
    return TenantOutcome(extract.tenant_id, extract.display_name, state["status"], match, state["users"],
                         counts, unchanged=True, reports_concealed=extract.mailbox_state == "concealed")


# A re-sync plans only the users that changed while they are at most this share of the tenant's.
CHANGES_ONLY_SHARE = 0.5


@dataclass(frozen=True)
class _Changes:
    """A tenant whose delta returned a few users, all else as in its last sync (its fingerprint
    holds): only those users are planned again, and for a matched tenant the users whose hold may
    hang on them (plan.held_on_others). The other users' rows of the last plan stand (with their
    duplicate risk), and so do its tables but users, contact_matches, duplicate_risk and
    differences. A matched tenant's devices are planned again only when one of their primary
    users is now written to another contact, or no longer written."""

    unchanged: _Unchanged
    planned: frozenset[str]  # the users planned again: changed or held, and still there
    replaced: frozenset[str]  # the users whose rows of the last plan go: planned, and removed
    previous: pd.DataFrame  # the last plan's contact_matches
    risk: pd.DataFrame  # and its duplicate_risk (RISK_COLUMNS)
    held_reason: str | None  # a tenant held back: its match's reason, as its last plan gave it
    carried: dict[str, Published]  # the last published tables that still hold

    @property
    def matched(self) -> bool:
        return bool(self.unchanged.state["status"] == "synced")


# The tables a _Changes plan leaves as published last (as its licenses, report and match stand),
# and those a matched tenant's device plan writes when it is made again.
DEVICE_TABLES = ("devices", "device_matches", "device_risk")
CARRIED_TABLES = ("licenses", "mailbox_usage", "organization_match", *DEVICE_TABLES)


def _changes_only(conn: Connection, ctx: SyncContext, snapshot: TenantSnapshot, digest: str,
                  tables_dir: Path) -> _Changes | None:
    """The tenant's plan of its changed users only, when that is the plan a full one would make:
    its fingerprint holds, its last sync planned it, and its last plan's tables are those of that
    sync."""
    changed = snapshot.changed_users
    unchanged = _unchanged(conn, ctx, snapshot.head, digest)
    # A synced state is a matched tenant's: the recorded match is part of the fingerprint.
    if changed is None or unchanged is None or unchanged.state["status"] not in ("synced", "held"):
        return None
    last = last_published(tables_dir, snapshot.tenant_id)
    if last is None or last.run_id != unchanged.state["run_id"] or \
            not {"contact_matches", "duplicate_risk", *CARRIED_TABLES} <= last.report.keys():
        return None
    matched = unchanged.state["status"] == "synced"
    previous = read_published(last.report["contact_matches"])
    risk = read_published(last.report["duplicate_risk"])
    organization = None if matched else read_published(last.report["organization_match"], ["reason"])
    if previous is None or risk is None or (not matched and (organization is None or len(organization) != 1)):
        return None
    ids = set(snapshot.users["id"])
    held = held_on_others(previous, removed=bool(changed - ids)) if matched else set()
    planned = frozenset((changed | held) & ids)
    replaced = planned | changed
    if len(planned) > CHANGES_ONLY_SHARE * len(ids) or set(previous["user_id"]) - replaced != ids - replaced:
        return None
    return _Changes(unchanged, planned, frozenset(replaced), previous, risk[RISK_COLUMNS],
                    None if organization is None else str(organization["reason"].iloc[0]),
                    {t: last.report[t] for t in CARRIED_TABLES})


@dataclass
class _Planned:
    """What a _Changes plan made: the plan of the users planned again, every user's row, the
    counts, the tenant's match and status, and the tables made again beside the contact tables."""

    plan: ContactPlan
    matches: pd.DataFrame
    counts: ContactCounts
    match: OrgMatch
    status: TenantStatus
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _plan_changes(conn: Connection, ctx: SyncContext, snapshot: TenantSnapshot, changes: _Changes,
                  at: datetime) -> ContactPlan:
    """The plan of the users of `changes` (outside the write lock, as a full plan is): their
    contacts, or for a tenant held back, their holds."""
    subject = replace(snapshot, users=snapshot.users[snapshot.users["id"].isin(changes.planned)])
    skips = skip_reasons(subject, ctx.options)
    if not changes.matched:
        return held_plan(subject.users, skips, _held_match(snapshot, changes))
    organization_id, tenant_id = int(changes.unchanged.recorded["organization_id"]), snapshot.tenant_id
    index = writer.read_contact_index(conn, organization_id, tenant_id)
    decisions = writer.read_contact_decisions(conn, tenant_id)
    return plan_contacts(subject, ctx.options, skips, index.emails, index.linked, decisions,
                         writer.read_org_contacts(conn, organization_id), at, index.foreign, read=snapshot.users)


def _held_match(snapshot: TenantSnapshot, changes: _Changes) -> OrgMatch:
    """A tenant held back: its match as its last plan made it."""
    recorded = changes.unchanged.recorded
    return OrgMatch(snapshot.tenant_id, snapshot.display_name, recorded["status"], recorded["organization_id"],
                    recorded["method"], str(changes.held_reason))


def _write_changes(conn: Connection, ctx: SyncContext, snapshot: TenantSnapshot, changes: _Changes,
                   plan: ContactPlan, digest: str, now: datetime) -> tuple[TenantOutcome, dict[str, pd.DataFrame]]:
    """Write the plan of the users of `changes`, record the tenant's result and sync state; its
    outcome, with the carried tables' descriptions, and the tables written again."""
    tenant_id = snapshot.tenant_id
    made = _write_changed_contacts(conn, ctx, snapshot, changes, plan, now) if changes.matched \
        else _Planned(plan, merged_matches(snapshot.users, carried_matches(changes.previous, changes.replaced),
                                           plan.matches), ContactCounts(), _held_match(snapshot, changes), "held")
    counts, matches = made.counts, made.matches
    counts.held = int(matches["action"].isin(["ambiguous", "held"]).sum())
    counts.skipped = int((matches["action"] == "skipped").sum())
    if not changes.matched:
        counts.log.append(LogEntry("warning", "tenant_held", f"{counts.held} users held back: {made.match.reason}"))
    counts.log += _tenant_notes(snapshot, matches)
    outcome = TenantOutcome(tenant_id, snapshot.display_name, made.status, made.match, len(snapshot.users), counts,
                            report={t: d for t, d in changes.carried.items() if t not in made.tables},
                            reports_concealed=snapshot.head.mailbox_state == "concealed",
                            planned_users=len(changes.planned))
    # The devices' cleaning is told when they are planned (their table is built only then).
    cleaned = (*snapshot.head.cleaned, *(snapshot.devices_cleaned if "device_matches" in made.tables else ()))
    _record_planned(conn, ctx, snapshot.head, outcome, digest, _weighed(changes.unchanged.state), cleaned, now)
    return outcome, {"users": snapshot.users, **made.tables,
                     **contact_tables(made.plan, matches, read_open_differences(conn, tenant_id))}


def _write_changed_contacts(conn: Connection, ctx: SyncContext, snapshot: TenantSnapshot, changes: _Changes,
                            plan: ContactPlan, now: datetime) -> _Planned:
    """A matched tenant's plan of the users of `changes` written to contacts, and its devices
    planned again and written when a primary user's contact moves."""
    tenant_id, recorded = snapshot.tenant_id, changes.unchanged.recorded
    organization_id = int(recorded["organization_id"])
    counts = _write_contacts(conn, ctx.run_id, snapshot, organization_id, plan, now)
    plan = _with_created(plan, counts.created_ids)
    writer.replace_held_users(conn, tenant_id, held_rows(plan), now, users=changes.replaced)
    plan = replace(plan, risk=pd.concat([changes.risk[~changes.risk["user_id"].isin(changes.replaced)]
                                         .astype(plan.risk.dtypes.to_dict()), plan.risk], ignore_index=True))
    carried = carried_matches(changes.previous, changes.replaced)
    matches = merged_matches(snapshot.users, carried, plan.matches)
    counts.unchanged += int((carried["action"] == "match").sum())
    match = OrgMatch(tenant_id, snapshot.display_name, "matched", organization_id, recorded["method"], "as recorded")
    made = _Planned(plan, matches, counts, match, "synced")
    if contacts_moved(snapshot.head.device_users, changes.previous, matches, changes.replaced):
        devices = _plan_devices(conn, ctx, snapshot, organization_id, replace(plan, matches=matches))
        devices = _write_devices(conn, snapshot, organization_id, devices, counts.log, now)
        configurations.replace_held_devices(conn, tenant_id, held_device_rows(devices), now)
        made.tables = device_tables(snapshot, devices)
    return made


class _Held(NamedTuple):
    """A row of a plan's matches held back for an analyst (MATCH_COLUMNS)."""

    user_id: str
    user_principal_name: str
    action: HeldAction
    contact_id: float | NAType | None  # the contact in question, if any (NaN or NA: none)
    reason: str


def _write_contacts(conn: Connection, run_id: str, extract: TenantSnapshot, organization_id: int,
                    plan: ContactPlan, now: datetime) -> ContactCounts:
    counts = writer.apply_contacts(conn, organization_id, plan.writes, now, run_id)
    for row in frames.rows(plan.matches[plan.matches["action"].isin(["ambiguous", "held"])], _Held):
        counts.held += 1
        contact_id = None if pd.isna(row.contact_id) else int(row.contact_id)
        counts.log.append(LogEntry("warning", HELD_LOG_ACTIONS[row.action],
                                   f"{row.user_principal_name}: {row.reason}", contact_id, row.user_id))
    writer.mark_removed_users(conn, extract.tenant_id, set(extract.users["id"]), counts)
    return counts


class _HeldDevice(NamedTuple):
    """A row of a device plan's matches held back for an analyst (DEVICE_MATCH_COLUMNS)."""

    device_id: str
    device_name: str | None
    action: HeldAction
    configuration_id: float | NAType | None
    reason: str


def _write_devices(conn: Connection, extract: TenantSnapshot, organization_id: int, plan: DevicePlan,
                   log_entries: list[LogEntry], now: datetime) -> DevicePlan:
    """Write the device plan after the contacts (its primary contacts are theirs), log it, and
    mark the devices gone from Intune; the plan with the ids of the configurations created."""
    counts = configurations.apply_configurations(conn, extract.tenant_id, organization_id, plan.writes, now)
    for row in frames.rows(plan.matches[plan.matches["action"].isin(["ambiguous", "held"])], _HeldDevice):
        configuration_id = None if pd.isna(row.configuration_id) else int(row.configuration_id)
        counts.log.append(LogEntry("warning", HELD_DEVICE_LOG_ACTIONS[row.action],
                                   f"{row.device_name or row.device_id}: {row.reason}",
                                   configuration_id=configuration_id, device_id=row.device_id))
    configurations.mark_removed_devices(conn, extract.tenant_id, set(extract.devices["id"]), counts)
    skipped = plan.matches[plan.matches["action"] == "skipped"]
    if len(skipped):
        reasons = skipped["reason"].value_counts()
        counts.log.append(LogEntry("info", "devices_skipped", f"{len(skipped)} devices not synced: "
                                   + ", ".join(f"{n} {r}" for r, n in reasons.items())))
    log_entries += counts.log
    matches = plan.matches.assign(configuration_id=_created_or(plan.matches["device_id"], counts.created_ids,
                                                               plan.matches["configuration_id"]))
    return replace(plan, matches=matches)


def _with_created(plan: ContactPlan, created: dict[str, int]) -> ContactPlan:
    """The plan with the ids of the contacts created for its users, known only once written."""
    matches = plan.matches.assign(contact_id=_created_or(plan.matches["user_id"], created, plan.matches["contact_id"]))
    return replace(plan, matches=matches)


def _created_or(keys: pd.Series, created: dict[str, int], planned: pd.Series) -> pd.Series:
    """Per row, the id created for its key, else the id the plan named (Int64: NA for none)."""
    return keys.map(created).astype("Int64").fillna(planned.astype("Int64"))


def _tenant_notes(extract: TenantSnapshot, matches: pd.DataFrame) -> list[LogEntry]:
    """Once per tenant: what the operator should know (skipped users, data left out)."""
    entries = [LogEntry("warning", "tenant_note", note) for note in extract.head.notes]
    skipped = matches[matches["action"] == "skipped"]
    if len(skipped):
        reasons = skipped["reason"].value_counts()
        entries.append(LogEntry("info", "users_skipped", f"{len(skipped)} users not synced: "
                                + ", ".join(f"{n} {r}" for r, n in reasons.items())))
    return entries


def record_failure(engine: Engine, run_id: str, tenant_id: str, message: str, cause: FailureCause) -> None:
    """The tenant's failure in the store (its result with its cause, and its log); its
    fingerprint is forgotten."""
    try:
        runs.record_failed_tenant(engine, run_id, tenant_result(tenant_id, "failed", error=message, cause=cause))
    except Exception as exc:  # the store itself may be the failure; the run still reports it
        gone = store_error(exc, _url(engine))
        if gone is None:
            log.exception("could not record the failure of tenant %s in the store", tenant_id)
        else:
            log.warning("could not record the failure of tenant %s in the store: %s", tenant_id, gone)


TRANSIENT_RETRIES = 1  # extra passes over tenants that failed on a transient fault

OnDone = Callable[[TenantOutcome, int, int], None]
# One pass over tenants: (tenant ids, on_done) -> their outcomes.
TenantPass = Callable[[list[str], OnDone | None], Iterable[TenantOutcome]]


def with_retries(run_pass: TenantPass, tenant_ids: list[str], on_done: OnDone | None = None) -> list[TenantOutcome]:
    """Run a pass over the tenants; tenants that failed on a transient fault (throttling, 5xx,
    network) get another pass at the end, so a passing storm does not leave a failed partition
    behind. `on_done(outcome, done, total)` hears every outcome of every pass."""
    outcomes = {o.tenant_id: o for o in run_pass(tenant_ids, on_done)}
    for _ in range(TRANSIENT_RETRIES):
        again = [t for t, o in outcomes.items() if o.status == "failed" and o.transient]
        if not again:
            break
        log.info("retrying %d tenants that failed on a transient fault", len(again))
        outcomes.update({o.tenant_id: o for o in run_pass(again, on_done)})
    return [outcomes[t] for t in tenant_ids]


def sync_tenants(ctx: SyncContext, tenant_ids: list[str], concurrency: int,
                 on_done: OnDone | None = None) -> list[TenantOutcome]:
    """Sync tenants side by side in threads of this process (`concurrency` at a time)."""
    return with_retries(lambda ids, report: _thread_pass(ctx, ids, concurrency, report), tenant_ids, on_done)


def recorded_run(ctx: SyncContext, tenant_ids: list[str], concurrency: int,
                 on_done: OnDone | None = None) -> list[TenantOutcome]:
    """sync_tenants inside the run's sync_runs row: opened first, closed with the counts."""
    start_run(ctx.engine, ctx.run_id, len(tenant_ids))
    outcomes = sync_tenants(ctx, tenant_ids, concurrency, on_done)
    finish_run(ctx.engine, ctx.run_id, outcomes)
    return outcomes


def _thread_pass(ctx: SyncContext, tenant_ids: list[str], concurrency: int,
                on_done: OnDone | None) -> list[TenantOutcome]:
    done: list[TenantOutcome] = []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(tenant_ids) or 1))) as pool:
        for future in as_completed([pool.submit(sync_tenant, ctx, t) for t in tenant_ids]):
            done.append(future.result())
            if on_done:
                on_done(done[-1], len(done), len(tenant_ids))
    return done


def finish_run(engine: Engine, run_id: str, outcomes: list[TenantOutcome]) -> None:
    """Close the run's sync_runs row with the counts of its outcomes."""
    runs.finish_run(engine, run_id, len(outcomes), sum(o.status == "failed" for o in outcomes))
