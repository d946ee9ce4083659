"""Incremental re-syncs: Graph delta queries on top of the last snapshot, the mailbox report
fetched once a day, and a full read when the delta link has expired."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import func, select

from glue_pipeline.decisions import apply_decision
from glue_pipeline.report import summarize
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.server import Sandbox
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.tables import TENANT_TABLES
from glue_pipeline_tests.stores import partition_of, partition_states, sync_every_partition


@pytest.fixture
def first_sync(glue_env: dict, small_world: World, tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)
    instance = get_instance()
    assert run_discovery(instance).success
    run_sync(instance)
    yield engine, instance
    instance.dispose()


def _synced_tenant(engine, small_world: World):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        linked = set(conn.execute(select(schema.contact_microsoft.c.tenant_id)).scalars())
    return next(t for t in small_world.tenants if t.id in linked)


def test_nothing_changed_reads_no_user_and_no_report_again(first_sync, sandbox: Sandbox,
                                                           small_world: World) -> None:
    engine, instance = first_sync
    sandbox.stats.reset()
    runs = run_sync(instance)
    summary = summarize(engine, [r.run_id for r in runs])
    assert (summary.created, summary.updated) == (0, 0)
    graph = sandbox.stats.snapshot()["graph"]
    assert graph.get("users", 0) == 0, "users come from delta queries, not a full read"
    assert sandbox.stats.delta_requests >= 1
    assert graph["organization"] > 0, "the tenants were read"
    assert graph.get("getMailboxUsageDetail", 0) == 0, "today's report is not fetched again"
    granted = [t for t in small_world.tenants if t.consent == "granted"]
    assert sandbox.stats.snapshot()["requests"]["graph"] == len(granted), \
        "organization, licenses and the delta in one batch per tenant"


def test_changes_and_removals_arrive_through_delta(first_sync, sandbox: Sandbox, small_world: World) -> None:
    engine, instance = first_sync
    tenant = _synced_tenant(engine, small_world)
    with engine.connect() as conn:
        links = dict(conn.execute(select(schema.contact_microsoft.c.user_id, schema.contact_microsoft.c.contact_id)
                                  .where(schema.contact_microsoft.c.tenant_id == tenant.id)).all())
    changed = [u for u in sandbox.change_users(tenant.id, fraction=0.5, seed=3, fields=("jobTitle",))
               if u in links]
    gone = next(u for u in links if u not in changed)
    sandbox.remove_user(tenant.id, gone, reason="deleted")
    runs = run_sync(instance, [tenant.id])
    summary = summarize(engine, [runs[0].run_id])
    assert summary.updated >= len(changed) > 0
    with engine.connect() as conn:
        status = conn.execute(select(schema.contact_microsoft.c.status)
                              .where(schema.contact_microsoft.c.user_id == gone)).scalar_one()
        kept = conn.execute(select(schema.contacts.c.id).where(schema.contacts.c.id == links[gone])).first()
        removed_log = conn.execute(select(schema.sync_log.c.action)
                                   .where(schema.sync_log.c.user_id == gone)).scalars().all()
    assert status == "removed" and kept is not None, "the contact is kept, its overlay says removed"
    assert "user_removed" in removed_log


def test_an_expired_delta_link_falls_back_to_a_full_read(first_sync, sandbox: Sandbox,
                                                         small_world: World) -> None:
    engine, instance = first_sync
    sandbox.expire_delta_tokens()
    sandbox.stats.reset()
    runs = run_sync(instance)
    summary = summarize(engine, [r.run_id for r in runs])
    assert (summary.created, summary.updated) == (0, 0)
    assert sandbox.stats.snapshot()["graph"].get("users", 0) > 0
    with engine.connect() as conn:
        notes = conn.execute(select(schema.sync_log.c.message)
                             .where(schema.sync_log.c.message.like("the users delta link had expired%"))).all()
    assert notes


def test_a_sandbox_on_another_port_still_syncs(first_sync, small_world: World, sandbox_state,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Delta links are kept relative to the Graph URL: a new host or port does not break them."""
    from glue_pipeline.demo import sandbox_env
    from glue_pipeline.sandbox.server import SandboxConfig

    engine, instance = first_sync
    with Sandbox(SandboxConfig(world=small_world.model_copy(deep=True)), state_dir=sandbox_state) as other:
        for key, value in sandbox_env(other, small_world).items():
            monkeypatch.setenv(key, value)
        runs = run_sync(instance)
    summary = summarize(engine, [r.run_id for r in runs])
    assert summary.failed == 0 and all(_revoked(small_world) not in r.tenant_ids for r in runs), \
        "the revoked tenant, parked since the first sync, is left out"
    assert (summary.created, summary.updated) == (0, 0)


def _actions(engine, run_ids: list[str], action: str) -> set[str]:  # type: ignore[no-untyped-def]
    """Tenants with a sync-log row of that action in those runs."""
    log = schema.sync_log.c
    with engine.connect() as conn:
        return set(conn.execute(select(log.tenant_id).where(log.run_id.in_(run_ids), log.action == action))
                   .scalars())


def _latest_metadata(instance, tenant_id: str) -> dict:  # type: ignore[no-untyped-def]
    import dagster as dg

    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("tenant_contacts"), asset_partitions=[partition_of(tenant_id)]), limit=1).records
    assert records, f"tenant {tenant_id} was never materialized"
    return records[0].asset_materialization.metadata


def _matched_tenants(engine) -> set[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return set(conn.execute(select(schema.tenant_matches.c.tenant_id)
                                .where(schema.tenant_matches.c.status == "matched")).scalars())


def _revoked(small_world: World) -> str:
    return next(t.id for t in small_world.tenants if t.consent == "revoked")


def _latest_storage_id(instance, tenant_id: str) -> int:  # type: ignore[no-untyped-def]
    import dagster as dg

    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("tenant_contacts"), asset_partitions=[partition_of(tenant_id)]), limit=1).records
    return records[0].storage_id


def test_an_unchanged_tenant_is_recorded_without_being_planned_again(first_sync, sandbox: Sandbox,
                                                                    small_world: World) -> None:
    """In a failing run (the small world's revoked tenant fails, now for a new cause, so it is not
    parked) unchanged tenants are materialized again, marked unchanged, so that only the failed
    tenant's partition shows as failed."""
    from glue_pipeline_tests.stores import canonical_store

    engine, instance = first_sync
    matched = _matched_tenants(engine)
    assert matched, "the small world has matched tenants"
    first = _latest_metadata(instance, next(iter(matched)))
    assert first["unchanged since last sync"].value is False
    assert first["contact_matches rows"].value > 0 and "contact_matches" in first
    assert first["contact_matches file"].value.endswith(".parquet")
    before = canonical_store(engine)
    sandbox.faults.removed.add(_revoked(small_world))  # gone now: a cause no earlier run recorded
    runs = [sync_every_partition(instance)]
    assert not runs[0].success, "the revoked tenant fails the run"
    run_ids = [r.run_id for r in runs]
    summary = summarize(engine, run_ids)
    assert _actions(engine, run_ids, "tenant_unchanged") == matched
    assert (summary.created, summary.updated) == (0, 0) and summary.unchanged > 0
    assert canonical_store(engine) == before
    again = _latest_metadata(instance, next(iter(matched)))
    assert again["unchanged since last sync"].value is True, "materialized again in a failing run"
    assert again["unchanged"].value == first["created"].value + first["updated"].value + first["unchanged"].value
    materialized, failed = partition_states(instance)
    assert failed == {_revoked(small_world)} and matched <= materialized


def test_in_a_succeeding_run_an_unchanged_tenant_keeps_its_last_materialization(
        first_sync, sandbox: Sandbox, small_world: World) -> None:

    engine, instance = first_sync
    matched = _matched_tenants(engine)
    before = {t: _latest_storage_id(instance, t) for t in matched}
    revoked = _revoked(small_world)
    sandbox.config.world.tenant(revoked).consent = "granted"  # consent granted again: the run succeeds
    runs = [sync_every_partition(instance)]
    assert runs[0].success, runs[0].error
    assert _actions(engine, [runs[0].run_id], "tenant_unchanged") == matched
    assert {t: _latest_storage_id(instance, t) for t in matched} == before, "not materialized again"
    assert _latest_metadata(instance, revoked)["unchanged since last sync"].value is False
    materialized, failed = partition_states(instance)
    assert failed == set() and matched | {revoked} <= materialized


