"""Worker processes: a batch spread over processes writes the store that threads write; a worker
killed in the middle loses only its tenants, which the retry pass takes again; a worker that
cannot start fails the tenants with its cause."""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from glue_pipeline import workers
from glue_pipeline.demo import sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import TenantOutcome, discover_into, finish_run, start_run
from glue_pipeline.workers import SyncSpec, sync_batch
from glue_pipeline_tests.stores import canonical_store, matched_world


@pytest.fixture(scope="module")
def world() -> World:
    return matched_world(seed=23, tenants=10, users=500)


@pytest.fixture
def served(world: World, tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(world=world.model_copy(deep=True)), state_dir=tmp_path / "sandbox") as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def small_batches_use_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handful of tenants is enough to start the worker processes here."""
    monkeypatch.setattr(workers, "MIN_TENANTS_PER_PROCESS", 1)


def fresh_store(tmp_path: Path, world: World, client: GraphClient) -> tuple[Engine, list[str]]:
    engine = make_engine(f"sqlite:///{tmp_path / f'store-{uuid.uuid4().hex[:6]}.db'}")
    seed_store(engine, world.store)
    return engine, discover_into(engine, client)


def spec_for(sandbox: Sandbox, world: World, engine: Engine, tmp_path: Path, store_url: str | None = None) -> SyncSpec:
    return SyncSpec(sandbox_settings(sandbox, world, concurrency=4), {}, store_url or str(engine.url),
                    f"workers-{uuid.uuid4().hex[:8]}", SyncOptions(), tmp_path / "cache", tmp_path / "tables")


def run_batch(spec: SyncSpec, engine: Engine, tenant_ids: list[str], processes: int,
              on_done=None) -> list[TenantOutcome]:  # type: ignore[no-untyped-def]
    start_run(engine, spec.run_id, len(tenant_ids))
    outcomes = sync_batch(spec, tenant_ids, processes, on_done, engine)
    finish_run(engine, spec.run_id, outcomes)
    return outcomes


def worker_processes() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("glue-sync-worker")]


def test_processes_write_the_store_threads_write(served: Sandbox, world: World, tmp_path: Path) -> None:
    client = GraphClient(sandbox_settings(served, world, concurrency=4))
    threaded, tenant_ids = fresh_store(tmp_path, world, client)
    spread, _ = fresh_store(tmp_path, world, client)
    assert all(o.status == "synced" for o in run_batch(spec_for(served, world, threaded, tmp_path / "t"),
                                                        threaded, tenant_ids, processes=1))
    seen_workers: set[int] = set()

    def note_workers(outcome: TenantOutcome, done: int, total: int) -> None:
        seen_workers.update(p.pid for p in worker_processes())

    outcomes = run_batch(spec_for(served, world, spread, tmp_path / "p"), spread, tenant_ids, processes=2,
                         on_done=note_workers)
    assert len(seen_workers) == 2, "two worker processes did the work"
    assert all(o.status == "synced" for o in outcomes)
    assert all(o.report["contact_matches"]["path"] for o in outcomes), "tables written by the workers"
    assert canonical_store(spread) == canonical_store(threaded)


def test_a_killed_worker_loses_only_its_tenants_and_the_retry_pass_takes_them(
        served: Sandbox, world: World, tmp_path: Path) -> None:
    client = GraphClient(sandbox_settings(served, world, concurrency=4))
    reference, tenant_ids = fresh_store(tmp_path, world, client)
    run_batch(spec_for(served, world, reference, tmp_path / "r"), reference, tenant_ids, processes=1)
    engine, _ = fresh_store(tmp_path, world, client)
    served.faults.latency_ms = 100  # keep tenants in flight when the worker is killed
    killed: list[int] = []

    def kill_one_worker(outcome: TenantOutcome, done: int, total: int) -> None:
        if not killed:
            victim = worker_processes()[0]
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    outcomes = run_batch(spec_for(served, world, engine, tmp_path / "k"), engine, tenant_ids, processes=2,
                         on_done=kill_one_worker)
    served.faults.latency_ms = 0
    assert killed
    assert [o.tenant_id for o in outcomes if o.status == "failed"] == []
    with engine.connect() as conn:
        lost = conn.execute(select(schema.sync_log.c.message).where(
            schema.sync_log.c.action == "tenant_failed")).scalars().all()
    assert lost and all("worker process" in m and f"-{signal.SIGKILL}" in m for m in lost), \
        "the tenants in flight on the killed worker were recorded as failed, then retried"
    assert canonical_store(engine) == canonical_store(reference), "converged: nothing lost, nothing twice"


def test_a_worker_that_cannot_start_fails_the_tenants_with_its_cause(served: Sandbox, world: World,
                                                                     tmp_path: Path) -> None:
    client = GraphClient(sandbox_settings(served, world, concurrency=4))
    engine, tenant_ids = fresh_store(tmp_path, world, client)
    missing = f"postgresql+psycopg2://postgres@127.0.0.1:5432/glue_missing_{uuid.uuid4().hex[:8]}"
    spec = spec_for(served, world, engine, tmp_path, store_url=missing)
    outcomes = sync_batch(spec, tenant_ids, 2)
    assert {o.status for o in outcomes} == {"failed"}
    assert all("a worker process could not start" in (o.error or "") and "does not exist" in (o.error or "")
               for o in outcomes), outcomes[0].error
