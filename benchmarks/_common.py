"""Shared set-up and measuring for the speed-and-scale benchmarks (sync, resync, rerun).

Three kinds of process take part, so that each one's CPU and memory are measured alone (the
machine has two cores):

- this one, the conductor: it holds no world and runs no pipeline code; it creates the
  temporary folder (store, DAGSTER_HOME, tables, cache) and, with --postgres, two temporary
  PostgreSQL databases (store and Dagster instance), dropped at the end;
- the sandbox process: generates the world from its seed, serves it over HTTPS with the given
  latency, and answers commands over a pipe (stats, CPU, mutate, revoke, restore);
- one pipeline process per sync: imports the pipeline, waits for "go", then runs
  run_discovery + run_sync on a real Dagster instance and reports its wall time, CPU seconds
  (getrusage self + children) and peak RSS (the process tree's summed RSS, sampled every
  0.2 s, so worker processes count). The window measured starts after the imports.

Every benchmark prints its figures as readable lines and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_DSN = os.environ.get("GLUE_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
DEFAULT_CONCURRENCY = 16  # GraphSettings.concurrency when GLUE_GRAPH_CONCURRENCY is unset
_SPAWN = multiprocessing.get_context("spawn")


# --------------------------------------------------------------------------- options


def common_arguments(parser: argparse.ArgumentParser, tenants: int = 200) -> argparse.ArgumentParser:
    parser.add_argument("--tenants", type=int, default=tenants, help="customer tenants in the world")
    parser.add_argument("--users-per-tenant", type=int, default=100,
                        help="average users per tenant (long-tailed spread)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--devices-per-user", type=float, default=1.0,
                        help="Intune managed devices per user in the world (0: none, as before devices)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per request")
    parser.add_argument("--concurrency", type=int, default=None,
                        help=f"GLUE_GRAPH_CONCURRENCY (default: the pipeline's, {DEFAULT_CONCURRENCY})")
    parser.add_argument("--postgres", action="store_true",
                        help="store and Dagster instance on the PostgreSQL at 127.0.0.1:5432 "
                             "(temporary databases, dropped afterwards)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds one sync may take before it is dumped (py-spy) and stopped")
    parser.add_argument("--profile", default=None,
                        help="record the pipeline process with py-spy into this file "
                             "(.svg flame graph, .json speedscope, other: collapsed stacks)")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser


def concurrency_of(args: argparse.Namespace) -> int:
    if args.concurrency:
        return args.concurrency
    raw = os.environ.get("GLUE_GRAPH_CONCURRENCY", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_CONCURRENCY


# --------------------------------------------------------------------------- the sandbox process


def _sandbox_main(conn: Connection, params: dict[str, Any]) -> None:
    """Child: generate the world, write the store's starting data, serve, answer commands."""
    try:
        from glue_pipeline.sandbox.generate import generate_world
        from glue_pipeline.sandbox.server import Sandbox, SandboxConfig

        started = time.perf_counter()
        world = generate_world(seed=params["seed"], tenants=params["tenants"], users=params["users"],
                               revoked=0, spread=params["spread"], devices_per_user=params["devices_per_user"])
        generated_s = time.perf_counter() - started
        seed_file = Path(params["workdir"]) / "store_seed.json"
        seed_file.write_text(world.store.model_dump_json())
        sandbox = Sandbox(SandboxConfig(world=world, latency_ms=params["latency_ms"]),
                          state_dir=Path(params["workdir"]) / "sandbox")
        sandbox.start()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", {
        "pid": os.getpid(), "generated_s": generated_s, "store_seed": str(seed_file),
        "env": {"GLUE_AUTHORITY_HOST": sandbox.authority_host, "GLUE_GRAPH_URL": sandbox.graph_url,
                "GLUE_CA_FILE": str(sandbox.ca_file), "GLUE_PARTNER_TENANT_ID": world.partner.tenant_id,
                "GLUE_CLIENT_ID": world.app.client_id, "GLUE_CLIENT_SECRET": world.app.client_secret},
        "tenants": [{"id": t.id, "name": t.display_name, "users": len(t.users)} for t in world.tenants],
        "users": world.user_count, "devices": sum(len(t.devices) for t in world.tenants)}))
    try:
        while True:
            command, kwargs = conn.recv()
            try:
                if command == "stop":
                    break
                if command == "stats":
                    answer: Any = sandbox.stats.snapshot()
                elif command == "reset_stats":
                    sandbox.stats.reset()
                    answer = None
                elif command == "cpu":
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    answer = {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024}
                elif command == "mutate":
                    changes = sandbox.mutate(**kwargs)
                    answer = {"changed": sum(len(c.changed) for c in changes.values()),
                              "added": sum(len(c.added) for c in changes.values()),
                              "removed": sum(len(c.removed) for c in changes.values())}
                elif command == "revoke":
                    sandbox.faults.revoked.add(kwargs["tenant_id"])
                    answer = None
                elif command == "restore":
                    sandbox.faults.revoked.discard(kwargs["tenant_id"])
                    answer = None
                else:
                    raise ValueError(f"unknown command {command}")
                conn.send(("ok", answer))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        sandbox.stop()


class SandboxProcess:
    """The sandbox served by a child process, driven through a pipe."""

    def __init__(self, workdir: Path, seed: int, tenants: int, users: int, latency_ms: float,
                 spread: str = "longtail", devices_per_user: float = 1.0) -> None:
        self.params = {"workdir": str(workdir), "seed": seed, "tenants": tenants, "users": users,
                       "latency_ms": latency_ms, "spread": spread, "devices_per_user": devices_per_user}
        self.latency_ms = latency_ms
        self._conn, child = _SPAWN.Pipe()
        self._process = _SPAWN.Process(target=_sandbox_main, args=(child, self.params), name="sandbox")
        self._child = child
        self.info: dict[str, Any] = {}

    def start(self, timeout_s: float = 600) -> SandboxProcess:
        self._process.start()
        self._child.close()
        if not self._conn.poll(timeout_s):
            self.stop()
            raise RuntimeError("the sandbox process did not start in time")
        kind, payload = self._conn.recv()
        if kind != "ready":
            self.stop()
            raise RuntimeError(f"the sandbox process failed:\n{payload}")
        self.info = payload
        return self

    def call(self, command: str, **kwargs: Any) -> Any:
        self._conn.send((command, kwargs))
        kind, payload = self._conn.recv()
        if kind != "ok":
            raise RuntimeError(f"sandbox command {command} failed:\n{payload}")
        return payload

    @property
    def env(self) -> dict[str, str]:
        return self.info["env"]

    @property
    def tenants(self) -> list[dict[str, Any]]:
        return self.info["tenants"]

    def cpu_s(self) -> float:
        return self.call("cpu")["cpu_s"]

    def stop(self) -> None:
        if self._process.is_alive():
            with suppress(BrokenPipeError, OSError):
                self._conn.send(("stop", {}))
            self._process.join(timeout=20)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- store and instance


@dataclass
class Workspace:
    """A temporary folder holding the store (SQLite) or naming its PostgreSQL databases, the
    Dagster home, the analyst tables and the Graph cache."""

    root: Path
    postgres: bool
    databases: list[str] = field(default_factory=list)
    store_url: str = ""
    dagster_pg_url: str | None = None

    def env(self) -> dict[str, str]:
        env = {"GLUE_STORE_URL": self.store_url, "GLUE_DATA_DIR": str(self.root / "tables"),
               "GLUE_CACHE_DIR": str(self.root / "cache"), "GLUE_VAR_DIR": str(self.root / "var"),
               "DAGSTER_HOME": str(self.root / "dagster")}
        if self.dagster_pg_url:
            env["DAGSTER_PG_URL"] = self.dagster_pg_url
        return env


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg2

    admin = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    admin.autocommit = True
    return admin