def test_a_tenant_without_a_match_is_planned_again_only_when_the_organizations_change(
        glue_env: dict, small_world: World, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import update

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)
    tenant = next(t for t in small_world.tenants if t.consent == "granted")
    organizations = schema.organizations.c
    with engine.begin() as conn:  # its organization is known under another name
        org_id = conn.execute(select(organizations.id).where(organizations.name == tenant.display_name)).scalar_one()
        conn.execute(update(schema.organizations).where(organizations.id == org_id).values(name="Qwxz Unrelated"))
    instance = get_instance()
    assert run_discovery(instance).success
    run_sync(instance)
    status = schema.tenant_matches.c
    with engine.connect() as conn:
        assert conn.execute(select(status.status).where(status.tenant_id == tenant.id)).scalar_one() != "matched"
    matched = _matched_tenants(engine)
    quiet = run_sync(instance)
    assert _actions(engine, [r.run_id for r in quiet], "tenant_unchanged") == matched | {tenant.id}
    with engine.begin() as conn:  # the organization gets its name: the tenant now matches it exactly
        conn.execute(update(schema.organizations).where(organizations.id == org_id).values(name=tenant.display_name))
    renamed = run_sync(instance)
    assert _actions(engine, [r.run_id for r in renamed], "tenant_unchanged") == matched, \
        "only the tenant without a match is planned again"
    with engine.connect() as conn:
        row = conn.execute(select(status.status, status.organization_id).where(status.tenant_id == tenant.id)).one()
    assert tuple(row) == ("matched", org_id)
    instance.dispose()


def test_a_store_edit_or_a_user_change_plans_the_tenant_again(first_sync, sandbox: Sandbox,
                                                             small_world: World) -> None:
    engine, instance = first_sync
    matched = sorted(_matched_tenants(engine))
    assert len(matched) >= 2
    edited, changed = matched[0], matched[1]
    contacts, overlay = schema.contacts.c, schema.contact_microsoft.c
    with engine.begin() as conn:  # a technician edits a contact in the documentation tool
        contact_id = conn.execute(select(overlay.contact_id).where(overlay.tenant_id == edited)).scalars().first()
        conn.execute(schema.contacts.update().where(contacts.id == contact_id)
                     .values(title="Edited by hand", updated_at=writer_now()))
    sandbox.change_users(changed, fraction=0.1, seed=5, fields=("jobTitle",))
    runs = run_sync(instance)
    run_ids = [r.run_id for r in runs]
    unchanged = _actions(engine, run_ids, "tenant_unchanged")
    assert edited not in unchanged and changed not in unchanged
    assert unchanged == set(matched) - {edited, changed}
    with engine.connect() as conn:
        title = conn.execute(select(contacts.title).where(contacts.id == contact_id)).scalar_one()
    assert title != "Edited by hand", "the tenant was planned again and Microsoft's title written back"


def test_a_failed_tenant_is_planned_in_full_at_its_next_sync(first_sync, sandbox: Sandbox,
                                                             small_world: World) -> None:
    engine, instance = first_sync
    tenant_id = sorted(_matched_tenants(engine))[0]
    sandbox.faults.revoked.add(tenant_id)
    failed = run_sync(instance, [tenant_id])
    assert not failed[0].success
    with engine.connect() as conn:
        state = conn.execute(select(schema.tenant_sync_state)
                             .where(schema.tenant_sync_state.c.tenant_id == tenant_id)).first()
    assert state is None, "a failure forgets the tenant's fingerprint"
    sandbox.faults.revoked.discard(tenant_id)
    runs = run_sync(instance, [tenant_id])
    assert runs[0].success
    assert tenant_id not in _actions(engine, [runs[0].run_id], "tenant_unchanged")
    assert _latest_metadata(instance, tenant_id)["unchanged since last sync"].value is False


def writer_now():  # type: ignore[no-untyped-def]
    from glue_pipeline.store.writer import utcnow

    return utcnow()


