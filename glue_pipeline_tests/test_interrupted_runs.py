"""A sync killed with SIGKILL in the middle of writing a tenant loses nothing and duplicates
nothing: every tenant is in the store all or nothing, and the next run ends in the same store as
an uninterrupted run. On SQLite and on PostgreSQL.

`glue-pipeline sync` runs in a subprocess against the sandbox. To be sure the kill lands inside a
tenant's store transaction (and not between two), the store gets a test trigger that makes the
last statement of a tenant's transaction (its sync_results row) slow; the test kills the process
while that statement runs, after at least one tenant has committed. The trigger is dropped before
the next run. Nothing of the pipeline is replaced or mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from glue_pipeline.demo import sandbox_env, sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import discover_into, recorded_run, sync_context
from glue_pipeline_tests.served import clock_env
from glue_pipeline_tests.stores import canonical_store, matched_world

KILL_DEADLINE_S = 240  # generous: a slow machine still gets there; the test never measures time


def links_by_tenant(engine: Engine) -> dict[str, set[str]]:
    cm = schema.contact_microsoft
    out: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for tenant_id, user_id in conn.execute(select(cm.c.tenant_id, cm.c.user_id)):
            out.setdefault(tenant_id, set()).add(user_id)
    return out


# --------------------------------------------------------------------------- slow last statement


SQLITE_SLOW = [
    "CREATE TABLE glue_test_slow (n INTEGER)",
    "INSERT INTO glue_test_slow (n) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
    "WHERE x < 420) SELECT x FROM c",
    # A three-way cross join of 420 rows: a long statement, as a slow disk would make the commit.
    "CREATE TRIGGER glue_test_slow_result BEFORE INSERT ON sync_results WHEN NEW.status <> 'failed' "
    "BEGIN SELECT count(*) FROM glue_test_slow a, glue_test_slow b, glue_test_slow c; END",
]
SQLITE_FAST = ["DROP TRIGGER glue_test_slow_result", "DROP TABLE glue_test_slow"]
PG_SLOW = [
    "CREATE FUNCTION glue_test_slow() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_sleep(0.7); RETURN NEW; END $$",
    "CREATE TRIGGER glue_test_slow_result BEFORE INSERT ON sync_results FOR EACH ROW "
    "WHEN (NEW.status <> 'failed') EXECUTE FUNCTION glue_test_slow()",
]
PG_FAST = ["DROP TRIGGER glue_test_slow_result ON sync_results", "DROP FUNCTION glue_test_slow()"]


def _execute(engine: Engine, statements: list[str]) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def _committed_tenants(engine: Engine, sqlite_path: Path | None) -> int:
    """Tenants of the run committed so far. On SQLite read with a plain deferred transaction: the
    store's engine begins every transaction IMMEDIATE, which would wait for the writer."""
    if sqlite_path is not None:
        import sqlite3

        probe = sqlite3.connect(str(sqlite_path), timeout=5)
        try:
            return probe.execute("SELECT count(*) FROM sync_results WHERE status <> 'failed'").fetchone()[0]
        finally:
            probe.close()
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(schema.sync_results)
                            .where(schema.sync_results.c.status != "failed")).scalar_one()


def _writing_now(engine: Engine, sqlite_path: Path | None) -> bool:
    """Whether another process is inside a tenant's write transaction right now."""
    if sqlite_path is not None:
        import sqlite3

        probe = sqlite3.connect(str(sqlite_path), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as exc:
            return "locked" in str(exc)
        finally:
            probe.close()
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'active' "
            "AND query ILIKE 'INSERT INTO sync_results%'")).scalar_one())


