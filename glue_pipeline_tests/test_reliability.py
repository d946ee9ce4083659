"""Reliability: every fault the sandbox can inject, one at a time, against a real sync.

Each test starts the sandbox over real HTTPS (real msal and requests), syncs into a real store
and checks that only the tenant hit by the fault fails (or is marked), with a message that names
the cause and the fix, while the other tenants finish. Transient faults at moderate rates must
not change the result at all: the store ends equal to the store of a clean sync.

Most tests drive the per-tenant sync (glue_pipeline.sync) with a GraphClient built here, so the
retry settings (max_retries, max_retry_wait_s, backoff_base_s, timeout_s) can be small; the
Dagster test at the end goes through the runner exactly as `glue-pipeline sync` does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import Engine, select

from glue_pipeline.cache import TenantCache
from glue_pipeline.extract import CONCEALED_FIX
from glue_pipeline.graph.client import MAX_STALLED_PAGES, GraphClient
from glue_pipeline.matching.organizations import normalize_name
from glue_pipeline.options import SyncOptions
from glue_pipeline.overview import duplicate_emails
from glue_pipeline.runner import run_discovery, run_sync
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import AssignedLicense, StoreContact, User, World
from glue_pipeline.settings import GraphSettings, Secret
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import (
    TRANSIENT_RETRIES,
    TenantOutcome,
    discover_into,
    recorded_run,
    sync_context,
)
from glue_pipeline_tests.stores import canonical_store, matched_world, partition_states

CLIENT_LOGGER = "glue_pipeline.graph.client"
MAILBOX_COLUMNS = ["mailbox_storage_used_bytes", "mailbox_item_count", "mailbox_warning_quota_bytes",
                   "mailbox_quota_bytes", "mailbox_last_activity", "mailbox_has_archive",
                   "mailbox_report_date"]


# --------------------------------------------------------------------------- worlds and stores


def settings_for(sandbox: Sandbox, world: World, **overrides: object) -> GraphSettings:
    values: dict = dict(partner_tenant_id=world.partner.tenant_id, client_id=world.app.client_id,
                        client_secret=Secret(world.app.client_secret), authority_host=sandbox.authority_host,
                        graph_url=sandbox.graph_url, ca_file=str(sandbox.ca_file), max_retries=3,
                        max_retry_wait_s=0.05, timeout_s=10.0, concurrency=4)
    values.update(overrides)
    return GraphSettings(**values)


@dataclass
class Bench:
    """A sandbox serving a copy of a world, a seeded store and the tenants discovery found."""

    sandbox: Sandbox
    world: World  # the copy the sandbox serves: edit it (then sandbox.refresh()) to change Microsoft
    engine: Engine
    tenant_ids: list[str]

    def client(self, backoff_base_s: float = 0.001, **overrides: object) -> GraphClient:
        return GraphClient(settings_for(self.sandbox, self.world, **overrides), backoff_base_s=backoff_base_s)

    def clock(self) -> datetime:
        """The syncs' clock, at the world's reference date: a store compared with another sync's
        shows the same last sign-ins, however far apart the two syncs ran."""
        return self.world.reference_date

    def sync(self, client: GraphClient | None = None, tenant_ids: list[str] | None = None,
             options: SyncOptions | None = None, cache: TenantCache | None = None
             ) -> tuple[str, dict[str, TenantOutcome]]:
        """One batch, as the Dagster asset runs it: the run recorded, every tenant side by side.
        Returns the run id and the outcome per tenant."""
        run_id = f"test-{uuid.uuid4().hex[:12]}"
        tenant_ids = list(tenant_ids or self.tenant_ids)
        ctx = sync_context(client or self.client(), self.engine, run_id, options or SyncOptions(), cache,
                           clock=self.clock)
        return run_id, {o.tenant_id: o for o in recorded_run(ctx, tenant_ids, 4)}

    def log(self, run_id: str, tenant_id: str) -> list[tuple[str, str]]:
        log = schema.sync_log
        with self.engine.connect() as conn:
            return [(r.action, r.message) for r in conn.execute(
                select(log.c.action, log.c.message).where(log.c.run_id == run_id, log.c.tenant_id == tenant_id))]

    def result(self, run_id: str, tenant_id: str) -> dict:
        results = schema.sync_results
        with self.engine.connect() as conn:
            return dict(conn.execute(select(results).where(results.c.run_id == run_id,
                                                           results.c.tenant_id == tenant_id)).one()._mapping)

    def overlays(self, tenant_id: str) -> dict[str, dict]:
        cm = schema.contact_microsoft
        with self.engine.connect() as conn:
            return {r.user_id: dict(r._mapping) for r in conn.execute(select(cm).where(cm.c.tenant_id == tenant_id))}


def open_bench(world: World, state_dir: Path, store_url: str) -> Bench:
    copy = world.model_copy(deep=True)
    sandbox = Sandbox(SandboxConfig(world=copy), state_dir=state_dir).start()
    engine = make_engine(store_url)
    seed_store(engine, copy.store)
    client = GraphClient(settings_for(sandbox, copy))
    return Bench(sandbox, copy, engine, discover_into(engine, client))


@pytest.fixture(scope="module")
def fault_world() -> World:
    """Five matched tenants, 150 users, all consented."""
    return matched_world(seed=21, tenants=5, users=150)


@pytest.fixture(scope="module")
def reference(fault_world: World, sandbox_state: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The store after one clean sync of the fault world, fresh store (canonical form)."""
    path = tmp_path_factory.mktemp("reference") / "store.db"
    bench = open_bench(fault_world, sandbox_state, f"sqlite:///{path}")
    try:
        _run_id, outcomes = bench.sync()
        assert {o.status for o in outcomes.values()} == {"synced"}
        return canonical_store(bench.engine)
    finally:
        bench.sandbox.stop()