def test_a_delta_without_change_rewrites_only_the_snapshot_state(first_sync, sandbox: Sandbox,
                                                                 glue_env: dict) -> None:
    from pathlib import Path

    from glue_pipeline.cache import TenantCache

    engine, instance = first_sync
    tenant_id = sorted(_matched_tenants(engine))[0]
    cache = TenantCache(Path(glue_env["GLUE_VAR_DIR"]) / "cache")
    snapshot = cache.root / "users" / f"{tenant_id}.parquet"
    written = snapshot.stat().st_mtime_ns
    link = cache.load("users", tenant_id).state["delta_link"]
    run_sync(instance, [tenant_id])
    assert snapshot.stat().st_mtime_ns == written, "no user changed: the rows are not written again"
    state = cache.load("users", tenant_id).state
    assert state["delta_link"] != link, "the new delta link is kept beside the rows"
    sandbox.stats.reset()
    changed = sandbox.change_users(tenant_id, fraction=0.1, seed=9, fields=("jobTitle",))
    run_sync(instance, [tenant_id])
    assert sandbox.stats.snapshot()["graph"].get("users", 0) == 0, "still incremental"
    assert snapshot.stat().st_mtime_ns != written, "a change rewrites the rows"
    rows = {u["id"]: u for u in cache.load("users", tenant_id).rows()}
    assert all(u in rows for u in changed)


def test_a_damaged_snapshot_is_removed_so_the_next_sync_reads_in_full(tmp_path) -> None:
    """A snapshot's state is read at once, its rows only when needed: rows that cannot be read
    then fail the tenant with a clear cause, and the file is gone for the next sync."""
    import pandas as pd

    from glue_pipeline.cache import CachedTable, CacheError, TenantCache

    cache = TenantCache(tmp_path)
    frame = pd.DataFrame({"id": [f"user-{i}" for i in range(5000)], "name": [f"Name {i}" for i in range(5000)]})
    cache.save("users", "tenant-a", CachedTable(frame, {"delta_link": "users/delta?$deltatoken=1"}))
    path = tmp_path / "users" / "tenant-a.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 4: len(data) // 4 + 4000] = b"\xff" * 4000  # the rows, not the footer
    path.write_bytes(bytes(data))
    loaded = cache.load("users", "tenant-a")
    assert loaded is not None and loaded.state["delta_link"] == "users/delta?$deltatoken=1"
    with pytest.raises(CacheError, match="was removed, so the next sync reads the tenant in full"):
        loaded.rows()
    assert not path.exists() and cache.load("users", "tenant-a") is None


def test_a_plan_made_before_the_write_lock_is_made_again_when_its_store_rows_changed(first_sync,
                                                                                     small_world: World) -> None:
    """Tenants are planned outside the store's write lock, then written if the store rows the plan
    read are as they were: an edit in between (here a technician's) makes it plan again."""
    from glue_pipeline.extract import extract_tenant
    from glue_pipeline.graph.client import GraphClient
    from glue_pipeline.options import SyncOptions
    from glue_pipeline.settings import settings_from_env
    from glue_pipeline.snapshot import TenantSnapshot
    from glue_pipeline.store.writer import utcnow
    from glue_pipeline.sync import _draft, _still_holds, sync_context

    engine, _instance = first_sync
    tenant_id = sorted(_matched_tenants(engine))[0]
    options = SyncOptions()
    ctx = sync_context(GraphClient(settings_from_env().graph), engine, "test-run", options)
    extract = extract_tenant(ctx.client, tenant_id, options)
    assert isinstance(extract, TenantSnapshot)  # without a cache, users are always read in full
    with engine.connect() as conn, conn.begin():
        draft = _draft(conn, ctx, extract, utcnow())
    assert draft.contacts is not None and len(draft.contacts.plan.matches)
    with engine.connect() as conn:
        assert _still_holds(conn, tenant_id, draft.recorded, draft.organization_id, draft.inputs)
    contacts = schema.contacts.c
    with engine.begin() as conn:
        conn.execute(schema.contacts.update().where(contacts.organization_id == draft.organization_id)
                     .values(title="Edited by hand", updated_at=utcnow()))
    with engine.connect() as conn:
        assert not _still_holds(conn, tenant_id, draft.recorded, draft.organization_id, draft.inputs)