def _end_orphaned_backends(engine: Engine) -> None:
    """The killed process's PostgreSQL connections end once the server notices; end them now.
    (Autocommit: pg_stat_activity is a snapshot taken once per transaction.)"""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        for _ in range(200):
            left = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND pid <> pg_backend_pid()")).scalar_one()
            if not left:
                return
            time.sleep(0.05)
        rows = conn.execute(text("SELECT pid, backend_type, state, query FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()
    raise AssertionError(f"the killed process's PostgreSQL connections did not end: {rows}")


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def kill_world() -> World:
    return matched_world(seed=33, tenants=6, users=260)


def _reference(world: World, sandbox: Sandbox, path: Path) -> dict:
    """A clean, uninterrupted sync of the same world into a fresh store, its clock at the world's
    reference date as the runs' (GLUE_CLOCK)."""
    engine = make_engine(f"sqlite:///{path}")
    seed_store(engine, world.store)
    client = GraphClient(sandbox_settings(sandbox, world))
    tenant_ids = discover_into(engine, client)
    run_id = f"reference-{uuid.uuid4().hex[:8]}"
    ctx = sync_context(client, engine, run_id, SyncOptions(), clock=lambda: world.reference_date)
    outcomes = recorded_run(ctx, tenant_ids, 4)
    assert {o.status for o in outcomes} == {"synced"}
    with engine.connect() as conn:
        created = conn.execute(select(func.count()).select_from(schema.contacts)
                               .where(schema.contacts.c.created_by == "microsoft")).scalar_one()
    return {"snapshot": canonical_store(engine), "links": links_by_tenant(engine), "created": created}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_mid_write_leaves_tenants_all_or_nothing_and_the_next_run_converges(
        backend: str, kill_world: World, sandbox_state: Path, tmp_path: Path,
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    world = kill_world.model_copy(deep=True)
    if backend == "postgres":
        store_url, sqlite_path = request.getfixturevalue("pg_database"), None
    else:
        sqlite_path = tmp_path / "store.db"
        store_url = f"sqlite:///{sqlite_path}"
    engine = make_engine(store_url)
    seed_store(engine, world.store)
    seeded_contacts = len(world.store.contacts)
    _execute(engine, PG_SLOW if backend == "postgres" else SQLITE_SLOW)
    config = tmp_path / "glue.yaml"
    config.write_text("sync: {}\n")

    with Sandbox(SandboxConfig(world=world, latency_ms=5), state_dir=sandbox_state) as sandbox:
        reference = _reference(world, sandbox, tmp_path / "reference.db")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("GLUE_", "DAGSTER_"))},
               **sandbox_env(sandbox, world), "GLUE_STORE_URL": store_url,
               "GLUE_DATA_DIR": str(tmp_path / "tables"), "GLUE_VAR_DIR": str(tmp_path / "var"),
               "GLUE_CONFIG": str(config), "GLUE_GRAPH_CONCURRENCY": "1",
               "DAGSTER_HOME": str(tmp_path / "dagster_home"), **clock_env(world)}
        cli = Path(sys.executable).with_name("glue-pipeline")
        command = [str(cli), "sync"] if cli.exists() else [sys.executable, "-m", "glue_pipeline.cli", "sync"]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + KILL_DEADLINE_S
            while proc.poll() is None and time.monotonic() < deadline:
                if _committed_tenants(engine, sqlite_path) >= 1 and _writing_now(engine, sqlite_path):
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.005)
        finally:
            if proc.poll() is None and time.monotonic() >= deadline:
                proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
        assert proc.returncode == -signal.SIGKILL, f"the sync was to be killed mid-write:\n{output}"
        if backend == "postgres":
            _end_orphaned_backends(engine)
        _execute(engine, PG_FAST if backend == "postgres" else SQLITE_FAST)

        # All or nothing: a tenant with a result row of the killed run is fully written; any
        # other tenant has nothing but what discovery recorded.
        with engine.connect() as conn:
            run_id, status = conn.execute(select(schema.sync_runs.c.run_id, schema.sync_runs.c.status)).one()
            results = {r.tenant_id: r for r in conn.execute(
                select(schema.sync_results).where(schema.sync_results.c.run_id == run_id))}
            created_contacts = conn.execute(select(func.count()).select_from(schema.contacts)).scalar_one()
            orphans = conn.execute(
                select(func.count()).select_from(schema.contacts)
                .outerjoin(schema.contact_microsoft, schema.contact_microsoft.c.contact_id == schema.contacts.c.id)
                .where(schema.contacts.c.created_by == "microsoft", schema.contact_microsoft.c.contact_id.is_(None))
            ).scalar_one()
            licensed = set(conn.execute(select(schema.licenses.c.tenant_id)).scalars())
            matched = set(conn.execute(select(schema.tenant_matches.c.tenant_id)).scalars())
        assert status == "running", "the killed run never finished"
        done = {t for t, r in results.items() if r.status == "synced"}
        assert 1 <= len(done) < len(world.tenants), "killed after some tenants and before the last"
        links = links_by_tenant(engine)
        for tenant in world.tenants:
            if tenant.id in done:
                assert links.get(tenant.id, set()) == reference["links"][tenant.id], tenant.display_name
            else:
                assert tenant.id not in links, f"{tenant.display_name} was written in part"
                assert tenant.id not in licensed and tenant.id not in matched
        assert orphans == 0, "every created contact carries its Microsoft link"
        assert created_contacts == seeded_contacts + sum(r.created for r in results.values())

        # The next run converges to the uninterrupted run's store.
        for key, value in env.items():
            if key.startswith(("GLUE_", "DAGSTER_")):
                monkeypatch.setenv(key, value)
        monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
        instance = get_instance()
        try:
            assert run_discovery(instance).success
            [rerun] = run_sync(instance)
        finally:
            instance.dispose()
        assert rerun.success, rerun.error
    assert canonical_store(engine) == reference["snapshot"]
    with engine.connect() as conn:
        created_again = conn.execute(select(func.sum(schema.sync_results.c.created))
                                     .where(schema.sync_results.c.run_id == rerun.run_id)).scalar_one()
    assert sum(r.created for r in results.values()) + created_again == reference["created"], \
        "each contact was created exactly once across the killed run and the next one"
    engine.dispose()
