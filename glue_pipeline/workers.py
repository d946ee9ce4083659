"""A batch of tenants spread over worker processes, so a large sync uses every core.

Matching and writing a tenant is CPU-bound Python, and threads share one interpreter lock, so
one process carries at most one core of it. A run therefore starts a few worker processes
(GLUE_SYNC_PROCESSES) that take tenants from one queue, each with its share of the Graph
concurrency as threads, and send each tenant's outcome back as soon as it is done. The run's
own process only reports outcomes to Dagster. Small batches, and steps that already run inside
a daemonic process (a Celery prefork worker), stay in threads of the current process.

A worker that dies loses only the tenants it was working on: they come back as failed with a
transient error, so the retry pass takes them again. A worker whose parent has died stops
before its next tenant.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Engine

from glue_pipeline.cache import TenantCache
from glue_pipeline.graph.client import DiscoveryCache, GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.settings import GraphSettings, Secret
from glue_pipeline.store.schema import make_engine
from glue_pipeline.sync import (
    OnDone,
    SyncContext,
    TenantOutcome,
    sync_context,
    sync_tenant,
    thread_pass,
    with_retries,
)

MIN_TENANTS_PER_PROCESS = 25  # below this, starting a process costs more than it saves
POLL_S = 1.0


@dataclass(frozen=True)
class SyncSpec:
    """What a process needs to build its own sync context (pickled to worker processes)."""

    graph: GraphSettings
    direct_credentials: dict[str, tuple[str, Secret, str]]
    store_url: str
    run_id: str
    options: SyncOptions
    cache_dir: Path | None
    tables_dir: Path | None

    def context(self, concurrency: int | None = None, engine: Engine | None = None) -> SyncContext:
        graph = replace(self.graph, concurrency=concurrency or self.graph.concurrency)
        discovery = DiscoveryCache(self.cache_dir / "openid") if self.cache_dir else None
        client = GraphClient(graph, direct_credentials=self.direct_credentials, discovery_cache=discovery)
        cache = TenantCache(self.cache_dir) if self.cache_dir else None
        return sync_context(client, engine or make_engine(self.store_url), self.run_id, self.options,
                            cache, self.tables_dir)


def processes_for(tenants: int, processes: int, concurrency: int) -> int:
    """How many worker processes a batch gets (1 = threads in this process)."""
    if multiprocessing.current_process().daemon:  # daemonic processes may not have children
        return 1
    return max(1, min(processes, concurrency, tenants // MIN_TENANTS_PER_PROCESS))


def sync_batch(spec: SyncSpec, tenant_ids: list[str], processes: int,
               on_done: OnDone | None = None, engine: Engine | None = None) -> list[TenantOutcome]:
    """Sync the tenants over up to `processes` worker processes (with retries of transient
    failures); `engine` serves the in-process case."""
    concurrency = spec.graph.concurrency
    if processes_for(len(tenant_ids), processes, concurrency) <= 1:
        ctx = spec.context(engine=engine)
        return with_retries(lambda ids, report: thread_pass(ctx, ids, concurrency, report), tenant_ids, on_done)
    return with_retries(lambda ids, report: process_pass(spec, ids, processes, report), tenant_ids, on_done)


def _shares(total: int, parts: int) -> list[int]:
    """`total` threads split over `parts` processes as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def process_pass(spec: SyncSpec, tenant_ids: list[str], processes: int,
                 on_done: OnDone | None) -> list[TenantOutcome]:
    shares = _shares(spec.graph.concurrency, processes_for(len(tenant_ids), processes, spec.graph.concurrency))
    mp = multiprocessing.get_context("spawn")
    tasks, results = mp.Queue(), mp.Queue()
    for tenant_id in tenant_ids:
        tasks.put(tenant_id)
    for _ in range(sum(shares)):
        tasks.put(None)  # one stop sign per thread, after every tenant
    workers = [mp.Process(target=_worker_main, args=(spec, threads, tasks, results), daemon=True,
                          name=f"glue-sync-worker-{i}") for i, threads in enumerate(shares)]
    for worker in workers:
        worker.start()
    done: dict[str, TenantOutcome] = {}
    worker_error = None
    try:
        while len(done) < len(tenant_ids):
            try:
                item = results.get(timeout=POLL_S)
            except queue.Empty:
                if not any(w.is_alive() for w in workers):
                    break
                continue
            if isinstance(item, str):  # a worker could not start
                worker_error = item
                continue
            done[item.tenant_id] = item
            if on_done:
                on_done(item, len(done), len(tenant_ids))
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    codes = ", ".join(str(w.exitcode) for w in workers)
    cause = worker_error or f"the worker process syncing it stopped (exit codes {codes})"
    for tenant_id in tenant_ids:
        if tenant_id not in done:
            done[tenant_id] = TenantOutcome(tenant_id, tenant_id, "failed", transient=True,
                                            error=f"{cause}; re-run this tenant")
            if on_done:
                on_done(done[tenant_id], len(done), len(tenant_ids))
    return [done[t] for t in tenant_ids]


def _worker_main(spec: SyncSpec, threads: int, tasks, results) -> None:  # type: ignore[no-untyped-def]
    """A worker process: `threads` threads take tenants until their stop sign."""
    import threading

    try:
        ctx = spec.context(concurrency=threads)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the tenants
        results.put(f"a worker process could not start ({type(exc).__name__}: {exc})")
        return
    parent = multiprocessing.parent_process()

    def loop() -> None:
        while parent is None or parent.is_alive():
            tenant_id = tasks.get()
            if tenant_id is None:
                return
            results.put(sync_tenant(ctx, tenant_id))

    pool = [threading.Thread(target=loop, name=f"glue-sync-{os.getpid()}-{i}") for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
