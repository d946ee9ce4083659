"""Shared fixtures: a sandbox over real HTTPS, the pipeline's environment pointed at it, real
SQLite and PostgreSQL stores, and real Dagster instances."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from glue_pipeline.demo import sandbox_env
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline_tests.served import clock_env

PG_ADMIN_DSN = os.environ.get("GLUE_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("GLUE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (GLUE_REQUIRE_POSTGRES=1) but {reason}: start it on "
                    "127.0.0.1:5432 or set GLUE_TEST_PG_DSN", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards. Yields its URL."""
    name = f"glue_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        _pg_unavailable(str(exc).strip())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    params = admin.get_dsn_parameters()
    try:
        yield f"postgresql+psycopg2://{params['user']}@{params['host']}:{params['port']}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def only_the_ca_we_pass() -> Iterator[None]:
    """REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE unset for a module whose plain requests sessions and
    msal apps talk to the sandbox: requests lets them replace the CA a session was given."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("REQUESTS_CA_BUNDLE", raising=False)
        env.delenv("CURL_CA_BUNDLE", raising=False)
        yield


@pytest.fixture(scope="session", autouse=True)
def one_clock_for_the_session() -> Iterator[None]:
    """GLUE_CLOCK fixed at the session's start, unless a test sets its own: the syncs of one test
    judge Microsoft's data at one moment, however far apart they run (a sign-in cannot cross the
    30-day line between a reference sync and a later one). Runs in subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as env:
        if not os.environ.get("GLUE_CLOCK"):
            env.setenv("GLUE_CLOCK", datetime.now(UTC).replace(microsecond=0).isoformat())
        yield


@pytest.fixture(scope="session")
def small_world() -> World:
    """6 tenants, 300 users, one with revoked consent; store seeded with organizations."""
    return generate_world(seed=11, tenants=6, users=300, revoked=1)


@pytest.fixture(scope="session")
def sandbox_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture
def sandbox(small_world: World, sandbox_state: Path) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(world=small_world.model_copy(deep=True)), state_dir=sandbox_state) as server:
        yield server


@pytest.fixture
def glue_env(sandbox: Sandbox, small_world: World, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The pipeline's environment: the sandbox, a SQLite store and a data folder under tmp_path,
    and the sync's clock at the world's reference date."""
    env = {**sandbox_env(sandbox, small_world),
           "GLUE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
           "GLUE_DATA_DIR": str(tmp_path / "tables"),
           "GLUE_VAR_DIR": str(tmp_path / "var"),
           **clock_env(small_world)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance on SQLite in a temporary DAGSTER_HOME."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst
