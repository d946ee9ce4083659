"""Two syncs of the same tenants at the same time cannot both write: the per-tenant lock (an
advisory lock on PostgreSQL, SQLite's single writer) makes the second wait and find the first's
contacts. On SQLite and on PostgreSQL, with two processes running `run_sync` through Dagster and
with two threads running the per-tenant sync, started together behind a barrier.

Also here: what else may run at the same time - two discoveries of a new partner account, and
two in-process syncs saving the same tenant's cache entry.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from glue_pipeline.cache import CachedTable, TenantCache
from glue_pipeline.demo import sandbox_env, sandbox_settings
from glue_pipeline.extract import discover_tenants
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema, writer
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import TenantOutcome, discover_into, recorded_run, sync_context
from glue_pipeline_tests.stores import canonical_store, matched_world

BARRIER_DEADLINE_S = 240  # how long to wait for the processes to get ready (never asserted on)


def client_for(sandbox: Sandbox, world: World) -> GraphClient:
    return GraphClient(sandbox_settings(sandbox, world, concurrency=2))


def discover(engine: Engine, client: GraphClient) -> list[str]:
    return discover_into(engine, client)


def sync_batch(engine: Engine, client: GraphClient, tenant_ids: list[str]) -> tuple[str, list[TenantOutcome]]:
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    ctx = sync_context(client, engine, run_id, SyncOptions())
    return run_id, recorded_run(ctx, tenant_ids, 2)


def created_by_run(engine: Engine, run_ids: list[str]) -> dict[str, dict[str, int]]:
    """run id -> tenant id -> contacts created."""
    results = schema.sync_results
    out: dict[str, dict[str, int]] = {r: {} for r in run_ids}
    with engine.connect() as conn:
        for row in conn.execute(select(results.c.run_id, results.c.tenant_id, results.c.status, results.c.created)
                                .where(results.c.run_id.in_(run_ids))):
            assert row.status == "synced", f"tenant {row.tenant_id} in run {row.run_id}: {row.status}"
            out[row.run_id][row.tenant_id] = row.created
    return out


def assert_written_once(engine: Engine, reference: dict, run_ids: list[str]) -> None:
    """Both runs finished every tenant; per tenant one run created the contacts and the other
    none; the store is exactly the single clean run's."""
    created = created_by_run(engine, run_ids)
    assert all(len(c) == len(reference["created"]) for c in created.values()), "both runs did every tenant"
    for tenant_id, expected in reference["created"].items():
        per_run = sorted(created[r][tenant_id] for r in run_ids)
        assert per_run == [0, expected], f"tenant {tenant_id}: contacts created per run {per_run}"
    cm = schema.contact_microsoft
    with engine.connect() as conn:
        twice = conn.execute(select(cm.c.tenant_id, cm.c.user_id).group_by(cm.c.tenant_id, cm.c.user_id)
                             .having(func.count() > 1)).all()
        created_total = conn.execute(select(func.count()).select_from(schema.contacts)
                                     .where(schema.contacts.c.created_by == "microsoft")).scalar_one()
    assert not twice, "no Microsoft user is linked twice"
    assert created_total == sum(reference["created"].values())
    assert canonical_store(engine) == reference["snapshot"]


@pytest.fixture(scope="module")
def race_world() -> World:
    return matched_world(seed=44, tenants=5, users=200)


@pytest.fixture(scope="module")
def reference(race_world: World, sandbox_state: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One clean sync of the race world into a fresh store."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('reference') / 'store.db'}")
    seed_store(engine, race_world.store)
    with Sandbox(SandboxConfig(world=race_world.model_copy(deep=True)), state_dir=sandbox_state) as sandbox:
        client = client_for(sandbox, race_world)
        run_id, outcomes = sync_batch(engine, client, discover(engine, client))
    assert {o.status for o in outcomes} == {"synced"}
    return {"snapshot": canonical_store(engine), "created": {o.tenant_id: o.counts.created for o in outcomes}}


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_database")
    return f"sqlite:///{tmp_path / 'store.db'}"


RUN_SYNC = textwrap.dedent("""
    import pathlib, sys, time
    ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    from glue_pipeline.runner import get_instance, run_discovery, run_sync
    instance = get_instance()
    assert run_discovery(instance).success
    ready.write_text("ready")
    while not go.exists():
        time.sleep(0.005)
    [run] = run_sync(instance)
    print("RUN", run.run_id, run.success, run.error)
""")


