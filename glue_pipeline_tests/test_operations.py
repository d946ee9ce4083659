"""Operating the pipeline in Dagster, as ops do: runs the command line starts are runs of the code
location that the UI re-executes; at most two syncs run at once; the overview follows any run
that syncs tenants; a sync whose process was killed is failed by run monitoring and its store row
closed, and the next run proceeds.

The UI is `dagster dev` on the project's workspace.yaml and dagster.yaml (webserver and daemon),
driven through the webserver's GraphQL API (glue_pipeline_tests/ui.py), with the sandbox standing
in for Microsoft."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from sqlalchemy import select

from glue_pipeline.defs.monitoring import close_ended_sync_runs
from glue_pipeline.defs.partitions import TENANT_PARTITIONS, all_tenants_run_requests, range_keys
from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.server import Sandbox
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import heartbeats, schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline_tests.stores import partition_of
from glue_pipeline_tests.ui import DEADLINE_S, DONE, IN_PROGRESS, project_env, start_ui, stop_ui, wait


@pytest.fixture
def ops_env(sandbox: Sandbox, small_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return project_env(sandbox, small_world, tmp_path, monkeypatch)


def _result(store_url: str, run_id: str, tenant_id: str) -> str | None:
    with make_engine(store_url).connect() as conn:
        return conn.execute(select(schema.sync_results.c.status).where(
            schema.sync_results.c.run_id == run_id, schema.sync_results.c.tenant_id == tenant_id)).scalar()


def _granted(world: World) -> list[str]:
    return [t.id for t in world.tenants if t.consent == "granted"]


def test_a_failed_command_run_is_listed_under_its_job_and_re_executed_from_the_ui(
        ops_env: dict[str, str], sandbox: Sandbox, small_world: World) -> None:
    """The command's run of one tenant fails while the tenant's consent is revoked; once it is
    back, the UI re-executes that run from failure and in full, and both succeed for the tenant."""
    tenant = _granted(small_world)[0]
    instance = get_instance()
    assert run_discovery(instance).success
    sandbox.faults.revoked.add(tenant)
    [failed] = run_sync(instance, [tenant])
    assert not failed.success and _result(ops_env["GLUE_STORE_URL"], failed.run_id, tenant) == "failed"
    sandbox.faults.revoked.clear()

    server = start_ui(ops_env)
    try:
        runs = server.query(
            'query { runsOrError(filter: {pipelineName: "sync_tenants", tags: [{key: ".dagster/repository", '
            'value: "__repository__@glue_pipeline"}]}) { ... on Runs { results { runId } } } }')
        assert failed.run_id in {r["runId"] for r in runs["runsOrError"]["results"]}, \
            "the command's run is listed under its job, as the UI's job page filters runs"

        for strategy in ("FROM_FAILURE", "ALL_STEPS"):
            child = server.finished(server.reexecute(failed.run_id, strategy))
            assert child["status"] == "SUCCESS", (strategy, child)
            assert child["parentRunId"] == failed.run_id and child["jobName"] == "sync_tenants"
            assert {"key": "dagster/partition", "value": partition_of(tenant)} in child["tags"]
            assert _result(ops_env["GLUE_STORE_URL"], child["runId"], tenant) == "synced", strategy
    finally:
        stop_ui(server)
    instance.dispose()


def test_at_most_two_syncs_run_at_once_and_the_overview_follows_partition_runs(
        ops_env: dict[str, str], sandbox: Sandbox, small_world: World) -> None:
    """Three sync runs launched at once from the UI: two run, the third waits in the queue until a
    slot frees; one of them is a partition run of tenant_contacts (`__ASSET_JOB`), and the
    overview is refreshed after it as after the others."""
    instance = get_instance()
    assert run_discovery(instance).success
    tenants = _granted(small_world)[:3]
    sandbox.faults.latency_ms = 400  # each tenant's sync takes seconds: the runs overlap
    server = start_ui(ops_env)
    try:
        keys = [partition_of(t) for t in tenants]
        run_ids = [server.launch("sync_tenants", {"dagster/partition": keys[0]}),
                   server.launch("sync_tenants", {"dagster/partition": keys[1]}),
                   server.launch("__ASSET_JOB", {"dagster/partition": keys[2]}, assets=["tenant_contacts"])]
        most, waited = 0, False
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            statuses = [server.run(r)["status"] for r in run_ids]
            running = sum(s in IN_PROGRESS for s in statuses)
            most = max(most, running)
            waited |= running == 2 and "QUEUED" in statuses
            if all(s in DONE for s in statuses):
                break
            time.sleep(0.2)
        assert [server.run(r)["status"] for r in run_ids] == ["SUCCESS"] * 3
        assert most <= 2, "never more than two sync runs in progress"
        assert waited, "a third sync run waited in the queue while two ran"

        asset_run = run_ids[2]
        refresh = wait("the overview after the partition run", lambda: [
            r for r in instance.get_runs(dg.RunsFilter(job_name="refresh_overview"))
            if r.tags.get("dagster/run_key") == asset_run])
        assert server.finished(refresh[0].run_id)["status"] in {"SUCCESS", "FAILURE"}
    finally:
        sandbox.faults.latency_ms = 0
        stop_ui(server)
    instance.dispose()


def test_a_killed_sync_is_failed_by_run_monitoring_and_the_next_run_proceeds(
        ops_env: dict[str, str], sandbox: Sandbox, small_world: World, tmp_path: Path) -> None:
    """SIGKILL a `glue-pipeline sync` mid-run: its Dagster run stays STARTED and its store row
    running until run monitoring sees the heartbeat stop; then the run is failed with the cause,
    the store row follows, and the next sync succeeds."""
    store_url = ops_env["GLUE_STORE_URL"]
    engine = make_engine(store_url)
    sandbox.faults.latency_ms = 300
    cli = Path(sys.executable).with_name("glue-pipeline")
    process = subprocess.Popen([str(cli), "sync"], env={**os.environ}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        run_id = wait("a sync run that beats and has begun its tenants", lambda: _syncing(engine), every_s=0.1)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        sandbox.faults.latency_ms = 0
        if process.poll() is None:
            process.kill()
    instance = get_instance()
    killed = instance.get_run_by_id(run_id)
    assert killed is not None and killed.status == dg.DagsterRunStatus.STARTED
    with engine.connect() as conn:
        assert conn.execute(select(schema.sync_runs.c.status).where(schema.sync_runs.c.run_id == run_id)
                            ).scalar_one() == "running"

    # Run monitoring, as the daemon runs it, on the same storage with a short heartbeat timeout.
    monitor_home = tmp_path / "monitor"
    monitor_home.mkdir()
    (monitor_home / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {ops_env['DAGSTER_HOME']}\n"
        "run_launcher:\n  module: glue_pipeline.launcher\n  class: GlueRunLauncher\n"
        "  config:\n    heartbeat_timeout_seconds: 2\n"
        "run_monitoring:\n  enabled: true\n  max_resume_run_attempts: 0\n")
    time.sleep(3)  # the killed process's last beat is now older than the timeout
    with dg.DagsterInstance.from_config(str(monitor_home)) as monitor, \
            WorkspaceProcessContext(monitor, None) as workspace:
        list(execute_run_monitoring_iteration(workspace, logging.getLogger("run-monitoring")))
        run = monitor.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        failure = monitor.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert failure and "killed or crashed" in (failure[0].event_log_entry.message or "")

    # The sensor closes the store's row with the cause; the next sync proceeds.
    with dg.build_sensor_context(instance=instance, resources={"store": StoreResource(url=store_url)}) as context:
        close_ended_sync_runs(context)
    with engine.connect() as conn:
        status, error = conn.execute(select(schema.sync_runs.c.status, schema.sync_runs.c.error)
                                     .where(schema.sync_runs.c.run_id == run_id)).one()
    assert status == "failed" and "killed or crashed" in error
    [rerun] = run_sync(instance)
    synced = _result(store_url, rerun.run_id, _granted(small_world)[0])
    assert synced == "synced"
    instance.dispose()


def _syncing(engine: Any) -> str | None:
    """The id of a sync_tenants run with a heartbeat and a running sync_runs row, if any."""
    try:
        beating = {b.run_id for b in heartbeats.beats(engine).values() if b.job_name == "sync_tenants"}
        with engine.connect() as conn:
            running = set(conn.execute(select(schema.sync_runs.c.run_id)
                                       .where(schema.sync_runs.c.status == "running")).scalars())
    except Exception:  # the store's tables are made by the command's first run
        return None
    return next(iter(beating & running), None)


def test_a_sync_of_every_tenant_is_split_around_the_tenants_left_out(instance: dg.DagsterInstance) -> None:
    """Paused and parked tenants are in no run: the runs cover the stretches between them."""
    keys = ["t1", "t2", "t3", "t4", "t5", "t6"]
    instance.add_dynamic_partitions(TENANT_PARTITIONS, keys)
    requests = all_tenants_run_requests(instance, run_key="r")
    assert isinstance(requests, list) and len(requests) == 1
    whole = requests[0]
    assert whole.run_key == "r" and range_keys(instance, whole) == keys
    requests = all_tenants_run_requests(instance, {"t1", "t3", "t4"}, run_key="r")
    assert isinstance(requests, list)
    assert [range_keys(instance, r) for r in requests] == [["t2"], ["t5", "t6"]]
    assert len({r.run_key for r in requests}) == 2, "each run of the split has its own run key"
    skipped = all_tenants_run_requests(instance, set(keys))
    assert isinstance(skipped, dg.SkipReason) and "paused or parked" in (skipped.skip_message or "")
