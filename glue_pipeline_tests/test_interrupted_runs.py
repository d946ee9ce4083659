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

from glue_pipeline.demo import sandbox_env
from glue_pipeline.extract import discover_tenants
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.matching.organizations import normalize_name
from glue_pipeline.options import SyncOptions
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import StoreOrganization, World
from glue_pipeline.settings import GraphSettings, Secret
from glue_pipeline.store import schema, writer
from glue_pipeline.store.schema import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import finish_run, start_run, sync_context, sync_tenants

KILL_DEADLINE_S = 240  # generous: a slow machine still gets there; the test never measures time


def matched_world(seed: int, tenants: int, users: int) -> World:
    """Every tenant has exactly one organization of its name, so every tenant writes contacts."""
    world = generate_world(seed=seed, tenants=tenants, users=users, revoked=0)
    names = [normalize_name(o.name) for o in world.store.organizations]
    next_id = max((o.id for o in world.store.organizations), default=0) + 1
    for tenant in world.tenants:
        if names.count(normalize_name(tenant.display_name)) > 1:
            tenant.display_name = f"{tenant.display_name} ({tenant.id[:8]})"
        if normalize_name(tenant.display_name) not in names:
            world.store.organizations.append(StoreOrganization(id=next_id, name=tenant.display_name))
            names.append(normalize_name(tenant.display_name))
            next_id += 1
    return world


VOLATILE = {"created_at", "updated_at", "first_seen_at", "last_seen_at", "changed_at", "decided_at"}
BOOKKEEPING = {"sync_log", "sync_runs", "sync_results"}


def canonical_store(engine: Engine) -> dict[str, list[tuple]]:
    """The documentation tables without timestamps and bookkeeping, contact ids replaced by what
    identifies a contact in any store (seeded id, or tenant and Microsoft user id)."""
    cm = schema.contact_microsoft
    with engine.connect() as conn:
        links = {r.contact_id: ("microsoft", r.tenant_id, r.user_id)
                 for r in conn.execute(select(cm.c.contact_id, cm.c.tenant_id, cm.c.user_id))}
        keys = {r.id: (("store", r.id) if r.created_by == "store" else links.get(r.id, ("orphan", r.id)))
                for r in conn.execute(select(schema.contacts.c.id, schema.contacts.c.created_by))}

        def key(contact_id: object) -> object:
            return None if contact_id is None else keys.get(int(contact_id), ("unknown", contact_id))

        snapshot: dict[str, list[tuple]] = {}
        for table in schema.metadata.sorted_tables:
            if table.name in BOOKKEEPING:
                continue
            rows = []
            for row in conn.execute(select(table)):
                values = {k: v for k, v in row._mapping.items() if k not in VOLATILE}
                if table.name in ("contact_emails", "contact_phones", "match_decisions"):
                    values.pop("id")
                if table.name == "contacts":
                    values["id"] = key(values["id"])
                if "contact_id" in values:
                    values["contact_id"] = key(values["contact_id"])
                if values.get("candidate_contact_ids"):
                    values["candidate_contact_ids"] = sorted(
                        str(key(c.strip())) for c in str(values["candidate_contact_ids"]).split(","))
                if "vanished_at" in values:
                    values["vanished_at"] = values["vanished_at"] is not None
                rows.append(tuple(sorted((k, str(v)) for k, v in values.items())))
            snapshot[table.name] = sorted(rows)
    return snapshot


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
    """A clean, uninterrupted sync of the same world into a fresh store."""
    engine = make_engine(f"sqlite:///{path}")
    seed_store(engine, world.store)
    client = GraphClient(GraphSettings(
        partner_tenant_id=world.partner.tenant_id, client_id=world.app.client_id,
        client_secret=Secret(world.app.client_secret), authority_host=sandbox.authority_host,
        graph_url=sandbox.graph_url, ca_file=str(sandbox.ca_file)))
    frame = discover_tenants(client)
    with engine.begin() as conn:
        writer.record_discovered_tenants(conn, frame, writer.utcnow())
    run_id = f"reference-{uuid.uuid4().hex[:8]}"
    ctx = sync_context(client, engine, run_id, SyncOptions())
    start_run(engine, run_id, len(frame))
    outcomes = sync_tenants(ctx, list(frame["tenant_id"]), 4)
    finish_run(engine, run_id, outcomes)
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
               "DAGSTER_HOME": str(tmp_path / "dagster_home")}
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