def test_two_processes_syncing_the_same_tenants_at_once_write_each_contact_once(
        store_url: str, race_world: World, reference: dict, sandbox_state: Path, tmp_path: Path) -> None:
    world = race_world.model_copy(deep=True)
    engine = make_engine(store_url)
    seed_store(engine, world.store)
    config = tmp_path / "glue.yaml"
    config.write_text("sync: {}\n")
    go = tmp_path / "go"
    with Sandbox(SandboxConfig(world=world, latency_ms=10), state_dir=sandbox_state) as sandbox:
        discover(engine, client_for(sandbox, world))  # the tenants are known: the race is the sync
        base = {**{k: v for k, v in os.environ.items() if not k.startswith(("GLUE_", "DAGSTER_"))},
                **sandbox_env(sandbox, world), "GLUE_STORE_URL": store_url, "GLUE_CONFIG": str(config),
                "GLUE_VAR_DIR": str(tmp_path / "var"), "GLUE_GRAPH_CONCURRENCY": "2",
                "GLUE_CLOCK": os.environ["GLUE_CLOCK"]}  # the session's, as the reference sync's
        procs = []
        for name in ("a", "b"):
            env = {**base, "DAGSTER_HOME": str(tmp_path / f"dagster_{name}"),
                   "GLUE_DATA_DIR": str(tmp_path / f"tables_{name}")}
            procs.append(subprocess.Popen([sys.executable, "-c", RUN_SYNC, str(tmp_path / f"ready_{name}"), str(go)],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        try:
            deadline = time.monotonic() + BARRIER_DEADLINE_S
            while not all((tmp_path / f"ready_{n}").exists() for n in "ab"):
                assert all(p.poll() is None for p in procs), "a process ended before the barrier"
                assert time.monotonic() < deadline, "the processes never got ready"
                time.sleep(0.01)
            go.write_text("go")
            outputs = [p.communicate(timeout=BARRIER_DEADLINE_S)[0].decode(errors="replace") for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    runs = [line.split() for out in outputs for line in out.splitlines() if line.startswith("RUN ")]
    assert [r[2] for r in runs] == ["True", "True"], outputs
    assert_written_once(engine, reference, [r[1] for r in runs])
    engine.dispose()


def test_two_threads_syncing_the_same_tenants_at_once_write_each_contact_once(
        store_url: str, race_world: World, reference: dict, sandbox_state: Path) -> None:
    world = race_world.model_copy(deep=True)
    engine = make_engine(store_url)
    seed_store(engine, world.store)
    with Sandbox(SandboxConfig(world=world, latency_ms=5), state_dir=sandbox_state) as sandbox:
        tenant_ids = discover(engine, client_for(sandbox, world))
        barrier = threading.Barrier(2)
        runs: list[str] = []
        errors: list[BaseException] = []

        def run() -> None:
            own_engine = make_engine(store_url)  # each run has its own pool, as two runs would
            try:
                client = client_for(sandbox, world)
                barrier.wait()
                run_id, _outcomes = sync_batch(own_engine, client, tenant_ids)
                runs.append(run_id)
            except BaseException as exc:
                errors.append(exc)
            finally:
                own_engine.dispose()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert_written_once(engine, reference, runs)
    engine.dispose()


def test_two_discoveries_of_a_new_partner_account_at_once_both_succeed(
        store_url: str, race_world: World, sandbox_state: Path) -> None:
    """The hourly schedule and an operator's `glue-pipeline sync` may discover at the same
    moment, e.g. on the first day; both record the same new tenants (as the customer_tenants
    asset does: one transaction around writer.record_discovered_tenants)."""
    engine = make_engine(store_url)
    upgrade_store(engine)
    with Sandbox(SandboxConfig(world=race_world.model_copy(deep=True)), state_dir=sandbox_state) as sandbox:
        frame = discover_tenants(client_for(sandbox, race_world))
    errors: list[str] = []
    expected: list[str] = []
    for _round in range(5):  # five new partner accounts, each discovered twice at once
        batch = frame.assign(tenant_id=[str(uuid.uuid4()) for _ in range(len(frame))])
        expected += list(batch["tenant_id"])
        barrier = threading.Barrier(2)

        def record(batch: pd.DataFrame = batch, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                with engine.begin() as conn:
                    writer.record_discovered_tenants(conn, batch, writer.utcnow())
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

        threads = [threading.Thread(target=record) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with engine.connect() as conn:
        known = conn.execute(select(schema.tenants.c.tenant_id)).scalars().all()
    assert sorted(known) == sorted(expected), "each tenant recorded once"
    assert not errors, f"{len(errors)} of 10 discoveries failed, e.g. {errors[0]}"
    engine.dispose()


def test_saving_one_tenants_cache_entry_from_several_threads_at_once(tmp_path: Path) -> None:
    """Two in-process runs (e.g. Dagster runs in one process) finishing the same tenant save the
    same cache entry at once; no save may fail (a failure after the store committed would mark a
    written tenant failed), and the entry stays readable."""
    cache = TenantCache(tmp_path / "cache")
    frame = pd.DataFrame({"id": [str(i) for i in range(2000)], "displayName": ["x" * 40] * 2000})
    errors: list[str] = []
    barrier = threading.Barrier(4)

    def save() -> None:
        barrier.wait()
        for _ in range(15):
            try:
                cache.save("users", "tenant-a", CachedTable(frame, {"delta_link": "https://example/delta"}))
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=save) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = cache.load("users", "tenant-a")
    assert loaded is not None and len(loaded.frame) == 2000
    assert not errors, f"{len(errors)} of 60 saves failed, e.g. {errors[0]}"
