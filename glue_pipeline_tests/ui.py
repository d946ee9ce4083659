"""The Dagster UI as tests drive it: `dagster dev` (webserver and daemon) or `dagster-webserver`
alone on the project's workspace.yaml and an instance under the test's folder, read and driven
through the webserver's GraphQL API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from glue_pipeline.demo import sandbox_env
from glue_pipeline.sandbox.server import Sandbox
from glue_pipeline.sandbox.world import World
from glue_pipeline.settings import PROJECT_ROOT
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline_tests.served import pipeline_env

DEADLINE_S = 240  # generous: a loaded machine still gets there; no test measures time
IN_PROGRESS = {"STARTING", "STARTED"}
DONE = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(what: str, check: Any, deadline_s: float = DEADLINE_S, every_s: float = 0.5) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


def project_env(sandbox: Sandbox, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The pipeline's environment with a project instance (dagster.yaml) under tmp_path, a seeded
    SQLite store, and heartbeats every second."""
    config = tmp_path / "glue.yaml"
    config.write_text("sync: {}\n")
    env = {**sandbox_env(sandbox, world), **pipeline_env(tmp_path, world), "GLUE_CONFIG": str(config),
           "GLUE_HEARTBEAT_SECONDS": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    seed_store(make_engine(env["GLUE_STORE_URL"]), world.store)
    return env


class UI:
    """A webserver of the project's workspace, through its GraphQL API."""

    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.process = process

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(self.url, json={"query": text, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return dict(body["data"])

    def loaded(self) -> bool:
        try:
            data = self.query("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                              "locationOrLoadError { __typename } } } } }")
        except requests.RequestException:
            return False
        entries = data["workspaceOrError"]["locationEntries"]
        return any(e["name"] == "glue_pipeline" and e["loadStatus"] == "LOADED"
                   and e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)

    def run(self, run_id: str) -> dict[str, Any]:
        data = self.query("query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId status "
                          "jobName parentRunId tags { key value } } } }", id=run_id)
        return dict(data["runOrError"])

    def finished(self, run_id: str) -> dict[str, Any]:
        return dict(wait(f"run {run_id} to finish", lambda: (r := self.run(run_id))["status"] in DONE and r))

    def launch(self, job: str, tags: dict[str, str], assets: list[str] | None = None,
               run_config: dict[str, Any] | None = None) -> str:
        selector: dict[str, Any] = {"repositoryLocationName": "glue_pipeline", "repositoryName": "__repository__",
                                    "jobName": job}
        if assets:
            selector["assetSelection"] = [{"path": [a]} for a in assets]
        params: dict[str, Any] = {"selector": selector, "mode": "default", "executionMetadata": {
            "tags": [{"key": k, "value": v} for k, v in tags.items()]}}
        if run_config is not None:
            params["runConfigData"] = run_config
        data = self.query(
            "mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
            "... on RunConfigValidationInvalid { errors { message } } } }", params=params)
        result = data["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return str(result["run"]["runId"])

    def reexecute(self, parent_run_id: str, strategy: str) -> str:
        data = self.query(
            "mutation($parent: String!, $strategy: ReexecutionStrategy!) { launchRunReexecution("
            "reexecutionParams: {parentRunId: $parent, strategy: $strategy}) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message stack } } }",
            parent=parent_run_id, strategy=strategy)
        result = data["launchRunReexecution"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return str(result["run"]["runId"])


def _start(env: dict[str, str], name: str, command: list[str]) -> subprocess.Popen[bytes]:
    log = open(Path(env["GLUE_VAR_DIR"]).parent / f"{name}.log", "wb")  # noqa: SIM115 (the process keeps it)
    return subprocess.Popen([*command, "-w", str(PROJECT_ROOT / "workspace.yaml")], cwd=PROJECT_ROOT,
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_daemon(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`dagster-daemon run`: it launches the runs the webserver queues, and runs the sensors."""
    return _start(env, "dagster-daemon", [sys.executable, "-m", "dagster._daemon", "run"])


def start_ui(env: dict[str, str], daemon: bool = True) -> UI:
    """`dagster dev` (webserver and daemon), or `dagster-webserver` alone when not `daemon`."""
    port = free_port()
    command = ["dagster", "dev"] if daemon else ["dagster_webserver"]
    process = _start(env, command[-1], [sys.executable, "-m", *command, "-h", "127.0.0.1", "-p", str(port)])
    server = UI(port, process)
    try:
        wait("the webserver to load the code location", server.loaded)
    except BaseException:
        stop_ui(server)
        raise
    return server


def stop_ui(server: UI) -> None:
    stop(server.process)


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