def test_a_changes_only_plan_is_not_written_when_the_store_moved_on(first_sync, sandbox: Sandbox) -> None:
    """A plan of the changed users only is made outside the write lock too: a technician's edit
    before it is written means the tenant is planned in full."""
    from glue_pipeline.cache import TenantCache
    from glue_pipeline.extract import extract_tenant
    from glue_pipeline.graph.client import GraphClient
    from glue_pipeline.options import SyncOptions
    from glue_pipeline.settings import cache_dir_from_env, data_dir_from_env, settings_from_env
    from glue_pipeline.snapshot import TenantSnapshot
    from glue_pipeline.store.writer import utcnow
    from glue_pipeline.sync import _changes_only, _still_holds, sync_context

    engine, _instance = first_sync
    tenant_id = sorted(_matched_tenants(engine))[0]
    sandbox.change_users(tenant_id, fraction=0.05, seed=4, fields=("jobTitle",))
    options = SyncOptions()
    ctx = sync_context(GraphClient(settings_from_env().graph), engine, "test-run", options)
    read = extract_tenant(ctx.client, tenant_id, options, TenantCache(cache_dir_from_env()))
    assert isinstance(read, TenantSnapshot) and read.changed_users
    with engine.connect() as conn, conn.begin():
        changes = _changes_only(conn, ctx, read, read.head.fingerprint(options), data_dir_from_env())
    assert changes is not None, "a few changed users of a matched tenant: planned alone"
    recorded = changes.unchanged.recorded
    with engine.connect() as conn:
        assert _still_holds(conn, tenant_id, recorded, recorded["organization_id"], changes.unchanged.inputs)
    with engine.begin() as conn:
        conn.execute(schema.contacts.update().where(schema.contacts.c.organization_id == recorded["organization_id"])
                     .values(title="Edited by hand", updated_at=utcnow()))
    with engine.connect() as conn:
        assert not _still_holds(conn, tenant_id, recorded, recorded["organization_id"], changes.unchanged.inputs)


