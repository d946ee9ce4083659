"""The sync through dagster-celery's executor, for real on one machine: the RabbitMQ broker on
127.0.0.1:5672, a Celery worker started here as a subprocess, the Dagster instance on
PostgreSQL. Discovery and the sync run over every tenant go through the worker; the store it
writes must be the one the default executor writes for the same world (timestamps, run ids and
bookkeeping tables aside).

The worker listens on a queue of its own (the executor's task_default_queue), so that another
worker on the same broker never takes these steps, and it is stopped at the end.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob
from sqlalchemy import DateTime, select

from glue_pipeline.defs.discovery import customer_tenants
from glue_pipeline.defs.partitions import TENANTS, all_tenants_run_requests
from glue_pipeline.defs.resources import glue_resources
from glue_pipeline.defs.tenants import TENANT_GROUP, tenant_sync
from glue_pipeline.demo import sandbox_env
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store

try:
    from dagster_celery import celery_executor
except ImportError:  # reported by the test itself, with the fix
    celery_executor = None

BROKER_URL = os.environ.get("GLUE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKER_HOST, BROKER_PORT = urlsplit(BROKER_URL).hostname or "127.0.0.1", urlsplit(BROKER_URL).port or 5672
WORKER_START_S = 60
RUN_TIMEOUT_S = 120
# Not compared: the run bookkeeping (run ids, times, log wording).
# tenant_sync_state holds fingerprints of timestamped rows, which differ between any two stores.
BOOKKEEPING = {"sync_runs", "sync_log", "tenant_sync_state"}
# Surrogate keys numbered in write order, which differs from run to run with tenants in threads.
SURROGATE_IDS = {"contact_emails", "contact_phones", "match_decisions"}


# --------------------------------------------------------------------------- the celery jobs


def celery_definitions() -> dg.Definitions:
    """The project's discovery and per-tenant assets, with jobs that run on dagster-celery."""
    assert celery_executor is not None
    return dg.Definitions(
        assets=[customer_tenants, tenant_sync],
        jobs=[dg.define_asset_job("discover_tenants", selection=[customer_tenants],
                                  executor_def=celery_executor),
              dg.define_asset_job("sync_tenants", selection=dg.AssetSelection.groups(TENANT_GROUP),
                                  partitions_def=TENANTS, executor_def=celery_executor)],
        resources=glue_resources(),
    )


# Module-level functions, so that the worker can rebuild the jobs from this file.
def celery_discover_job() -> dg.JobDefinition:
    return celery_definitions().resolve_job_def("discover_tenants")


def celery_sync_job() -> dg.JobDefinition:
    return celery_definitions().resolve_job_def("sync_tenants")


def celery_run_config(queue: str) -> dict:
    return {"execution": {"config": {"broker": BROKER_URL, "backend": "rpc://",
                                     "config_source": {"task_default_queue": queue}}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# --------------------------------------------------------------------------- services


def _required(what: str, reason: str) -> None:
    """Under GLUE_REQUIRE_POSTGRES=1 (CI) a missing service fails the test; elsewhere it skips."""
    if os.environ.get("GLUE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{what} is required (GLUE_REQUIRE_POSTGRES=1) but {reason}", pytrace=False)
    pytest.skip(f"{what} not available: {reason}")


def require_celery_and_rabbitmq() -> None:
    if celery_executor is None:
        _required("dagster-celery", "it is not installed: add dagster-celery==0.29.27 (the release "
                  "matched to dagster 1.13.27) to pyproject.toml and reinstall (make install)")
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=3).close()
    except OSError as exc:
        _required("RabbitMQ", f"nothing answers on {BROKER_HOST}:{BROKER_PORT} ({exc.strerror or exc}): "
                  "start it (`service rabbitmq-server start`), or point GLUE_TEST_BROKER_URL at a broker")
    from kombu import Connection

    try:
        with Connection(BROKER_URL, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        _required("RabbitMQ", f"the broker at {BROKER_HOST}:{BROKER_PORT} refused the connection ({exc}): "
                  "the test logs in as guest/guest (RabbitMQ allows guest from localhost only), or set "
                  "GLUE_TEST_BROKER_URL")


class CeleryWorker:
    """`celery -A dagster_celery.app worker` on one queue, in its own process group."""

    def __init__(self, queue: str, env: dict[str, str], folder: Path) -> None:
        self.queue = queue
        self.name = f"glue-test-{uuid.uuid4().hex[:8]}"
        self.log_path = folder / "worker.log"
        config_dir = folder / "celery_config"
        config_dir.mkdir(parents=True)
        # The worker's app (make_app() without arguments) reads the broker from this module.
        (config_dir / "dagster_celery_config.py").write_text(f"broker_url = {BROKER_URL!r}\n"
                                                             "result_backend = 'rpc://'\n")
        python_path = os.pathsep.join(p for p in (str(config_dir), env.get("PYTHONPATH", "")) if p)
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "dagster_celery.app", "worker",
             "-Q", queue, "-n", f"{self.name}@%h", "--pool", "solo", "--loglevel", "INFO",
             "--without-mingle", "--without-gossip"],
            env={**env, "PYTHONPATH": python_path}, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = WORKER_START_S) -> None:
        deadline = time.monotonic() + timeout_s
        while " ready." not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start (exit {self.process.poll()}):\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the worker and delete its queue from the broker."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the worker's own group, started above
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
        from kombu import Connection

        try:
            with Connection(BROKER_URL, connect_timeout=5) as conn:
                conn.default_channel.queue_delete(self.queue)
        except Exception:
            pass


