"""A batch of tenants spread over worker processes, so a large sync uses every core.

Matching and writing a tenant is CPU-bound Python, and threads share one interpreter lock, so
one process carries at most one core of it. A run therefore starts a few worker processes
(GLUE_SYNC_PROCESSES), each with its share of the Graph concurrency as threads, which send
each tenant's outcome back as soon as it is done. The run's
own process only reports outcomes to Dagster. Small batches, and steps that already run inside
a daemonic process (a Celery prefork worker), stay in threads of the current process.

Each worker has its own pipe: the parent sends it one tenant per thread and the next one as
each outcome comes back, so tenants are spread by how long they take; every message is one of
the types ToWorker and FromWorker. A worker that dies loses only the tenants it held: they are
recorded as failed with a transient error, so the retry pass takes them again. A worker whose
parent has died stops after the tenants in hand.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import assert_never

from glue_pipeline.cache import TenantCache
from glue_pipeline.graph.client import DiscoveryCache, GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.settings import GraphSettings, Secret
from glue_pipeline.store.engine import Engine, make_engine
from glue_pipeline.sync import (
    OnDone,
    SyncContext,
    TenantOutcome,
    record_failure,
    sync_context,
    sync_tenant,
    sync_tenants,
    with_retries,
)

MIN_TENANTS_PER_PROCESS = 25  # below this, starting a process costs more than it saves
POLL_S = 1.0  # how often the parent looks whether its workers are still alive


@dataclass(frozen=True)
class SyncTenant:
    """Parent to worker: sync this tenant and send its outcome."""

    tenant_id: str


@dataclass(frozen=True)
class Stop:
    """Parent to worker: no tenant is left for one of its threads, which stops."""


@dataclass(frozen=True)
class TenantDone:
    """Worker to parent: a tenant's outcome."""

    outcome: TenantOutcome


@dataclass(frozen=True)
class WorkerFailed:
    """Worker to parent: it could not start, and stops; the tenants it holds fail with `reason`."""

    reason: str


ToWorker = SyncTenant | Stop
FromWorker = TenantDone | WorkerFailed


def _to_worker(message: object) -> ToWorker:
    """A message received from the parent (a pipe carries any pickle)."""
    if isinstance(message, ToWorker):
        return message
    raise TypeError(f"not a message to a worker: {type(message).__name__}")


def _from_worker(message: object) -> FromWorker:
    """A message received from a worker."""
    if isinstance(message, FromWorker):
        return message
    raise TypeError(f"not a message from a worker: {type(message).__name__}")


@dataclass(frozen=True)
class SyncSpec:
    """What a process needs to build its own sync context (pickled to worker processes); the
    context's clock is GLUE_CLOCK's, read where it is built."""

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
        return sync_tenants(spec.context(engine=engine), tenant_ids, concurrency, on_done)
    return with_retries(lambda ids, report: process_pass(spec, ids, processes, report, engine), tenant_ids,
                        on_done)