@pytest.fixture
def bench(fault_world: World, sandbox_state: Path, tmp_path: Path) -> Iterator[Bench]:
    bench = open_bench(fault_world, sandbox_state, f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield bench
    finally:
        bench.sandbox.stop()


def target(bench: Bench) -> str:
    """The tenant the faults hit: the one with the most users (most requests)."""
    return max(bench.world.tenants, key=lambda t: len(t.users)).id


def assert_only_failed(outcomes: dict[str, TenantOutcome], failed: set[str]) -> None:
    statuses = {t: o.status for t, o in outcomes.items()}
    assert {t for t, s in statuses.items() if s == "failed"} == failed, statuses
    assert all(s == "synced" for t, s in statuses.items() if t not in failed), statuses


def retry_waits(caplog: pytest.LogCaptureFixture, tenant_id: str) -> list[tuple[str, float]]:
    """(error code, seconds waited) of every retry the client logged for the tenant."""
    return [(str(r.args[2]), float(r.args[4])) for r in caplog.records
            if r.name == CLIENT_LOGGER and isinstance(r.args, tuple) and len(r.args) == 5
            and r.args[0] == tenant_id]


# --------------------------------------------------------------------------- transient faults


STORMS = {
    # fault -> (sandbox fault settings, stats counter, what the message must say)
    "429": ({"rate_429": 1.0, "retry_after_s": 0.2}, "throttled",
            ["TooManyRequests (HTTP 429)", "lower GLUE_GRAPH_CONCURRENCY"]),
    "5xx": ({"rate_5xx": 1.0}, "server_errors", ["(HTTP 50", "Graph is failing; re-run this tenant later"]),
    "reset": ({"reset_rate": 1.0}, "resets", ["ConnectionError", "re-run this tenant later"]),
    "slow": ({"slow_rate": 1.0, "slow_s": 2.0}, "slowed", ["ReadTimeout", "could not be reached in time"]),
}


@pytest.mark.parametrize("fault", sorted(STORMS))
def test_a_fault_storm_fails_only_its_tenant_after_bounded_retries(
        bench: Bench, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    settings, counter, phrases = STORMS[fault]
    tenant_id = target(bench)
    caplog.set_level(logging.INFO, logger=CLIENT_LOGGER)
    faults = bench.sandbox.faults
    faults.fault_tenants.add(tenant_id)
    for name, value in settings.items():
        setattr(faults, name, value)
    # One read at a time per tenant, so the storm meets exactly one request's retries per pass.
    client = bench.client(max_retries=3, max_retry_wait_s=0.05, timeout_s=0.5, backoff_base_s=0.001,
                          tenant_concurrency=1)

    run_id, outcomes = bench.sync(client)

    assert_only_failed(outcomes, {tenant_id})
    message = outcomes[tenant_id].error or ""
    assert message.startswith(f"tenant {tenant_id}: ") and "Fix: " in message
    for phrase in phrases:
        assert phrase in message, message
    stats = bench.sandbox.stats.snapshot()
    passes = 1 + TRANSIENT_RETRIES  # the batch gives a transiently failed tenant another pass
    assert stats[counter] == 4 * passes, "one try and max_retries=3 retries per pass, then it gives up"
    waits = retry_waits(caplog, tenant_id)
    assert len(waits) == 3 * passes and all(0 <= w <= 0.05 for _code, w in waits), "every wait is capped"
    assert bench.result(run_id, tenant_id)["error"] == message
    assert ("tenant_failed", message) in bench.log(run_id, tenant_id)
    assert not bench.overlays(tenant_id), "nothing is written for the failed tenant"
    for other in set(outcomes) - {tenant_id}:
        assert bench.overlays(other), "the other tenants are written"


def test_throttling_waits_what_retry_after_asks_then_the_tenant_syncs(
        bench: Bench, reference: dict, caplog: pytest.LogCaptureFixture) -> None:
    tenant_id = target(bench)
    caplog.set_level(logging.INFO, logger=CLIENT_LOGGER)
    faults = bench.sandbox.faults
    faults.fault_tenants.add(tenant_id)
    faults.rate_429, faults.retry_after_s = 0.3, 1  # Retry-After: 1
    client = bench.client(max_retries=25, max_retry_wait_s=60.0)

    _run_id, outcomes = bench.sync(client)

    assert_only_failed(outcomes, set())
    waits = retry_waits(caplog, tenant_id)
    assert bench.sandbox.stats.throttled == len(waits) > 0
    assert {code for code, _w in waits} == {"TooManyRequests"}
    assert all(w == 1.0 for _code, w in waits), "the client waits exactly what Retry-After says"
    assert canonical_store(bench.engine) == reference


def test_moderate_transient_faults_change_nothing(bench: Bench, reference: dict,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """429, 5xx, dropped connections and answers slower than the timeout, all on one tenant whose
    users are paged five at a time: retried, and the store is exactly the clean sync's."""
    tenant_id = target(bench)
    caplog.set_level(logging.INFO, logger=CLIENT_LOGGER)
    faults = bench.sandbox.faults
    faults.fault_tenants.add(tenant_id)
    faults.rate_429, faults.rate_5xx, faults.reset_rate = 0.15, 0.15, 0.15
    faults.slow_rate, faults.slow_s = 0.15, 2.0
    client = bench.client(max_retries=15, max_retry_wait_s=0.02, timeout_s=0.5, page_size=2)

    _run_id, outcomes = bench.sync(client)

    assert_only_failed(outcomes, set())
    stats = bench.sandbox.stats.snapshot()
    assert min(stats["throttled"], stats["server_errors"], stats["resets"], stats["slowed"]) > 0, stats
    assert 0 < len(retry_waits(caplog, tenant_id)) <= stats["faults_injected"]
    assert canonical_store(bench.engine) == reference


def test_a_token_expiring_mid_paging_is_replaced_and_paging_goes_on(bench: Bench, reference: dict) -> None:
    tenant_id = target(bench)
    faults = bench.sandbox.faults
    faults.fault_tenants.add(tenant_id)
    faults.expire_tokens_after_requests = 6  # organization, domains, then a few pages of users
    # One read at a time: with two side by side, both may carry the expired token and each is
    # refused (and refreshed) once, so the count below would depend on timing.
    client = bench.client(page_size=5, tenant_concurrency=1)

    _run_id, outcomes = bench.sync(client)

    assert_only_failed(outcomes, set())
    stats = bench.sandbox.stats.snapshot()
    assert stats["tokens_refused"] == 1, "the old token was refused once, then a fresh one was used"
    users = len(bench.world.tenant(tenant_id).users)
    assert outcomes[tenant_id].users == users and users > 6 * 5
    assert stats["tokens_issued"] > len(bench.tenant_ids), "a fresh token was issued for the tenant"
    assert canonical_store(bench.engine) == reference


# --------------------------------------------------------------------------- tenants that cannot be read


def test_revoked_consent_fails_only_that_tenant(bench: Bench) -> None:
    tenant_id = target(bench)
    bench.sandbox.faults.revoked.add(tenant_id)
    run_id, outcomes = bench.sync()
    assert_only_failed(outcomes, {tenant_id})
    message = outcomes[tenant_id].error or ""
    assert f"tenant {tenant_id}" in message and "AADSTS700016" in message
    assert "grant admin consent" in message, "the fix is named"
    assert ("tenant_failed", message) in bench.log(run_id, tenant_id)
    bench.sandbox.faults.revoked.clear()
    _run_id, again = bench.sync(tenant_ids=[tenant_id])
    assert again[tenant_id].status == "synced", "consent given back: the tenant syncs"


def test_a_tenant_vanishing_between_discovery_and_extraction(bench: Bench) -> None:
    """Discovery listed it; by the time it is read the tenant is gone (AADSTS90002 at the identity
    platform). Only it fails, with the cause and the fix; when it comes back it syncs."""
    tenant_id = target(bench)
    bench.sandbox.remove_tenant(tenant_id)
    run_id, outcomes = bench.sync()
    assert_only_failed(outcomes, {tenant_id})
    message = outcomes[tenant_id].error or ""
    assert ("tenant_failed", message) in bench.log(run_id, tenant_id)
    bench.sandbox.restore_tenant(tenant_id)
    _run_id, again = bench.sync(tenant_ids=[tenant_id])
    assert again[tenant_id].status == "synced"
    # The operator must learn that the tenant no longer exists, not to check the app's secret.
    assert f"tenant {tenant_id}" in message
    assert "AADSTS90002" in message or "does not exist" in message or "no longer" in message, message


def test_a_wrong_secret_fails_every_tenant_with_the_fix_and_writes_nothing(bench: Bench) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    client = bench.client(client_secret=Secret(wrong))
    run_id, outcomes = bench.sync(client)
    assert {o.status for o in outcomes.values()} == {"failed"}
    for tenant_id, outcome in outcomes.items():
        message = outcome.error or ""
        assert "AADSTS7000215" in message and "GLUE_CLIENT_SECRET" in message, message
        assert wrong not in message and bench.world.app.client_secret not in message
        assert ("tenant_failed", message) in bench.log(run_id, tenant_id)
    with bench.engine.connect() as conn:
        assert not conn.execute(select(schema.contact_microsoft)).first()
        assert not conn.execute(select(schema.contacts).where(schema.contacts.c.created_by == "microsoft")).first()


@pytest.mark.parametrize("kind", ["loop", "endless"])
@pytest.mark.parametrize("delta", [False, True], ids=["full-read", "delta"])
def test_next_link_that_repeats_or_never_ends_is_a_bounded_paging_error(
        bench: Bench, kind: str, delta: bool, tmp_path: Path) -> None:
    tenant_id = target(bench)
    cache = TenantCache(tmp_path / "cache") if delta else None
    if delta:  # a first sync keeps the users and their delta link: the next one reads users/delta
        _run_id, first = bench.sync(cache=cache)
        assert_only_failed(first, set())
        bench.sandbox.change_users(tenant_id, fraction=0.2, seed=4)
    faults = bench.sandbox.faults
    (faults.next_link_loop if kind == "loop" else faults.next_link_endless).add(tenant_id)
    bench.sandbox.stats.reset()

    run_id, outcomes = bench.sync(client=bench.client(page_size=5), cache=cache)

    assert_only_failed(outcomes, {tenant_id})
    message = outcomes[tenant_id].error or ""
    assert message.startswith(f"tenant {tenant_id}: ") and "NextLinkLoop" in message, message
    assert "Fix: " in message
    assert ("tenant_failed", message) in bench.log(run_id, tenant_id)
    paging_faults = bench.sandbox.stats.paging_faults
    assert 0 < paging_faults <= MAX_STALLED_PAGES + 2, "the client stops instead of paging forever"


# --------------------------------------------------------------------------- the mailbox report


def _mailbox_fields(bench: Bench, tenant_id: str) -> dict[str, tuple]:
    return {u: tuple(o[c] for c in MAILBOX_COLUMNS) for u, o in bench.overlays(tenant_id).items()}


@pytest.mark.parametrize("mode", ["truncated", "malformed", "empty", "concealed", "no_bom"])
def test_a_spoiled_mailbox_report_keeps_the_old_mailbox_fields(bench: Bench, mode: str) -> None:
    """The tenant still syncs; its mailbox fields keep the values of the last good report; the
    sync log says why (a report without its BOM is simply read)."""
    tenant_id = target(bench)
    _run_id, first = bench.sync()
    assert_only_failed(first, set())
    before = _mailbox_fields(bench, tenant_id)
    assert any(v[0] is not None for v in before.values()), "the first report was joined"
    if mode == "concealed":
        bench.world.tenant(tenant_id).reports_concealed = True
    else:
        bench.sandbox.faults.report_csv[tenant_id] = mode

    run_id, outcomes = bench.sync()

    assert_only_failed(outcomes, set())
    assert bench.sandbox.stats.report_faults > 0 or mode == "concealed"
    after = _mailbox_fields(bench, tenant_id)
    changed = {u: (before[u], after[u]) for u in before if before[u] != after[u]}
    assert not changed, f"{len(changed)} users' mailbox fields changed, e.g. {next(iter(changed.items()))}"
    notes = [m for a, m in bench.log(run_id, tenant_id) if a == "tenant_note"]
    if mode == "no_bom":
        assert not notes
    elif mode == "concealed":
        assert CONCEALED_FIX in notes
    else:
        assert any("mailbox usage report" in n for n in notes), f"the sync log says why: {notes}"


# --------------------------------------------------------------------------- odd users and tenants


ODD_NAMES = {
    # UPN local part -> (displayName, givenName, surname, mail)
    "zoe.emoji": ("Zoë 😀 Ünïcödé-Łukasz", "Zoë 😀", "Ünïcödé-Łukasz", "zoe.emoji@{d}"),
    "rtl.user": ("محمد العربي", "محمد", "العربي", "rtl.user@{d}"),
    "hebrew.user": ("דוד כהן", "דוד", "כהן", None),
    "cjk.user": ("山田 太郎", "太郎", "山田", None),
    "display.only": ("Display Only-Person", None, None, None),
    "no.names": (None, None, None, None),
    "no.mail": ("No Mail", "No", "Mail", None),
}


def _odd_user(local: str, domain: str, sku: str, **fields: object) -> User:
    display, given, surname, mail = ODD_NAMES.get(local, (None, None, None, None))
    values: dict = dict(id=str(uuid.uuid4()), userPrincipalName=f"{local}@{domain}", displayName=display,
                        givenName=given, surname=surname, mail=mail.format(d=domain) if mail else None,
                        assignedLicenses=[AssignedLicense(skuId=sku)])
    values.update(fields)
    return User(**values)


@pytest.fixture(params=["sqlite", "postgres"])
def odd_bench(request: pytest.FixtureRequest, fault_world: World, sandbox_state: Path,
              tmp_path: Path) -> Iterator[tuple[Bench, str, dict[str, User]]]:
    """The fault world with odd users added to its largest tenant, on SQLite or PostgreSQL."""
    world = fault_world.model_copy(deep=True)
    tenant = max(world.tenants, key=lambda t: len(t.users))
    domain = tenant.default_domain
    sku = next(s for s in tenant.skus if s.appliesTo == "User" and s.capabilityStatus == "Enabled")
    users = {local: _odd_user(local, domain, sku.skuId) for local in ODD_NAMES}
    users["guest"] = _odd_user("pat_example.org#EXT#", tenant.initial_domain, sku.skuId,
                               displayName="Pat Guest", userType="Guest", mail="pat@example.org")
    users["Case.Twin"] = _odd_user("Case.Twin", domain, sku.skuId, displayName="Case Twin",
                                   givenName="Case", surname="Twin")
    users["case.twin"] = _odd_user("case.twin", domain, sku.skuId, displayName="Casey Twin",
                                   givenName="Casey", surname="Twin")
    tenant.users.extend(users.values())
    sku.enabled += len(users)
    url = (request.getfixturevalue("pg_database") if request.param == "postgres"
           else f"sqlite:///{tmp_path / 'store.db'}")
    bench = open_bench(world, sandbox_state, url)
    try:
        yield bench, tenant.id, users
    finally:
        bench.sandbox.stop()
        bench.engine.dispose()


def _contact_of(bench: Bench, tenant_id: str, user_id: str) -> dict | None:
    cm, contacts = schema.contact_microsoft, schema.contacts
    with bench.engine.connect() as conn:
        row = conn.execute(select(contacts).join(cm, cm.c.contact_id == contacts.c.id)
                           .where(cm.c.tenant_id == tenant_id, cm.c.user_id == user_id)).first()
        if row is None:
            return None
        emails = conn.execute(select(schema.contact_emails.c.value, schema.contact_emails.c.is_primary)
                              .where(schema.contact_emails.c.contact_id == row.id)).all()
    return {**row._mapping, "emails": {e.value: e.is_primary for e in emails}}


def test_unicode_names_missing_fields_and_guests_sync_as_expected(odd_bench) -> None:  # type: ignore[no-untyped-def]
    bench, tenant_id, users = odd_bench
    run_id, outcomes = bench.sync()
    assert_only_failed(outcomes, set())

    for local in ("zoe.emoji", "rtl.user", "hebrew.user", "cjk.user", "no.mail"):
        user = users[local]
        contact = _contact_of(bench, tenant_id, user.id)
        assert contact is not None, f"{local} was written"
        assert (contact["first_name"], contact["last_name"]) == (user.givenName, user.surname), \
            "names come back exactly as Microsoft holds them"
        assert contact["emails"][user.userPrincipalName] is True, "the UPN is the primary email"
    display_only = _contact_of(bench, tenant_id, users["display.only"].id)
    assert display_only and (display_only["first_name"], display_only["last_name"]) == ("Display", "Only-Person")
    nameless = _contact_of(bench, tenant_id, users["no.names"].id)
    assert nameless and nameless["first_name"] is None and nameless["last_name"] is None
    assert nameless["emails"] == {users["no.names"].userPrincipalName: True}

    assert _contact_of(bench, tenant_id, users["guest"].id) is None, "guests are not synced by default"
    skipped = [m for a, m in bench.log(run_id, tenant_id) if a == "users_skipped"]
    assert skipped and "guest account" in skipped[0]

    _run_id, again = bench.sync()
    assert all(o.counts.created == 0 and o.counts.updated == 0 for o in again.values()), \
        "a re-run changes nothing"


def test_two_upns_differing_only_in_case_do_not_become_two_contacts(odd_bench) -> None:  # type: ignore[no-untyped-def]
    """Entra ID treats UPNs case-insensitively; a store with two contacts for one address breaks
    the pipeline's own check (no duplicate emails in an organization). The pair must be held for
    an analyst (or written once), never created twice."""
    bench, tenant_id, users = odd_bench
    _run_id, outcomes = bench.sync()
    assert_only_failed(outcomes, set())
    twins = [users["Case.Twin"], users["case.twin"]]
    linked = [_contact_of(bench, tenant_id, u.id) for u in twins]
    assert duplicate_emails(bench.engine).empty, duplicate_emails(bench.engine).to_dict("records")
    assert sum(c is not None for c in linked) <= 1, "at most one contact for the address"
    with bench.engine.connect() as conn:
        held = set(conn.execute(select(schema.held_users.c.user_id)
                                .where(schema.held_users.c.tenant_id == tenant_id)).scalars())
    assert {u.id for u, c in zip(twins, linked) if c is None} <= held, "the twin not written is held with a reason"


def test_an_empty_tenant_syncs_with_nothing_to_write(bench: Bench) -> None:
    empty = min(bench.world.tenants, key=lambda t: len(t.users))
    empty.users.clear()
    bench.sandbox.refresh()
    run_id, outcomes = bench.sync()
    assert_only_failed(outcomes, set())
    result = bench.result(run_id, empty.id)
    assert (result["status"], result["users"], result["created"], result["error"]) == ("synced", 0, 0, None)
    assert not bench.overlays(empty.id)


def test_an_address_of_another_organizations_contact_never_moves_that_contact(
        fault_world: World, sandbox_state: Path, tmp_path: Path) -> None:
    """A user whose address belongs to a contact of another organization gets a contact in its
    own tenant's organization; the other organization's contact is left alone."""
    world = fault_world.model_copy(deep=True)
    tenant, other = sorted(world.tenants, key=lambda t: len(t.users))[-2:]
    sku = next(s for s in tenant.skus if s.appliesTo == "User" and s.capabilityStatus == "Enabled")
    sku.enabled += 1
    user = _odd_user("quentin.elsewhere-zed", tenant.default_domain, sku.skuId,
                     displayName="Quentin Elsewhere-Zed", givenName="Quentin", surname="Elsewhere-Zed")
    tenant.users.append(user)
    org_of = {normalize_name(o.name): o.id for o in world.store.organizations}
    other_org = org_of[normalize_name(other.display_name)]
    world.store.contacts.append(StoreContact(id=90_001, organization_id=other_org, first_name="Elsewhere",
                                             emails=[{"value": user.userPrincipalName, "primary": True}]))
    bench = open_bench(world, sandbox_state, f"sqlite:///{tmp_path / 'store.db'}")
    try:
        _run_id, outcomes = bench.sync()
        assert_only_failed(outcomes, set())
        with bench.engine.connect() as conn:
            kept = conn.execute(select(schema.contacts).where(schema.contacts.c.id == 90_001)).one()
            linked = conn.execute(select(schema.contact_microsoft)
                                  .where(schema.contact_microsoft.c.contact_id == 90_001)).first()
        assert (kept.organization_id, kept.first_name, linked) == (other_org, "Elsewhere", None)
        contact = _contact_of(bench, tenant.id, user.id)
        assert contact is not None and contact["organization_id"] == org_of[normalize_name(tenant.display_name)]
    finally:
        bench.sandbox.stop()


# --------------------------------------------------------------------------- through Dagster


def test_dagster_run_fails_exactly_the_faulty_tenants_and_names_cause_and_fix(
        glue_env: dict, sandbox: Sandbox, small_world: World, instance: dg.DagsterInstance,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the runner as `glue-pipeline sync` does it: a revoked tenant and a tenant whose
    paging loops fail, a tenant with a malformed report only gets a note; the failed partitions
    are exactly those two, the Failure lists each with its cause and fix, and re-running the
    paging tenant alone once Graph behaves materializes it."""
    config = tmp_path / "glue.yaml"
    config.write_text("sync: {}\n")
    monkeypatch.setenv("GLUE_CONFIG", str(config))
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)
    assert run_discovery(instance).success
    granted = [t for t in small_world.tenants if t.consent == "granted"]
    revoked = next(t.id for t in small_world.tenants if t.consent == "revoked")
    looping = max(granted, key=lambda t: len(t.users)).id
    sandbox.faults.next_link_loop.add(looping)

    [run] = run_sync(instance)

    assert not run.success
    error = run.error or ""
    assert f"2 of {len(small_world.tenants)} tenants failed" in error, error
    lines = {line for line in error.splitlines() if line.startswith("- ")}
    loop_line = next(line for line in lines if f"({looping})" in line)
    assert "NextLinkLoop" in loop_line and "Fix: " in loop_line
    revoked_line = next(line for line in lines if f"({revoked})" in line)
    assert "AADSTS700016" in revoked_line and "grant admin consent" in revoked_line
    materialized, failed = partition_states(instance)
    assert failed == {looping, revoked}
    assert materialized == {t.id for t in small_world.tenants} - failed
    with engine.connect() as conn:
        results = dict(conn.execute(select(schema.sync_results.c.tenant_id, schema.sync_results.c.status)
                                    .where(schema.sync_results.c.run_id == run.run_id)).all())
    assert {t for t, s in results.items() if s == "failed"} == {looping, revoked}

    sandbox.faults.next_link_loop.clear()
    [rerun] = run_sync(instance, [looping])
    assert rerun.success
    materialized, failed = partition_states(instance)
    assert looping in materialized and failed == {revoked}


def test_a_passing_storm_is_retried_before_the_tenant_is_marked_failed(bench: Bench) -> None:
    """The first pass fails the tenant on throttling; the storm is over by the second pass."""
    tenant_id = target(bench)
    faults = bench.sandbox.faults
    faults.fault_tenants.add(tenant_id)
    faults.rate_429 = 1.0
    client = bench.client(max_retries=1, max_retry_wait_s=0.01, backoff_base_s=0.001)
    calm = {"done": False}

    def calm_after_first_pass(outcome: TenantOutcome, done: int, total: int) -> None:
        if done == total and not calm["done"]:
            faults.rate_429 = 0  # the storm passes once the first pass is over
            calm["done"] = True

    run_id = f"retry-{uuid.uuid4().hex[:8]}"
    ctx = sync_context(client, bench.engine, run_id, SyncOptions())
    outcomes = {o.tenant_id: o for o in recorded_run(ctx, bench.tenant_ids, 4, calm_after_first_pass)}
    assert calm["done"] and outcomes[tenant_id].status != "failed"
    assert bench.result(run_id, tenant_id)["error"] is None
    assert any(action == "tenant_failed" for action, _message in bench.log(run_id, tenant_id)), \
        "the first pass's failure stays in the sync log"