def execute_with_timeout(job_fn, instance: dg.DagsterInstance, run_config: dict, tags: dict | None,
                         worker: CeleryWorker) -> dg.ExecuteJobResult:
    """execute_job on the celery executor; a run that waits on a worker for too long fails the
    test instead of hanging it."""
    outcome: dict = {}

    def target() -> None:
        try:
            recon = ReconstructableJob.for_file(str(Path(__file__).resolve()), job_fn.__name__)
            with dg.execute_job(recon, instance=instance, run_config=run_config, tags=tags) as result:
                outcome["result"] = result
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"celery-{job_fn.__name__}")
    thread.start()
    thread.join(RUN_TIMEOUT_S)
    if thread.is_alive():
        pytest.fail(f"{job_fn.__name__} did not finish within {RUN_TIMEOUT_S} s on the Celery executor; "
                    f"worker log:\n{worker.log()[-3000:]}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


# --------------------------------------------------------------------------- comparing stores


def store_state(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every documentation table as sorted rows, without timestamps, surrogate ids and run ids;
    contacts are named by their Microsoft link (tenant, user) or, if unlinked, their seeded id, and
    configurations by theirs (tenant, Intune device)."""
    engine = make_engine(url)
    state: dict[str, list[tuple[str, ...]]] = {}
    with engine.connect() as conn:
        key = {cid: f"store:{cid}" for cid in conn.execute(select(schema.contacts.c.id)).scalars()}
        overlay = schema.contact_microsoft.c
        for cid, tenant_id, user_id in conn.execute(select(overlay.contact_id, overlay.tenant_id, overlay.user_id)):
            key[cid] = f"microsoft:{tenant_id}:{user_id}"

        def contact(value: object) -> str:
            return "None" if value is None else key.get(int(value), f"missing:{value}")

        device_key = {cid: f"store:{cid}" for cid in conn.execute(select(schema.configurations.c.id)).scalars()}
        link = schema.configuration_microsoft.c
        for cid, tenant_id, device_id in conn.execute(select(link.configuration_id, link.tenant_id, link.device_id)):
            device_key[cid] = f"microsoft:{tenant_id}:{device_id}"

        def configuration(value: object) -> str:
            return "None" if value is None else device_key.get(int(value), f"missing:{value}")

        for table in schema.metadata.sorted_tables:
            if table.name in BOOKKEEPING:
                continue
            columns = [c for c in table.columns if not isinstance(c.type, DateTime)
                       and c.name != "run_id" and not (c.name == "id" and table.name in SURROGATE_IDS)]
            rows = []
            for row in conn.execute(select(*columns)):
                values = []
                for column, value in zip(columns, row, strict=True):
                    if column.name in ("contact_id", "primary_contact_id") or \
                            (table.name == "contacts" and column.name == "id"):
                        values.append(contact(value))
                    elif column.name == "configuration_id" or (table.name == "configurations" and column.name == "id"):
                        values.append(configuration(value))
                    elif column.name == "candidate_configuration_ids" and value:
                        values.append(", ".join(sorted(configuration(v) for v in re.findall(r"\d+", value))))
                    elif column.name == "candidate_contact_ids" and value:
                        values.append(", ".join(sorted(contact(v) for v in re.findall(r"\d+", value))))
                    else:
                        values.append(str(value))
                rows.append(tuple(values))
            state[table.name] = sorted(rows)
    engine.dispose()
    return state


def differences(a: dict[str, list[tuple]], b: dict[str, list[tuple]]) -> list[str]:
    out = []
    for name in sorted(set(a) | set(b)):
        rows_a, rows_b = set(a.get(name, [])), set(b.get(name, []))
        if rows_a != rows_b or len(a.get(name, [])) != len(b.get(name, [])):
            out.append(f"{name}: {len(a.get(name, []))} rows vs {len(b.get(name, []))}; only default: "
                       f"{sorted(rows_a - rows_b)[:3]}; only celery: {sorted(rows_b - rows_a)[:3]}")
    return out


# --------------------------------------------------------------------------- the test


@pytest.fixture
def celery_world_env(tmp_path: Path) -> Iterator[tuple[Sandbox, dict[str, str], object]]:
    world = generate_world(seed=23, tenants=6, users=300, revoked=0)
    with Sandbox(SandboxConfig(world=world), state_dir=tmp_path / "sandbox") as sandbox:
        yield sandbox, sandbox_env(sandbox, world), world


def store_env(folder: Path) -> dict[str, str]:
    return {"GLUE_STORE_URL": f"sqlite:///{folder / 'store.db'}", "GLUE_DATA_DIR": str(folder / "tables"),
            "GLUE_CACHE_DIR": str(folder / "cache"), "GLUE_VAR_DIR": str(folder / "var")}


def test_celery_executor_writes_the_same_store_as_the_default_executor(
        celery_world_env, pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_celery_and_rabbitmq()
    _sandbox, graph_env, world = celery_world_env
    default_env, celery_env = store_env(tmp_path / "default"), store_env(tmp_path / "celery")
    for env in (default_env, celery_env):
        seed_store(make_engine(env["GLUE_STORE_URL"]), world.store)
    # The Dagster instance on PostgreSQL, from the project's dagster-postgres.yaml.
    instance_env = {"DAGSTER_HOME": str(tmp_path / "dagster_home"),
                    "DAGSTER_PG_URL": pg_database.replace("postgresql+psycopg2://", "postgresql://")}
    for name, value in {**graph_env, **instance_env, **default_env}.items():
        monkeypatch.setenv(name, value)
    instance = get_instance()
    queue = f"glue_test_{uuid.uuid4().hex[:10]}"
    worker = CeleryWorker(queue, {**os.environ, **celery_env}, tmp_path / "worker")
    try:
        # The default executor (what `glue-pipeline sync` runs), on its own store.
        assert run_discovery(instance).success
        default_runs = run_sync(instance)
        assert [r.success for r in default_runs] == [True], default_runs

        # The same sync through the Celery worker, on the other store.
        worker.wait_ready()
        config = celery_run_config(queue)
        discovery = execute_with_timeout(celery_discover_job, instance, config, None, worker)
        assert discovery.success, worker.log()[-3000:]
        requests = all_tenants_run_requests(instance)
        assert isinstance(requests, list) and len(requests) == 1
        request = requests[0]
        sync = execute_with_timeout(celery_sync_job, instance, config, request.tags, worker)
        assert sync.success, worker.log()[-3000:]

        # The steps ran in the worker: its engine events name it, and its log shows the tasks.
        for result in (discovery, sync):
            events = instance.all_logs(result.run_id)
            in_worker = [e for e in events if e.dagster_event is not None
                         and "in celery worker" in (e.dagster_event.message or "")]
            assert in_worker, f"no step of run {result.run_id} was executed by a Celery worker: " + "; ".join(
                f"{e.dagster_event_type}: {e.dagster_event.message if e.dagster_event else e.user_message}"
                for e in events)
            metadata = in_worker[0].dagster_event.engine_event_data.metadata
            assert metadata["Celery worker"].value.startswith(f"{worker.name}@")
        log = worker.log()
        assert len(re.findall(r"Task execute_plan\[[^\]]+\] succeeded", log)) == 2, log[-3000:]
    finally:
        worker.stop()
        instance.dispose()

    default_state, celery_state = store_state(default_env["GLUE_STORE_URL"]), store_state(celery_env["GLUE_STORE_URL"])
    synced = [r for r in celery_state["sync_results"] if "synced" in r]
    assert len(celery_state["contact_microsoft"]) > 100 and len(synced) >= 3, "the sync wrote too little to compare"
    assert not differences(default_state, celery_state), "\n".join(differences(default_state, celery_state))
