"""Properties of the sync over random small worlds and random fault schedules (hypothesis).

For any world (generate_world with a random seed and size: matched, unmatched and held tenants,
likely duplicates, guests, ...) and any schedule of faulty runs (429 / 5xx / dropped connections
at random rates, revoked consent for random tenants, and tenants whose store transaction is
interrupted before it commits), running the sync any number of times:

- never deletes a contact;
- never writes a contact into an organization other than the one its tenant is matched to;
- never writes a user that is held (tenant not matched, or the user held for an analyst);
- leaves every tenant all or nothing (no created contact without its Microsoft link);
- and, once the faults are gone, ends in exactly the store of one clean run.

The interruption is real: a test trigger in the SQLite store aborts the chosen tenants' last
statement (their sync_results row), so their transaction is rolled back after every contact
write, as if the process had died there; the trigger is dropped before the clean run.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import and_, select

from glue_pipeline.demo import sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import TenantOutcome, discover_into, recorded_run, sync_context
from glue_pipeline_tests.stores import canonical_store


class Store:
    """A seeded SQLite store synced from the sandbox, run after run."""

    def __init__(self, sandbox: Sandbox, world: World, path: Path) -> None:
        self.sandbox, self.world = sandbox, world
        self.engine = make_engine(f"sqlite:///{path}")
        seed_store(self.engine, world.store)
        self.tenant_ids = discover_into(self.engine, self.client())

    def client(self) -> GraphClient:
        settings = sandbox_settings(self.sandbox, self.world, max_retries=2, max_retry_wait_s=0.01,
                                    timeout_s=10.0)
        return GraphClient(settings, backoff_base_s=0.001)

    def sync(self) -> dict[str, TenantOutcome]:
        run_id = f"prop-{uuid.uuid4().hex[:12]}"
        ctx = sync_context(self.client(), self.engine, run_id, SyncOptions())
        return {o.tenant_id: o for o in recorded_run(ctx, self.tenant_ids, 2)}

    def interrupt(self, tenant_ids: set[str]) -> None:
        """The chosen tenants' store transactions fail at their last statement."""
        with self.engine.begin() as conn:
            for index, tenant_id in enumerate(sorted(tenant_ids)):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER glue_test_interrupt_{index} BEFORE INSERT ON sync_results "
                    f"WHEN NEW.tenant_id = '{tenant_id}' AND NEW.status <> 'failed' "
                    "BEGIN SELECT RAISE(ABORT, 'interrupted by the test'); END")

    def resume(self) -> None:
        with self.engine.begin() as conn:
            names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                         "AND name LIKE 'glue_test_interrupt_%'").scalars().all()
            for name in names:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")

    def contact_ids(self) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(schema.contacts.c.id)).scalars())

    def check_invariants(self, contacts_before: set[int]) -> set[int]:
        contacts, cm, matches, held = (schema.contacts, schema.contact_microsoft, schema.tenant_matches,
                                       schema.held_users)
        with self.engine.connect() as conn:
            now = set(conn.execute(select(contacts.c.id)).scalars())
            misplaced = conn.execute(
                select(cm.c.contact_id, cm.c.tenant_id, contacts.c.organization_id, matches.c.organization_id,
                       matches.c.status)
                .join(contacts, contacts.c.id == cm.c.contact_id)
                .join(matches, matches.c.tenant_id == cm.c.tenant_id, isouter=True)
                .where((matches.c.organization_id.is_(None)) | (matches.c.organization_id != contacts.c.organization_id)
                       | (matches.c.status != "matched"))).all()
            written_held = conn.execute(
                select(held.c.tenant_id, held.c.user_id)
                .join(cm, and_(cm.c.tenant_id == held.c.tenant_id, cm.c.user_id == held.c.user_id))).all()
            orphans = conn.execute(
                select(contacts.c.id).outerjoin(cm, cm.c.contact_id == contacts.c.id)
                .where(contacts.c.created_by == "microsoft", cm.c.contact_id.is_(None))).all()
        assert contacts_before <= now, f"contacts deleted: {sorted(contacts_before - now)[:5]}"
        assert not misplaced, f"contacts outside their tenant's organization: {misplaced[:3]}"
        assert not written_held, f"held users written: {written_held[:3]}"
        assert not orphans, f"contacts created without their link (a tenant written in part): {orphans[:3]}"
        return now


@pytest.fixture(scope="module")
def sandbox(sandbox_state: Path) -> Iterator[Sandbox]:
    """One sandbox for every example; each example serves its own world (set_world)."""
    with Sandbox(SandboxConfig(world=generate_world(seed=1, tenants=2, users=10, revoked=0)),
                 state_dir=sandbox_state) as server:
        yield server


faulty_run = st.fixed_dictionaries({
    "rate_429": st.sampled_from([0.0, 0.1, 0.3]),
    "rate_5xx": st.sampled_from([0.0, 0.1, 0.3]),
    "reset_rate": st.sampled_from([0.0, 0.1, 0.2]),
    "revoked": st.sets(st.integers(0, 3), max_size=2),  # tenant positions (modulo the tenants)
    "interrupted": st.sets(st.integers(0, 3), max_size=2),
})


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# A tenant with two look-alike users: one created, the other held as a likely duplicate of a
# documented contact; a second sync must not add the first one's new contact to its candidates.
@example(seed=10233, tenants=4, users_per_tenant=8, revoked=0, clean_runs=1, schedule=[
    {"rate_429": 0.0, "rate_5xx": 0.0, "reset_rate": 0.0, "revoked": set(), "interrupted": set()}])
@given(seed=st.integers(0, 100_000), tenants=st.integers(2, 4), users_per_tenant=st.integers(4, 25),
       revoked=st.integers(0, 1), schedule=st.lists(faulty_run, min_size=1, max_size=3),
       clean_runs=st.integers(1, 2))
def test_faulty_and_interrupted_runs_converge_to_one_clean_run(
        sandbox: Sandbox, seed: int, tenants: int, users_per_tenant: int, revoked: int,
        schedule: list[dict], clean_runs: int) -> None:
    world = generate_world(seed=seed, tenants=tenants, users=tenants * users_per_tenant, revoked=revoked)
    sandbox.set_world(world)
    faults = sandbox.faults
    faults.clear()
    with tempfile.TemporaryDirectory(prefix="glue-prop-") as folder:
        reference = Store(sandbox, world, Path(folder) / "reference.db")
        reference.sync()
        expected = canonical_store(reference.engine)
        reference.engine.dispose()

        store = Store(sandbox, world, Path(folder) / "store.db")
        ids = store.tenant_ids
        contacts = store.contact_ids()
        for run in schedule:
            faults.rate_429, faults.rate_5xx, faults.reset_rate = run["rate_429"], run["rate_5xx"], run["reset_rate"]
            faults.revoked = {ids[i % len(ids)] for i in run["revoked"]}
            interrupted = {ids[i % len(ids)] for i in run["interrupted"]}
            store.interrupt(interrupted)
            outcomes = store.sync()
            store.resume()
            for tenant_id in interrupted | faults.revoked:
                assert outcomes[tenant_id].status == "failed", "an interrupted or revoked tenant fails"
            contacts = store.check_invariants(contacts)

        faults.clear()
        for _ in range(clean_runs):
            outcomes = store.sync()
            contacts = store.check_invariants(contacts)
        world_revoked = {t.id for t in world.tenants if t.consent == "revoked"}
        assert {t for t, o in outcomes.items() if o.status == "failed"} == world_revoked
        assert canonical_store(store.engine) == expected
        store.engine.dispose()