@contextmanager
def workspace(postgres: bool, keep: bool = False) -> Iterator[Workspace]:
    root = Path(tempfile.mkdtemp(prefix="glue-bench-"))
    ws = Workspace(root, postgres)
    admin = None
    try:
        if postgres:
            admin = _pg_admin()
            params = admin.get_dsn_parameters()
            host = f"{params['user']}@{params['host']}:{params['port']}"
            for role in ("store", "dagster"):
                name = f"glue_bench_{role}_{uuid.uuid4().hex[:10]}"
                with admin.cursor() as cur:
                    cur.execute(f'CREATE DATABASE "{name}"')
                ws.databases.append(name)
            ws.store_url = f"postgresql+psycopg2://{host}/{ws.databases[0]}"
            ws.dagster_pg_url = f"postgresql://{host}/{ws.databases[1]}"
        else:
            ws.store_url = f"sqlite:///{root / 'store.db'}"
        yield ws
    finally:
        if admin is not None:
            for name in ws.databases:
                with admin.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def seed_store(store_url: str, seed_file: str) -> None:
    """Load the world's starting organizations and contacts (not measured)."""
    from glue_pipeline.sandbox.world import StoreSeed
    from glue_pipeline.store.engine import make_engine
    from glue_pipeline.store.seed import seed_store as load

    engine = make_engine(store_url)
    load(engine, StoreSeed.model_validate_json(Path(seed_file).read_text()))
    engine.dispose()


def store_counts(store_url: str, run_ids: list[str] | None = None) -> dict[str, int]:
    """Contacts in the store and, for the given runs, what sync_results says."""
    from sqlalchemy import func, select

    from glue_pipeline.store.engine import make_engine
    from glue_pipeline.store.schema import configurations, contacts, sync_log, sync_results

    engine = make_engine(store_url)
    with engine.connect() as conn:
        out = {"contacts": conn.execute(select(func.count()).select_from(contacts)).scalar_one(),
               "configurations": conn.execute(select(func.count()).select_from(configurations)).scalar_one()}
        if run_ids:
            rows = conn.execute(select(sync_results.c.status, func.count(), func.sum(sync_results.c.created),
                                       func.sum(sync_results.c.updated), func.sum(sync_results.c.unchanged))
                                .where(sync_results.c.run_id.in_(run_ids))
                                .group_by(sync_results.c.status)).all()
            out.update({f"tenants_{status}": n for status, n, *_ in rows})
            out["created"] = sum(int(r[2] or 0) for r in rows)
            out["updated"] = sum(int(r[3] or 0) for r in rows)
            out["unchanged"] = sum(int(r[4] or 0) for r in rows)
            out["configurations_written"] = conn.execute(
                select(func.count()).select_from(sync_log)
                .where(sync_log.c.run_id.in_(run_ids),
                       sync_log.c.action.in_(["configuration_created", "configuration_updated"]))).scalar_one()
            out["tenants_not_replanned"] = conn.execute(
                select(func.count()).select_from(sync_log)
                .where(sync_log.c.run_id.in_(run_ids), sync_log.c.action == "tenant_unchanged")).scalar_one()
    engine.dispose()
    return out


# --------------------------------------------------------------------------- the pipeline process


