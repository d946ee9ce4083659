"""Errors a user can meet end the command with one message naming the setting or file and the
fix, without a traceback; `--verbose` adds the raw cause. Through the CLI, against real SQLite
and PostgreSQL stores, a real sandbox and real subprocesses where concurrency needs them."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from glue_pipeline.cli import main
from glue_pipeline.demo import sandbox_env
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.graph.errors import CertificateError, TransientGraphError
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.tls import ensure_ca
from glue_pipeline.sandbox.world import World
from glue_pipeline.settings import graph_settings_from_env
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.seed import seed_store
from glue_pipeline_tests.conftest import PG_ADMIN_DSN

GLUE_PIPELINE = str(Path(sys.executable).parent / "glue-pipeline")
FAKE_GRAPH = {"GLUE_PARTNER_TENANT_ID": "00000000-0000-0000-0000-000000000001",
              "GLUE_CLIENT_ID": "app", "GLUE_CLIENT_SECRET": "s3cret-value"}
TENANT_ID = "6f9969bc-3fcd-4a5e-9a3e-e9850fdc3174"


def run_cli(*args: str, verbose: bool = False) -> Result:
    return CliRunner().invoke(main, [*(["--verbose"] if verbose else []), *args])


def assert_clear_failure(result: Result, *expected: str, raw: str) -> None:
    """The command ended through the CLI's own error path (not an exception escaping it), with
    every expected text, no traceback, and not the raw cause."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0, result.output
    for text in expected:
        assert text in result.output, f"{text!r} not in:\n{result.output}"
    assert "Traceback" not in result.output, result.output
    assert raw not in result.output, result.output


def assert_verbose_adds(result: Result, raw: str) -> None:
    assert isinstance(result.exception, SystemExit) and result.exit_code != 0, repr(result.exception)
    assert raw in result.output, result.output


@pytest.fixture
def offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Graph settings that are never used (the commands fail before any call), folders under
    tmp_path, and a SQLite store there."""
    env = {**FAKE_GRAPH, "GLUE_VAR_DIR": str(tmp_path / "var"), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "GLUE_DATA_DIR": str(tmp_path / "tables"), "GLUE_CACHE_DIR": str(tmp_path / "cache"),
           "GLUE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GLUE_CONFIG", raising=False)
    monkeypatch.delenv("GLUE_CLIENT_SECRET_FILE", raising=False)
    return env


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A regular file: a path under it can be neither created nor written, even by root."""
    path = tmp_path / "afile"
    path.write_text("not a folder\n")
    return path


def _admin(statement: str) -> None:
    admin = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(statement)
    finally:
        admin.close()


def _other_database(pg_url: str) -> str:
    return make_url(pg_url).set(database=make_url(pg_url).database + "_missing").render_as_string(False)


# ------------------------------------------------------------------ 1. GLUE_STORE_URL checked early

STORE_COMMANDS = [["sync"], ["status"], ["match", "list"], ["match", "ignore", TENANT_ID], ["source", "list"],
                  ["source", "disconnect", "partner"], ["store", "init"], ["doctor"], ["demo"]]

# (name, the URL as a function of (a_file, a PostgreSQL database's URL), what the message says, the
# raw cause)
BAD_STORES = [
    ("dead port", lambda f, pg: "postgresql+psycopg2://postgres@127.0.0.1:1/x",
     ["refused the connection (127.0.0.1:1)", "start the database server, or set its host and port in "
      "GLUE_STORE_URL"], "psycopg2.OperationalError"),
    ("missing database", lambda f, pg: _other_database(pg),
     ["_missing does not exist", "create it (createdb"], "psycopg2.OperationalError"),
    ("path under a file", lambda f, pg: f"sqlite:///{f}/store.db",
     ["cannot create the store file", "is a file, not a folder",
      "point GLUE_STORE_URL at a file in a writable folder"], "FileExistsError"),
    ("folder as file", lambda f, pg: f"sqlite:///{f.parent}",
     ["cannot open or create the store file", "point GLUE_STORE_URL at a file in a writable folder"],
     "sqlite3.OperationalError"),
    ("unknown scheme", lambda f, pg: "mysqlx://user@db.example/store",
     ["unknown database dialect 'mysqlx'", "set GLUE_STORE_URL to sqlite:///"], "NoSuchModuleError"),
    ("not a url", lambda f, pg: "not a url",
     ["GLUE_STORE_URL='not a url' is not a database URL", "set GLUE_STORE_URL to sqlite:///"], "ArgumentError"),
]