def test_an_organization_with_its_first_contact_domain_has_contact_domains(
        glue_env: dict, small_world: World) -> None:
    """A name-only suggestion loses points when the organization's contact domains conflict
    with the tenant's: its first distinctive contact domain counts, free mail and more
    contacts on known domains do not."""
    from sqlalchemy import insert

    from glue_pipeline.matching.suggest import organizations_with_contact_domains
    from glue_pipeline.store import writer

    now = writer.utcnow()
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)

    def with_domains() -> list[int]:
        with engine.connect() as conn:
            return organizations_with_contact_domains(writer.read_organization_domains(conn))

    with engine.begin() as conn:
        org_id = conn.execute(insert(schema.organizations).values(name="Acme Consultants", created_at=now,
                                                                  updated_at=now)
                              .returning(schema.organizations.c.id)).scalar_one()
    before = with_domains()
    _add_contact(engine, org_id, "pat@gmail.com")
    assert with_domains() == before and org_id not in before, "free mail is no evidence either way"
    _add_contact(engine, org_id, "pat@acmeconsultants.example")
    assert with_domains() == sorted([*before, org_id])


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_tenant_without_a_match_is_planned_again_only_for_the_contacts_of_organizations_it_weighs(
        store: str, request: pytest.FixtureRequest, glue_env: dict, small_world: World, tmp_path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenant suggested an organization by name is planned again when that organization's
    contacts start using a domain of their own (the suggestion now conflicts), not when
    another organization gains its first contact domain, as a first sync's new contacts do."""
    from sqlalchemy import delete, update

    from glue_pipeline.matching.suggest import organizations_with_contact_domains
    from glue_pipeline.store import writer

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    if store == "postgres":
        monkeypatch.setenv("GLUE_STORE_URL", request.getfixturevalue("pg_database"))
    engine = make_engine(os.environ["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)

    named = {o.name for o in small_world.store.organizations}
    # Tenants an organization is named after; the shortest name takes a generic word best.
    tenant, other = sorted((t for t in small_world.tenants if t.consent == "granted" and t.display_name in named),
                           key=lambda t: len(t.display_name))[:2]
    organizations, matches = schema.organizations.c, schema.tenant_matches.c
    with engine.begin() as conn:  # its organization is known under a longer name: suggested, not matched
        org_id = conn.execute(select(organizations.id).where(organizations.name == tenant.display_name)).scalar_one()
        conn.execute(update(schema.organizations).where(organizations.id == org_id)
                     .values(name=f"{tenant.display_name} Group"))
        # It and another organization have no contact email yet: the first sync gives the other
        # its first domain.
        conn.execute(delete(schema.contact_emails).where(schema.contact_emails.c.contact_id.in_(
            select(schema.contacts.c.id).where(schema.contacts.c.organization_id == org_id))))
        other_org = conn.execute(select(organizations.id).where(organizations.name == other.display_name)).scalar_one()
        conn.execute(delete(schema.contact_emails).where(schema.contact_emails.c.contact_id.in_(
            select(schema.contacts.c.id).where(schema.contacts.c.organization_id == other_org))))

    def with_domains() -> list[int]:
        with engine.connect() as conn:
            return organizations_with_contact_domains(writer.read_organization_domains(conn))

    assert other_org not in with_domains()
    instance = get_instance()
    assert run_discovery(instance).success
    run_sync(instance)
    assert other_org in with_domains(), "the sync created contacts with emails"
    with engine.connect() as conn:
        assert conn.execute(select(matches.status).where(matches.tenant_id == tenant.id)).scalar_one() == "suggested"
    matched = _matched_tenants(engine)
    assert other.id in matched
    quiet = run_sync(instance)
    assert _actions(engine, [r.run_id for r in quiet], "tenant_unchanged") == matched | {tenant.id}, \
        "contacts the sync created elsewhere do not plan the tenant without a match again"
    _add_contact(engine, other_org, "new.colleague@elsewhere-entirely.example")
    added = run_sync(instance)
    assert _actions(engine, [r.run_id for r in added], "tenant_unchanged") == (matched - {other.id}) | {tenant.id}, \
        "another organization's new contact plans only its own tenant again"
    _add_contact(engine, org_id, "pat@group-own-domain.example")
    conflicted = run_sync(instance)
    assert _actions(engine, [r.run_id for r in conflicted], "tenant_unchanged") == matched, \
        "the suggested organization's first own domain plans the tenant again"
    with engine.connect() as conn:
        weighed = conn.execute(select(schema.tenant_sync_state.c.weighed_organizations)
                               .where(schema.tenant_sync_state.c.tenant_id == tenant.id)).scalar_one()
        reasons = conn.execute(select(schema.tenant_suggestions.c.reasons)
                               .where(schema.tenant_suggestions.c.tenant_id == tenant.id,
                                      schema.tenant_suggestions.c.organization_id == org_id)).scalar_one()
    assert org_id in json.loads(weighed) and other_org not in json.loads(weighed)
    assert "domains conflict" in reasons and "its contacts use group-own-domain.example" in reasons
    instance.dispose()


def _add_contact(engine, organization_id: int, email: str) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from glue_pipeline.store import writer

    now = writer.utcnow()
    with engine.begin() as conn:
        contact_id = conn.execute(insert(schema.contacts).values(
            organization_id=organization_id, first_name="Pat", last_name="Lee", created_by="store",
            created_at=now, updated_at=now).returning(schema.contacts.c.id)).scalar_one()
        conn.execute(insert(schema.contact_emails).values(contact_id=contact_id, value=email,
                                                          label="Work", is_primary=True))


def _tenant_state(engine, tenant_id: str) -> dict:  # type: ignore[no-untyped-def]
    """What a tenant's sync leaves in the store: its contacts with their overlay, its configurations'
    primary contacts, held users and counts."""
    c, o, h, r = schema.contacts.c, schema.contact_microsoft.c, schema.held_users.c, schema.tenant_sync_state.c
    k, m = schema.configurations.c, schema.configuration_microsoft.c
    with engine.connect() as conn:
        contacts = conn.execute(select(c.id, c.first_name, c.last_name, c.title, o.user_id, o.status, o.licenses,
                                       o.mailbox_storage_used_bytes)
                                .join(schema.contact_microsoft, o.contact_id == c.id)
                                .where(o.tenant_id == tenant_id).order_by(c.id)).all()
        configurations = conn.execute(select(k.id, k.primary_contact_id, m.device_id, m.user_id)
                                      .join(schema.configuration_microsoft, m.configuration_id == k.id)
                                      .where(m.tenant_id == tenant_id).order_by(k.id)).all()
        held = conn.execute(select(h.user_id, h.reason, h.candidate_contact_ids).where(h.tenant_id == tenant_id)
                            .order_by(h.user_id)).all()
        result = conn.execute(select(r.status, r.users, r.contacts, r.held, r.skipped)
                              .where(r.tenant_id == tenant_id)).one()
    return {"contacts": contacts, "configurations": configurations, "held": held, "result": result}


def _published(instance, tenant_id: str, table: str):  # type: ignore[no-untyped-def]
    import pandas as pd

    metadata = _latest_metadata(instance, tenant_id)
    return metadata, pd.read_parquet(metadata[f"{table} file"].path).astype(str).reset_index(drop=True)


@pytest.mark.parametrize("who", ["users_without_devices", "device_owners", "users_of_a_tenant_held_back"])
def test_a_tenant_with_a_few_changed_users_plans_only_them_as_a_full_plan_would(
        first_sync, sandbox: Sandbox, small_world: World, who: str) -> None:
    """A delta that changes a few users plans those users (and the ambiguous ones) only; a full
    plan of the same data afterwards finds nothing to write and makes the same contact_matches
    and duplicate_risk (the carried likely duplicates keep their candidates).
    A device owner's change leaves its configuration's contact where it was (a linked user stays
    matched), so the device plan stands (device_plan.contacts_moved). A tenant without an
    organization holds its changed users back as its last plan held the others."""
    import shutil

    import pandas as pd

    from glue_pipeline.settings import cache_dir_from_env

    engine, instance = first_sync
    world = {t.id: t for t in sandbox.world.tenants}
    with engine.connect() as conn:
        held = dict(conn.execute(select(schema.held_users.c.tenant_id, func.count())
                                 .group_by(schema.held_users.c.tenant_id)).all())
    tenant_id = max(sorted(_matched_tenants(engine)), key=lambda t: held.get(t, 0))
    if who == "users_of_a_tenant_held_back":  # an analyst ignores the tenant: all its users are held back
        apply_decision(engine, "ignore", tenant_id)
        assert run_sync(instance, [tenant_id])[0].success
    owners = {d.userId for d in world[tenant_id].devices}
    _, before = _published(instance, tenant_id, "contact_matches")
    linked = set(before.loc[before["action"].isin(["match", "create"]), "user_id"])
    if who == "users_of_a_tenant_held_back":
        changed = set(sandbox.change_users(tenant_id, fraction=0.1, seed=9, among=set(before["user_id"]) - owners,
                                           fields=("jobTitle", "surname", "accountEnabled")))
    elif who == "device_owners":
        changed = set(sandbox.change_users(tenant_id, fraction=0.2, seed=9, among=linked & owners,
                                           fields=("accountEnabled", "jobTitle")))
    else:
        changed = set(sandbox.change_users(tenant_id, fraction=0.1, seed=9, among=linked - owners,
                                           fields=("jobTitle", "surname", "accountEnabled", "mobilePhone")))
    assert changed

    runs = run_sync(instance, [tenant_id])
    assert runs[0].success
    metadata, incremental = _published(instance, tenant_id, "contact_matches")
    ambiguous = set(before.loc[before["action"] == "ambiguous", "user_id"])
    assert metadata["users planned again"].value == len(changed | ambiguous), \
        "the changed users, and those whose hold may hang on them"
    assert all(f"{t} file" in metadata and f"{t} columns" in metadata for t in TENANT_TABLES), \
        "the tables left as they were are still described by the tenant's latest materialization"
    _, risk = _published(instance, tenant_id, "duplicate_risk")
    after_changes = _tenant_state(engine, tenant_id)
    if who == "users_of_a_tenant_held_back":
        assert set(incremental.loc[incremental["user_id"].isin(changed), "action"]) <= {"held", "skipped"}
        assert after_changes["result"].status == "held"
    else:
        assert summarize(engine, [runs[0].run_id]).updated >= 1
        assert set(incremental.loc[incremental["user_id"].isin(changed), "action"]) == {"match"}

    shutil.rmtree(cache_dir_from_env())  # the next sync reads every user and plans them all
    runs = run_sync(instance, [tenant_id])
    summary = summarize(engine, [runs[0].run_id])
    metadata, full = _published(instance, tenant_id, "contact_matches")
    assert "users planned again" not in metadata
    assert (summary.created, summary.updated) == (0, 0), "the changes-only plan wrote what a full one would"
    assert _tenant_state(engine, tenant_id) == after_changes
    pd.testing.assert_frame_equal(incremental, full)
    assert who == "users_of_a_tenant_held_back" or (before["matched_on"] == "duplicate_risk").any(), \
        "the tenant holds a likely duplicate"
    by_row = ["user_id", "contact_id"]
    pd.testing.assert_frame_equal(risk.sort_values(by_row, ignore_index=True),
                                  _published(instance, tenant_id, "duplicate_risk")[1].sort_values(by_row,
                                                                                                ignore_index=True))