def _usage() -> tuple[float, float, float]:
    """CPU seconds of this process and its reaped children, and the larger peak RSS in MiB."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime,
            max(me.ru_maxrss, kids.ru_maxrss) / 1024)


def _pipeline_main(conn: Connection, env: dict[str, str], discovery: bool) -> None:
    """Child: one hourly-style sync (discovery, then every tenant in one run) on a real instance."""
    try:
        os.environ.update(env)
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            os.environ.pop(name, None)
        start_cpu = _usage()
        from glue_pipeline.runner import get_instance, run_discovery, run_sync

        instance = get_instance()
        import_cpu = _usage()
        conn.send(("ready", {"pid": os.getpid(), "import_cpu_s": import_cpu[0] - start_cpu[0]}))
        conn.recv()  # "go": a profiler may attach first
        before = _usage()
        started = time.perf_counter()
        discovered = run_discovery(instance) if discovery else None
        discovery_s = time.perf_counter() - started
        sync_started = time.time()
        runs = run_sync(instance) if discovered is None or discovered.success else []
        wall_s = time.perf_counter() - started
        after = _usage()
        phases = _run_phases(instance, runs[0].run_id, sync_started) if runs else {}
        instance.dispose()
        conn.send(("result", {
            "wall_s": wall_s, "discovery_s": discovery_s, "sync_s": wall_s - discovery_s,
            "cpu_s": (after[0] - before[0]) + (after[1] - before[1]),
            "process_cpu_s": after[0] + after[1], "peak_rss_mib": after[2],
            "phases": phases, "discovery_ok": discovered.success if discovered else None,
            "discovery_error": discovered.error if discovered else None,
            "runs": [{"run_id": r.run_id, "success": r.success, "error": r.error} for r in runs]}))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


def _run_phases(instance, run_id: str, started: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Seconds from the start of run_sync to each milestone of the sync run, read back from the
    instance's event log (after the measured window): where the run's wall time goes."""
    marks: dict[str, float] = {}

    def mark(name: str, at: float, last: bool = False) -> None:
        if last or name not in marks:
            marks[name] = round(at - started, 2)

    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event_type.name if entry.dagster_event_type else None
        if kind == "ASSET_MATERIALIZATION_PLANNED":
            mark("planned_first", entry.timestamp)
            mark("planned_last", entry.timestamp, last=True)
        elif kind in ("RUN_START", "STEP_START"):
            mark(kind.lower(), entry.timestamp)
        elif kind is None and "tenants done" in (entry.user_message or ""):
            mark("tenant_done_first", entry.timestamp)
            mark("tenant_done_last", entry.timestamp, last=True)
        elif kind == "ASSET_MATERIALIZATION":
            mark("materialization_first", entry.timestamp)
            mark("materialization_last", entry.timestamp, last=True)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            mark("step_end", entry.timestamp)
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            mark("run_end", entry.timestamp)
    marks["returned"] = round(time.time() - started, 2)
    return marks


def describe_phases(marks: dict[str, float]) -> str:
    """The milestones as intervals: what the run did between them."""
    steps = [("create run (+planned events)", "planned_last"), ("start run and step", "step_start"),
             ("tenants synced (threads)", "tenant_done_last"),
             ("materializations logged", "materialization_last"), ("step and run end", "run_end")]
    out, previous = [], 0.0
    for label, key in steps:
        if key in marks:
            out.append(f"{label} {marks[key] - previous:.1f} s")
            previous = marks[key]
    return "; ".join(out)


class Profiler:
    """py-spy recording a process (optional)."""

    def __init__(self, pid: int, out: str | None, rate: int) -> None:
        self.out, self.proc = out, None
        if out:
            exe = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
            if not exe:
                raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
            fmt = "flamegraph" if out.endswith(".svg") else "speedscope" if out.endswith(".json") else "raw"
            self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", fmt,
                                          "--output", out, "--subprocesses", "--nonblocking"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # let it attach

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            print(f"profile written to {self.out}")


class TreeRss:
    """Samples the resident memory of a process and all its descendants (the sync's worker
    processes), summed, every `every_s`; `peak_mib` is the highest sum seen."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        import psutil

        self.root, self.every_s, self.peak_mib = psutil.Process(pid), every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> float:
        import psutil

        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            with suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.peak_mib = max(self.peak_mib, self._sample())
            except Exception:
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def py_spy_dump(pid: int) -> str:
    exe = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if not exe:
        return "(py-spy is not installed: .venv/bin/pip install py-spy)"
    done = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def run_pipeline(env: dict[str, str], *, discovery: bool = True, timeout_s: float = 900,
                 profile: str | None = None, profile_rate: int = 50) -> dict[str, Any]:
    """One sync in a fresh pipeline process; its figures. Past timeout_s the process is dumped
    with py-spy (the dump is returned under "timeout_dump") and stopped."""
    conn, child = _SPAWN.Pipe()
    process = _SPAWN.Process(target=_pipeline_main, args=(child, env, discovery), name="pipeline")
    process.start()
    child.close()
    try:
        kind, payload = conn.recv()
        if kind != "ready":
            raise RuntimeError(f"the pipeline process failed:\n{payload}")
        profiler = Profiler(process.pid, profile, profile_rate)
        rss = TreeRss(process.pid)
        conn.send("go")
        started = time.perf_counter()
        if not conn.poll(timeout_s):
            dump = py_spy_dump(process.pid)
            process.terminate()
            profiler.stop()
            return {"timeout": True, "wall_s": time.perf_counter() - started, "timeout_dump": dump}
        kind, result = conn.recv()
        profiler.stop()
        tree_peak = rss.stop()
        if kind != "result":
            raise RuntimeError(f"the pipeline process failed:\n{result}")
        result["import_cpu_s"] = payload["import_cpu_s"]
        # The sampled sum over the process tree (workers included), never below the largest
        # single process's own peak.
        result["peak_rss_mib"] = max(result["peak_rss_mib"], tree_peak)
        result["tree_peak_rss_mib"] = tree_peak
        return result
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)


# --------------------------------------------------------------------------- one measured sync


def measured_sync(sandbox: SandboxProcess, env: dict[str, str], concurrency: int, args: argparse.Namespace,
                  *, discovery: bool = True, profile: str | None = None) -> dict[str, Any]:
    """A sync with the sandbox's request counts and CPU seconds for the same window."""
    sandbox.call("reset_stats")
    sandbox_cpu = sandbox.cpu_s()
    result = run_pipeline(env, discovery=discovery, timeout_s=args.timeout, profile=profile,
                          profile_rate=args.profile_rate)
    stats = sandbox.call("stats")
    result["sandbox_cpu_s"] = sandbox.cpu_s() - sandbox_cpu
    result["graph_requests"] = stats["requests"].get("graph", 0)
    result["all_requests"] = sum(stats["requests"].values())
    result["requests_by_kind"] = stats["requests"]
    result["delta_requests"] = stats.get("delta_requests", 0)
    result["peak_in_flight"] = stats.get("peak_in_flight")
    result["faults_injected"] = stats.get("faults_injected", 0)
    latency_s = sandbox.latency_ms / 1000
    result["floor_s"] = result["graph_requests"] * latency_s / concurrency
    result["floor_all_s"] = result["all_requests"] * latency_s / concurrency
    result["wall_over_floor"] = result["wall_s"] / result["floor_s"] if result["floor_s"] else None
    return result


def pipeline_env(sandbox: SandboxProcess, ws: Workspace, concurrency: int | None) -> dict[str, str]:
    env = {**sandbox.env, **ws.env()}
    if concurrency:
        env["GLUE_GRAPH_CONCURRENCY"] = str(concurrency)
    return env


@contextmanager
def bench_world(args: argparse.Namespace) -> Iterator[tuple[SandboxProcess, Workspace]]:
    """A sandbox process over a generated world and a seeded temporary store."""
    with workspace(args.postgres, args.keep) as ws:
        started = time.perf_counter()
        with SandboxProcess(ws.root, args.seed, args.tenants, args.tenants * args.users_per_tenant,
                            args.latency_ms, devices_per_user=args.devices_per_user) as sandbox:
            seed_store(ws.store_url, sandbox.info["store_seed"])
            sizes = sorted((t["users"] for t in sandbox.tenants), reverse=True)
            print(f"world: {len(sizes)} tenants, {sandbox.info['users']:,} users, {sandbox.info['devices']:,} Intune "
                  f"devices (seed {args.seed}, long tail: "
                  f"largest {sizes[:5]}, median {sizes[len(sizes) // 2]}, {sum(s > 2000 for s in sizes)} over "
                  f"2,000); generated in {sandbox.info['generated_s']:.1f} s, set up in "
                  f"{time.perf_counter() - started:.1f} s")
            print(f"code: {code_state()}")
            load = os.getloadavg()
            print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
                  "(other processes share the cores)")
            print(f"store: {'PostgreSQL' if args.postgres else 'SQLite'}; Dagster instance: "
                  f"{'PostgreSQL' if args.postgres else 'SQLite'} in {ws.root / 'dagster'}; "
                  f"sandbox latency {args.latency_ms:g} ms in its own process (pid {sandbox.info['pid']})")
            yield sandbox, ws


