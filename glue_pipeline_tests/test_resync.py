"""Incremental re-syncs: Graph delta queries on top of the last snapshot, the mailbox report
fetched once a day, and a full read when the delta link has expired."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from glue_pipeline.report import summarize
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.server import Sandbox
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.schema import make_engine
from glue_pipeline.store.seed import seed_store


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
    assert summary.failed == 1, "only the revoked tenant fails"
    assert (summary.created, summary.updated) == (0, 0)