@pytest.mark.parametrize("name,url,expected,raw", BAD_STORES, ids=[b[0] for b in BAD_STORES])
def test_a_bad_store_url_is_named_with_the_fix_by_every_command_that_uses_the_store(
        name: str, url, expected: list[str], raw: str, offline_env: dict, a_file: Path,  # type: ignore[no-untyped-def]
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    pg = request.getfixturevalue("pg_database") if name == "missing database" else "postgresql://unused/x"
    store_url = url(a_file, pg)
    monkeypatch.setenv("GLUE_STORE_URL", store_url)
    for command in STORE_COMMANDS:
        result = run_cli(*command)
        assert_clear_failure(result, "GLUE_STORE_URL", *expected, raw=raw)
        assert "discovery failed" not in result.output
    assert_verbose_adds(run_cli("status", verbose=True), raw)
    assert not Path(offline_env["DAGSTER_HOME"]).exists(), "the store is checked before Dagster starts"


def test_a_password_in_the_store_url_is_not_shown(offline_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_STORE_URL", "postgresql+psycopg2://glue:hunter2-secret@127.0.0.1:1/store")
    result = run_cli("status")
    assert_clear_failure(result, "GLUE_STORE_URL=postgresql+psycopg2://glue:***@127.0.0.1:1/store",
                         raw="hunter2-secret")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sql_errors_never_carry_row_values(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_database") if backend == "postgres" else f"sqlite:///{tmp_path / 's.db'}"
    engine = make_engine(url)
    upgrade_store(engine)
    now = dt.datetime.now(dt.UTC)
    row = {"id": 1, "name": "Customer Secret Holdings Ltd", "created_at": now, "updated_at": now}
    with engine.begin() as conn:
        conn.execute(insert(schema.organizations).values(**row))
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(insert(schema.organizations).values(**row))
    engine.dispose()
    assert "INSERT INTO organizations" in str(caught.value)
    assert "Customer Secret Holdings" not in str(caught.value)


# ------------------------------------------------------------------ 2. DAGSTER_HOME


def test_an_unusable_dagster_home_is_named_with_the_fix(offline_env: dict, a_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(a_file / "dagster"))
    result = run_cli("sync")
    assert_clear_failure(result, f"DAGSTER_HOME={a_file / 'dagster'} cannot be used",
                         f"{a_file} is a file, not a folder", "point DAGSTER_HOME at a folder this user can write",
                         raw="NotADirectoryError")
    assert_verbose_adds(run_cli("sync", verbose=True), "NotADirectoryError")


# ------------------------------------------------------------------ 3. a read-only store


def _read_only_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest, world: World) -> str:
    """A store with a world's organizations and one tenant, then opened read-only."""
    url = request.getfixturevalue("pg_database") if backend == "postgres" else f"sqlite:///{tmp_path / 'ro.db'}"
    engine = make_engine(url)
    seed_store(engine, world.store)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(schema.tenants).values(tenant_id=world.tenants[0].id, first_seen_at=now,
                                                   last_seen_at=now, display_name=world.tenants[0].display_name))
    engine.dispose()
    if backend == "sqlite":
        return f"sqlite:///file:{tmp_path / 'ro.db'}?mode=ro&uri=true"
    name = make_url(url).database
    _admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    return url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_match_commands_on_a_read_only_store_say_so(backend: str, offline_env: dict, small_world: World,
                                                    tmp_path: Path, request: pytest.FixtureRequest,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_STORE_URL", _read_only_store(backend, tmp_path, request, small_world))
    tenant = small_world.tenants[0]
    organization = str(small_world.store.organizations[0].id)
    raw = "attempt to write a readonly database" if backend == "sqlite" else "cannot execute"
    fix = "opened without mode=ro" if backend == "sqlite" else "SET default_transaction_read_only = off"
    for command in (["ignore", tenant.id], ["unignore", tenant.id], ["set", tenant.id, organization],
                    ["create-org", tenant.id], ["accept", tenant.display_name],
                    ["link", tenant.id, tenant.users[0].id, "1"], ["approve", tenant.id, tenant.users[0].id]):
        result = run_cli("match", *command)
        assert_clear_failure(result, "GLUE_STORE_URL=", "the store refused the write because it is read-only",
                             fix, raw=raw)
    assert run_cli("match", "list").exit_code == 0, "reading a read-only store still works"
    assert_verbose_adds(run_cli("match", "ignore", tenant.id, verbose=True), raw)


# ------------------------------------------------------------------ 4. a configuration file not in UTF-8


def test_a_configuration_file_not_in_utf8_names_the_file_the_byte_and_the_fix(
        offline_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "glue.yaml"
    config.write_bytes(b"sync:\n  users: {include_guests: \xff}\n")
    monkeypatch.setenv("GLUE_CONFIG", str(config))
    for command in (["sync"], ["source", "list"], ["doctor"]):
        result = run_cli(*command)
        assert_clear_failure(result, f"the configuration file {config} is not UTF-8 text",
                             "the byte at offset 32 (0xff), line 2 column 27", "save it as UTF-8",
                             raw="UnicodeDecodeError")
    assert_verbose_adds(run_cli("sync", verbose=True), "UnicodeDecodeError")


def test_a_secret_file_not_in_utf8_is_named_without_showing_its_bytes(
        offline_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"abc\xe9def\n")
    monkeypatch.delenv("GLUE_CLIENT_SECRET")
    monkeypatch.setenv("GLUE_CLIENT_SECRET_FILE", str(secret))
    result = run_cli("sync")
    assert_clear_failure(result, f"GLUE_CLIENT_SECRET_FILE={secret} is not UTF-8 text", "offset 3",
                         "save it as UTF-8", raw="0xe9")
    assert "0xe9" not in run_cli("sync", verbose=True).output, "not even --verbose shows a secret's bytes"


# ------------------------------------------------------------------ 5. a CA file that is not the server's


@pytest.fixture
def wrong_ca(glue_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GLUE_CA_FILE set to a CA that did not sign the sandbox's certificate."""
    ca_file = ensure_ca(tmp_path / "another-ca").ca_file
    monkeypatch.setenv("GLUE_CA_FILE", str(ca_file))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("GLUE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GLUE_CONFIG", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return ca_file


def test_a_ca_file_that_did_not_sign_the_server_is_named_and_not_transient(
        wrong_ca: Path, small_world: World) -> None:
    result = run_cli("sync")
    assert_clear_failure(result, f"the server's certificate is not signed by the CA in GLUE_CA_FILE={wrong_ca}",
                         "point GLUE_CA_FILE at the CA that signed the server's certificate",
                         "or unset it to trust the system CAs, which include Microsoft's public CAs",
                         raw="SSLCertVerificationError")
    assert "re-run later" not in result.output and "later" not in result.output
    assert_verbose_adds(run_cli("sync", verbose=True), "SSLCertVerificationError")

    client = GraphClient(graph_settings_from_env())
    with pytest.raises(CertificateError) as caught:
        client.token(small_world.tenants[0].id)
    assert not isinstance(caught.value, TransientGraphError), "a wrong CA does not pass by itself"


# ------------------------------------------------------------------ 6. the store gone mid-run


def _cli_env(glue_env: dict, tmp_path: Path, store_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GLUE_CONFIG")}
    return {**env, **glue_env, "GLUE_STORE_URL": store_url, "DAGSTER_HOME": str(tmp_path / "dagster"),
            "GLUE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}


def _drop(url: str) -> None:
    _admin(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')


def _delete_sqlite(url: str) -> None:
    path = Path(make_url(url).database or "")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("backend,verbose", [("sqlite", False), ("postgres", False), ("postgres", True)])
def test_a_store_gone_mid_run_ends_the_sync_with_the_cause_and_the_tenants_not_written(
        backend: str, verbose: bool, glue_env: dict, sandbox: Sandbox, small_world: World, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_database") if backend == "postgres" else glue_env["GLUE_STORE_URL"]
    seed_store(make_engine(url), small_world.store)
    reachable = [t for t in small_world.tenants if t.relationship != "none"]
    fast = next(t for t in reachable if t.consent == "granted")
    slow = [t.id for t in reachable if t.id != fast.id and t.consent == "granted"]
    # Every Graph answer for the other tenants waits, so the store goes while they are read.
    sandbox.faults.fault_tenants = set(slow)
    sandbox.faults.slow_s, sandbox.faults.slow_rate = 1.0, 1.0

    process = subprocess.Popen([GLUE_PIPELINE, *(["--verbose"] if verbose else []), "sync"],
                               env=_cli_env(glue_env, tmp_path, url), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if re.match(rf"tenants done \d+/\d+: {re.escape(fast.display_name)} (synced|held)", line):
            (_drop if backend == "postgres" else _delete_sqlite)(url)
            break
    output.append(process.stdout.read())
    text = "".join(output)
    assert process.wait(timeout=120) != 0, text

    assert "the store went away while the sync ran: GLUE_STORE_URL=" in text, text
    assert "run `glue-pipeline sync` again" in text
    if backend == "postgres":
        assert f"the database {make_url(url).database} does not exist" in text
        listed = text.split("tenants were not written", 1)[1]
        assert all(f"  - {tenant_id}" in listed for tenant_id in slow), text
        assert f"  - {fast.id}" not in listed, "the tenant written before the drop is not reported"
    else:
        assert "the store file was deleted or replaced" in text
    if verbose:
        assert "psycopg2.OperationalError" in text
    else:
        assert "Traceback" not in text and "OperationalError" not in text and "sqlalche.me" not in text, text


# ------------------------------------------------------------------ 7. two syncs on a new DAGSTER_HOME


def test_two_syncs_started_at_once_on_a_new_dagster_home_both_succeed(tmp_path: Path) -> None:
    world = generate_world(seed=5, tenants=2, users=30, revoked=0)
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    seed_store(make_engine(store_url), world.store)
    with Sandbox(SandboxConfig(world=world), state_dir=tmp_path / "sandbox") as server:
        env = _cli_env({**sandbox_env(server, world), "GLUE_VAR_DIR": str(tmp_path / "var"),
                        "GLUE_DATA_DIR": str(tmp_path / "tables")}, tmp_path, store_url)
        assert not Path(env["DAGSTER_HOME"]).exists()
        syncs = [subprocess.Popen([GLUE_PIPELINE, "sync"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=180)[0] for p in syncs]
    assert [p.returncode for p in syncs] == [0, 0], "\n\n".join(outputs)
    assert all("already exists" not in o and "Traceback" not in o for o in outputs)
    assert all("tenants: 2 (" in o for o in outputs), outputs