def code_state() -> str:
    """The commit measured, and the pipeline files that differ from it (others edit them too)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    dirty = [line.split(maxsplit=1)[-1] for line in git("status", "--porcelain", "--", "glue_pipeline").splitlines()]
    return f"commit {git('rev-parse', '--short', 'HEAD') or '?'}" + (
        f", uncommitted changes in {', '.join(dirty)}" if dirty else ", no uncommitted pipeline changes")


# --------------------------------------------------------------------------- printing


def describe_sync(label: str, r: dict[str, Any]) -> None:
    if r.get("timeout"):
        print(f"{label}: stopped after {r['wall_s']:.0f} s (timeout); where it was:\n{r['timeout_dump']}")
        return
    failed = [run for run in r["runs"] if not run["success"]]
    print(f"{label}: wall {r['wall_s']:.1f} s (discovery {r['discovery_s']:.1f} s, sync run {r['sync_s']:.1f} s); "
          f"pipeline CPU {r['cpu_s']:.1f} s (+{r['import_cpu_s']:.1f} s imports), peak RSS "
          f"{r['peak_rss_mib']:.0f} MiB; sandbox CPU {r['sandbox_cpu_s']:.1f} s")
    if r.get("phases"):
        print(f"    sync run phases: {describe_phases(r['phases'])}")
    print(f"    Graph requests {r['graph_requests']:,} (all sandbox requests {r['all_requests']:,}: "
          f"{r['requests_by_kind']}; delta {r['delta_requests']:,}; peak in flight {r['peak_in_flight']}); "
          f"network floor {r['floor_s']:.1f} s, wall/floor {r['wall_over_floor'] or 0:.2f}")
    if failed or r.get("discovery_ok") is False:
        errors = [(f["error"] or "")[:400] for f in failed]
        print(f"    FAILED: discovery {r.get('discovery_error')}; runs {errors}")


def emit(figures: dict[str, Any]) -> None:
    """The one closing JSON line."""
    print(json.dumps(figures, sort_keys=False, default=str))


def rounded(value: Any, digits: int = 2) -> Any:
    return round(value, digits) if isinstance(value, float) else value


# --------------------------------------------------------------------------- profiles


_LINE = re.compile(r":\d+\)$")


def summarize_profile(path: str, top: int = 25) -> str:
    """Shares of a py-spy raw (collapsed stacks) profile: the time a function is on the stack
    (inclusive), for the project's functions and for all, and where the samples end (self)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = [_LINE.sub(")", f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            total += n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
            own[frames[-1]] = own.get(frames[-1], 0) + n
    if not total:
        return "(empty profile)"

    def table(counts: dict[str, int], keep) -> list[str]:  # type: ignore[no-untyped-def]
        rows = sorted(((n, f) for f, n in counts.items() if keep(f)), reverse=True)[:top]
        return [f"  {100 * n / total:5.1f}%  {f}" for n, f in rows]

    lines = [f"{total} samples (active threads only)", "inclusive, glue_pipeline:"]
    lines += table(inclusive, lambda f: "glue_pipeline/" in f)
    lines += ["inclusive, libraries:"]
    lines += table(inclusive, lambda f: "glue_pipeline/" not in f and "multiprocessing" not in f
                   and "_common.py" not in f and "threading.py" not in f and "thread.py" not in f)
    lines += ["self (where the samples end):"]
    lines += table(own, lambda f: True)
    return "\n".join(lines)


if __name__ == "__main__":  # python benchmarks/_common.py PROFILE.txt: summarize a raw profile
    print(summarize_profile(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25))