def _shares(total: int, parts: int) -> list[int]:
    """`total` threads split over `parts` processes as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class _Worker:
    """A worker process and its private pipe; the tenants it holds are known here, so a worker
    that dies loses exactly those. (A shared queue would not do: a process killed while holding
    the queue's lock would block every other worker.)"""

    def __init__(self, mp: SpawnContext, spec: SyncSpec, threads: int, number: int) -> None:
        self.conn, child = mp.Pipe()
        self.process = mp.Process(target=_worker_main, args=(spec, threads, child), daemon=True,
                                  name=f"glue-sync-worker-{number}")
        self.process.start()
        child.close()
        self.threads, self.alive = threads, True
        self.holding: set[str] = set()

    def give(self, pending: deque[str]) -> None:
        """The next pending tenant, or a stop sign for one of its threads when none is left."""
        if not pending:
            self.send(Stop())
            return
        tenant_id = pending.popleft()
        self.holding.add(tenant_id)
        self.send(SyncTenant(tenant_id))

    def send(self, message: ToWorker) -> None:
        with contextlib.suppress(OSError):  # it has died: its tenants are lost when its pipe closes
            self.conn.send(message)

    def lose(self, why: str, lost: dict[str, str]) -> None:
        """The tenants it holds are lost, for `why`."""
        lost.update({t: why for t in self.holding})
        self.holding.clear()


def process_pass(spec: SyncSpec, tenant_ids: list[str], processes: int, on_done: OnDone | None,
                 engine: Engine | None = None) -> list[TenantOutcome]:
    shares = _shares(spec.graph.concurrency, processes_for(len(tenant_ids), processes, spec.graph.concurrency))
    mp = multiprocessing.get_context("spawn")
    pending = deque(tenant_ids)
    workers = [_Worker(mp, spec, threads, i) for i, threads in enumerate(shares)]
    for worker in workers:
        for _ in range(worker.threads):
            worker.give(pending)
    done: dict[str, TenantOutcome] = {}
    lost: dict[str, str] = {}  # tenant id -> why

    def report(outcome: TenantOutcome) -> None:
        done[outcome.tenant_id] = outcome
        if on_done:
            on_done(outcome, len(done), len(tenant_ids))

    try:
        while any(w.alive for w in workers):
            for ready in wait([w.conn for w in workers if w.alive], timeout=POLL_S):
                worker = next(w for w in workers if w.conn is ready)
                try:
                    reply = _from_worker(worker.conn.recv())
                except (EOFError, OSError):
                    worker.alive = False
                    worker.process.join(timeout=30)
                    worker.lose(f"the worker process syncing it stopped (exit code {worker.process.exitcode})",
                                lost)
                    continue
                match reply:
                    case TenantDone(outcome):
                        worker.holding.discard(outcome.tenant_id)
                        report(outcome)
                        worker.give(pending)
                    case WorkerFailed(reason):
                        worker.lose(reason, lost)
                    case _:
                        assert_never(reply)
    finally:
        for worker in workers:
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
    why_pending = next(iter(lost.values()), "no worker process was left to sync it")
    lost.update({t: why_pending for t in pending})
    store = engine or make_engine(spec.store_url) if lost else None
    for tenant_id, why in lost.items():
        message = f"{why}; re-run this tenant"
        if store is not None:
            record_failure(store, spec.run_id, tenant_id, message, "transient")
        report(TenantOutcome(tenant_id, tenant_id, "failed", error=message, cause="transient"))
    return [done[t] for t in tenant_ids]


def _worker_main(spec: SyncSpec, threads: int, conn: Connection) -> None:
    """A worker process: `threads` threads sync the tenants the parent sends, one at a time
    each, until each has had its stop sign (or the parent is gone)."""
    try:
        ctx = spec.context(concurrency=threads)
    except Exception as exc:  # reported to the parent, which fails the tenants
        _tell(conn, WorkerFailed(f"a worker process could not start ({type(exc).__name__}: {exc})"))
        return
    inbox: queue.Queue[ToWorker] = queue.Queue()
    sending = threading.Lock()

    def receive() -> None:
        stops = 0
        while stops < threads:
            try:
                message = _to_worker(conn.recv())
            except (EOFError, OSError):  # the parent is gone: stop after the tenants in hand
                for _ in range(threads - stops):
                    inbox.put(Stop())
                return
            match message:
                case Stop():
                    stops += 1
                case SyncTenant():
                    pass
                case _:
                    assert_never(message)
            inbox.put(message)

    def work() -> None:
        while True:
            message = inbox.get()
            match message:
                case SyncTenant(tenant_id):
                    outcome = sync_tenant(ctx, tenant_id)
                    with sending:
                        if not _tell(conn, TenantDone(outcome)):
                            return
                case Stop():
                    return
                case _:
                    assert_never(message)

    pool = [threading.Thread(target=receive, name="glue-sync-inbox")]
    pool += [threading.Thread(target=work, name=f"glue-sync-{os.getpid()}-{i}") for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def _tell(conn: Connection, message: FromWorker) -> bool:
    """Send the parent a message; False when it is gone."""
    try:
        conn.send(message)
    except OSError:
        return False
    return True
