"""Permanent failures are parked, not repeated: a tenant's failure cause is classified where it is
recorded; the run that first meets a permanent cause fails, later runs where the tenant is the only
failure succeed with a warning, any other failure still fails the run; the failed partition shows
the tenant's name, cause and fix; the check no_parked_tenants lists the parked tenants.

The classification is a pure function tested error by error; the store's reads run on SQLite and
PostgreSQL; the runs go through the sandbox over real HTTPS and a real Dagster instance.
"""

from __future__ import annotations

import multiprocessing
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from markdown_it import MarkdownIt
from sqlalchemy import Engine, select, text, update

from glue_pipeline.demo import sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.graph.errors import (
    CAUSE_FIXES,
    CAUSE_TEXT,
    GraphError,
    IdentityError,
    PagingError,
    certificate_error,
    failure_cause,
    graph_error,
    identity_error,
)
from glue_pipeline.options import SyncOptions
from glue_pipeline.render import terminal_text
from glue_pipeline.runner import run_overview, run_sync
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import runs, schema, writer
from glue_pipeline.store.engine import make_engine, write_transaction
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.parked import PERMANENT_CAUSES, parked_tenants, previous_causes
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import TenantOutcome, discover_into, sync_context, sync_tenant, tenant_result
from glue_pipeline.vocabulary import FailureCause, TenantStatus, values
from glue_pipeline.workers import TenantDone
from glue_pipeline_tests.served import served_world
from glue_pipeline_tests.stores import partition_of, partition_states, sync_every_partition

TENANT = "11111111-2222-3333-4444-555555555555"
ASSET = dg.AssetKey("tenant_contacts")
HOSTILE_NAME = "Evil\x1b[2J Corp\n| forged | row | [click](https://evil.example) <img src=x> `code`"
CONTROLS = {*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0))}
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table"])


# --------------------------------------------------------------------------- classification


def _identity(code: str, message: str = "something happened.") -> IdentityError:
    """The error msal's answer for `code` becomes, as the identity platform words it."""
    return identity_error(TENANT, "token", {"error": "invalid_request", "error_description":
                                            f"{code}: {message}\r\nTrace ID: 0f1e Correlation ID: 9a8b"})


CASES: dict[str, tuple[BaseException, bool, FailureCause]] = {
    # name -> (the error, store_failure, its cause)
    "app not found (consent revoked)": (_identity("AADSTS700016", "Application with identifier 'x' was not "
                                                  "found in the directory 'y'."), False, "consent_revoked"),
    "no service principal": (_identity("AADSTS7000229", "The client application is missing service "
                                       "principal in the tenant."), False, "consent_revoked"),
    "consent code on a plain IdentityError": (IdentityError(TENANT, "token", "AADSTS700016", "gone", "fix"),
                                              False, "consent_revoked"),
    "tenant not found": (_identity("AADSTS90002", "Tenant 'x' not found."), False, "tenant_gone"),
    "permission denied": (graph_error(TENANT, "/users", 403, {"error": {
        "code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}}),
        False, "permission_missing"),
    "throttled after every retry": (graph_error(TENANT, "/users", 429, {"error": {"code": "TooManyRequests"}}),
                                    False, "transient"),
    "server errors after every retry": (graph_error(TENANT, "/users", 503, {}), False, "transient"),
    "certificate": (certificate_error(TENANT, "token", "unable to get local issuer certificate", None), False,
                    "certificate"),
    "wrong client secret": (_identity("AADSTS7000215", "Invalid client secret provided."), False, "credentials"),
    "expired client secret": (_identity("AADSTS7000222", "The provided client secret keys are expired."), False,
                              "credentials"),
    "another identity code": (_identity("AADSTS50059", "No tenant-identifying information found."), False,
                              "unexpected"),
    "looping pages": (PagingError(TENANT, "/users", "NextLinkLoop", "the same link again", "re-run"), False,
                      "unexpected"),
    "another Graph error": (graph_error(TENANT, "/users", 400, {"error": {"code": "BadRequest"}}), False,
                            "unexpected"),
    "a bug": (ValueError("boom"), False, "unexpected"),
    "the store": (RuntimeError("database is locked"), True, "store"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_error_maps_to_its_cause(case: str) -> None:
    error, store_failure, expected = CASES[case]
    assert failure_cause(error, store_failure=store_failure) == expected
    permanent = expected in ("consent_revoked", "tenant_gone", "permission_missing")
    assert (expected in PERMANENT_CAUSES) == permanent
    if isinstance(error, GraphError):
        assert failure_cause(error, store_failure=False) == expected, "a Graph error is never the store's"


def test_every_cause_has_words_and_a_fix_and_only_the_tenant_side_ones_are_permanent() -> None:
    causes = set(values(FailureCause))
    assert set(CAUSE_TEXT) == causes and set(CAUSE_FIXES) == causes
    assert all(CAUSE_TEXT[c] and CAUSE_FIXES[c] for c in causes)
    assert set(PERMANENT_CAUSES) == {"consent_revoked", "tenant_gone", "permission_missing"}
    assert {case[2] for case in CASES.values()} == causes, "every cause has a case above"


def test_an_outcome_with_its_cause_crosses_a_process_pipe() -> None:
    outcome = TenantOutcome(TENANT, "Contoso", "failed", error="tenant x: ... Fix: ...", cause="consent_revoked")
    sending, receiving = multiprocessing.get_context("spawn").Pipe()
    try:
        sending.send(TenantDone(outcome))
        received = receiving.recv()
    finally:
        sending.close()
        receiving.close()
    assert isinstance(received, TenantDone)
    assert received.outcome.cause == "consent_revoked" and not received.outcome.transient
    assert received.outcome.result()["cause"] == "consent_revoked"
    assert TenantOutcome(TENANT, "x", "failed", cause="transient").transient, "transient failures are retried"


# --------------------------------------------------------------------------- the store's reads


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (str(request.getfixturevalue("pg_database")) if request.param == "postgres"
           else f"sqlite:///{tmp_path / 'store.db'}")
    engine = make_engine(url)
    upgrade_store(engine)
    try:
        yield engine
    finally:
        engine.dispose()


T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _results(engine: Engine, history: dict[str, list[tuple[TenantStatus, FailureCause | None]]]) -> None:
    """Each tenant's results in runs r0, r1, ... an hour apart: (status, cause)."""
    with write_transaction(engine) as conn:
        for tenant_id in history:
            writer.upsert_tenant(conn, {"tenant_id": tenant_id, "display_name": f"name of {tenant_id}"}, T0)
        for tenant_id, results in history.items():
            for hour, (status, cause) in enumerate(results):
                result = tenant_result(tenant_id, status, error=f"failed: {cause}" if cause else None, cause=cause)
                runs.write_result(conn, f"r{hour}", result, T0 + timedelta(hours=hour))


def test_parked_tenants_are_those_whose_last_sync_failed_for_a_permanent_cause(store: Engine) -> None:
    _results(store, {
        "again": [("synced", None), ("failed", "consent_revoked"), ("failed", "consent_revoked")],
        "first": [("synced", None), ("synced", None), ("failed", "permission_missing")],
        "recovered": [("failed", "consent_revoked"), ("failed", "consent_revoked"), ("synced", None)],
        "cause changed": [("failed", "tenant_gone"), ("failed", "transient"), ("failed", "tenant_gone")],
        "transient": [("failed", "consent_revoked"), ("failed", "transient"), ("failed", "transient")],
        "vanished": [("failed", "tenant_gone"), ("failed", "tenant_gone"), ("failed", "tenant_gone")],
        "paused": [("failed", "consent_revoked"), ("failed", "consent_revoked"), ("failed", "consent_revoked")],
    })
    with write_transaction(store) as conn:
        conn.execute(update(schema.tenants).where(schema.tenants.c.tenant_id == "vanished").values(vanished_at=T0))
        conn.execute(update(schema.tenants).where(schema.tenants.c.tenant_id == "paused").values(paused_at=T0))

    parked = {p.tenant_id: p for p in parked_tenants(store)}

    assert set(parked) == {"again", "first", "cause changed"}
    assert (parked["again"].cause, parked["again"].since, parked["again"].failed_runs) == (
        "consent_revoked", T0 + timedelta(hours=1), 2)
    assert (parked["first"].cause, parked["first"].since, parked["first"].failed_runs) == (
        "permission_missing", T0 + timedelta(hours=2), 1)
    assert (parked["cause changed"].since, parked["cause changed"].failed_runs) == (T0 + timedelta(hours=2), 1), \
        "since when it fails for its present cause"
    assert parked["again"].display_name == "name of again" and parked["again"].error == "failed: consent_revoked"
    assert parked["again"].last_failed_at == T0 + timedelta(hours=2)

    before = previous_causes(store, "r2", ["again", "first", "recovered", "cause changed", "never synced"])
    assert before == {"again": "consent_revoked", "first": None, "recovered": "consent_revoked",
                      "cause changed": "transient"}, "the result before run r2; none for a tenant without one"


# --------------------------------------------------------------------------- through Dagster


@dataclass
class Bench:
    world: World
    sandbox: Sandbox
    engine: Engine
    instance: dg.DagsterInstance
    revoked: str  # the tenant whose consent is revoked (HOSTILE_NAME)
    other: str  # a tenant that syncs unless faults say otherwise


@pytest.fixture
def bench(tmp_path: Path, sandbox_state: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    """Four tenants, all consented in the world; the one named HOSTILE_NAME has its consent revoked
    by the sandbox's faults (so it can be given back); a SQLite store; a Dagster instance."""
    world = generate_world(seed=31, tenants=4, users=80, revoked=0)
    world.tenants[1].display_name = HOSTILE_NAME
    with served_world(world, tmp_path, sandbox_state, monkeypatch, GLUE_GRAPH_TENANT_CONCURRENCY="1") as served:
        revoked, other = world.tenants[1].id, world.tenants[2].id
        served.sandbox.faults.revoked.add(revoked)
        yield Bench(world, served.sandbox, served.engine, served.instance, revoked, other)


def _failed_partitions(instance: dg.DagsterInstance) -> set[str]:
    """The tenants whose partitions Dagster's partition status shows as failed (what the UI reads)."""
    return partition_states(instance)[1]


def _observation(instance: dg.DagsterInstance, run_id: str, tenant_id: str) -> dg.AssetObservation:
    """The observation the run left on the tenant's partition (shown on the partition's page)."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[partition_of(tenant_id)]), limit=20).records
    (observation,) = [r.event_log_entry.asset_observation for r in records
                      if r.event_log_entry.run_id == run_id and r.event_log_entry.asset_observation]
    return observation


def _warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.level >= 30 and e.dagster_event is None]


def _check(instance: dg.DagsterInstance) -> tuple[bool, str | None, dict[str, object]]:
    """Refresh the overview; no_parked_tenants' result: passed, description, metadata."""
    outcome = run_overview(instance)
    assert outcome.success, outcome.error
    (evaluation,) = [e.dagster_event.asset_check_evaluation_data for e in instance.all_logs(outcome.run_id)
                     if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
                     and e.dagster_event.asset_check_evaluation_data.check_name == "no_parked_tenants"]
    return evaluation.passed, evaluation.description, {k: v.value for k, v in evaluation.metadata.items()}


def _inert(markdown: str, rows: int = 0) -> None:
    """Markdown that renders no link, image, HTML or code of a tenant's making, and a table only
    where one is meant (a header and `rows` rows)."""
    html = MARKDOWN.render(markdown)
    assert not re.search(r"<(a|img|code)\b", html), html
    assert html.count("<tr>") == (rows + 1 if rows else 0), html


def _unescaped(markdown: str) -> str:
    """The text a markdown line shows once its backslash escapes are read."""
    return re.sub(r"\\(.)", r"\1", markdown)


def _result(engine: Engine, run_id: str, tenant_id: str) -> tuple[str, str | None]:
    results = schema.sync_results
    with engine.connect() as conn:
        row = conn.execute(select(results.c.status, results.c.cause)
                           .where(results.c.run_id == run_id, results.c.tenant_id == tenant_id)).one()
    return row.status, row.cause


def _stored_name(engine: Engine, tenant_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(select(schema.tenants.c.display_name)
                            .where(schema.tenants.c.tenant_id == tenant_id)).scalar_one()


def test_a_permanent_failure_fails_once_then_is_parked_until_the_tenant_syncs(bench: Bench) -> None:
    instance, engine, revoked, other = bench.instance, bench.engine, bench.revoked, bench.other
    name = _stored_name(engine, revoked)
    assert "[click]" in name and "|" in name, "markdown in the name survives its cleaning"
    total = len(bench.world.tenants)

    # 1. The first run that meets the revoked consent fails, naming the tenant, its cause and fix.
    [first] = run_sync(instance)
    assert not first.success
    error = first.error or ""
    assert f"1 of {total} tenants failed;" in error, error
    (line,) = [ln for ln in error.splitlines() if f"({revoked})" in ln]
    assert line.startswith(f"- {terminal_text(name)} ({revoked}): consent_revoked: ")
    assert "AADSTS700016" in line and "grant admin consent" in line and "parked" not in line
    assert not set(error.replace("\n", "")) & CONTROLS, "one line per tenant, no escape code"
    assert _result(engine, first.run_id, revoked) == ("failed", "consent_revoked")
    assert _result(engine, first.run_id, other) in {("synced", None), ("held", None)}
    assert _failed_partitions(instance) == {revoked}
    observation = _observation(instance, first.run_id, revoked)
    assert observation.metadata["parked"].value is False
    assert observation.metadata["cause"].value == "consent_revoked"
    passed, description, metadata = _check(instance)
    assert not passed and revoked in str(metadata["rows"]), "listed from its first failure on"

    # 2. The next sync of every tenant leaves the parked tenant out: it succeeds, writes nothing for
    #    it, and the tenant's partition stays failed (no later run planned it).
    runs = run_sync(instance)
    assert runs and all(r.success for r in runs), [r.error for r in runs]
    assert all(revoked not in r.tenant_ids for r in runs)
    assert {t for r in runs for t in r.tenant_ids} == {t.id for t in bench.world.tenants} - {revoked}
    assert _failed_partitions(instance) == {revoked}

    # 3. Named, it is synced again; failing for the same cause, it is parked: the run succeeds
    #    with a warning naming it, and its partition shows its name, cause and fix.
    [second] = run_sync(instance, [revoked])
    assert second.success, second.error
    assert _result(engine, second.run_id, revoked) == ("failed", "consent_revoked")
    (warning,) = [w for w in _warnings(instance, second.run_id) if "parked" in w]
    assert "1 of 1 tenants failed for a permanent cause" in warning
    (line,) = [ln for ln in warning.splitlines() if f"({revoked})" in ln]
    assert line.startswith(f"- {terminal_text(name)} ({revoked}): consent_revoked, parked: ")
    assert "grant admin consent" in line and not set(warning.replace("\n", "")) & CONTROLS
    observation = _observation(instance, second.run_id, revoked)
    description = observation.description or ""
    assert _unescaped(description) == (f"{terminal_text(name)}: {CAUSE_TEXT['consent_revoked']} (consent_revoked). "
                                       f"Fix: {CAUSE_FIXES['consent_revoked']}")
    assert not set(description) & CONTROLS
    _inert(description)
    assert {k: observation.metadata[k].value for k in ("tenant_id", "cause", "parked", "display_name")} == {
        "tenant_id": revoked, "cause": "consent_revoked", "parked": True, "display_name": terminal_text(name)}
    assert observation.metadata["fix"].value == CAUSE_FIXES["consent_revoked"]

    # 4. The check lists it: name, id, cause, fix and since when (its first failed result).
    passed, description, metadata = _check(instance)
    assert not passed and (description or "").startswith("Tenants failing for a permanent cause: 1. ")
    with engine.connect() as conn:
        since = conn.execute(select(schema.sync_results.c.finished_at).where(
            schema.sync_results.c.run_id == first.run_id, schema.sync_results.c.tenant_id == revoked)).scalar_one()
    shown = _unescaped(description or "")
    assert f"({revoked}): consent_revoked since {since:%Y-%m-%d %H:%M} UTC" in shown
    assert CAUSE_FIXES["consent_revoked"] in shown and terminal_text(name) in shown
    _inert(description or "")
    rows = str(metadata["rows"])
    _inert(rows, rows=1)
    assert revoked in rows and rows.rstrip().endswith("| 2 |"), "two failed runs in a row"

    # 5. A run over every partition (as a backfill from the UI makes): a transient failure beside
    #    the known one fails it; each tenant is listed once.
    faults = bench.sandbox.faults
    faults.fault_tenants.add(other)
    faults.rate_429, faults.retry_after_s = 1.0, 0.0
    third = sync_every_partition(instance)
    faults.rate_429 = 0
    faults.fault_tenants.clear()
    assert not third.success
    error = third.error or ""
    assert f"2 of {total} tenants failed (1 of them parked" in error, error
    lines = [ln for ln in error.splitlines() if ln.startswith("- ")]
    assert len(lines) == 2
    assert any(f"({revoked}): consent_revoked, parked: " in ln for ln in lines)
    assert any(f"({other}): transient: " in ln and "TooManyRequests" in ln for ln in lines)
    assert _result(engine, third.run_id, other) == ("failed", "transient")
    assert _failed_partitions(instance) == {revoked, other}
    assert _observation(instance, third.run_id, other).metadata["parked"].value is False

    # 6. Consent given back: named, the tenant syncs and is no longer parked; the check passes and
    #    the next sync of every tenant takes it again.
    faults.revoked.discard(revoked)
    fourth, _ = run_sync(instance, [revoked, other])
    assert fourth.success, fourth.error
    assert _result(engine, fourth.run_id, revoked)[0] != "failed"
    assert parked_tenants(engine) == []
    runs = run_sync(instance)
    assert len(runs) == 1 and runs[0].success and revoked in runs[0].tenant_ids
    assert not _failed_partitions(instance)
    passed, description, metadata = _check(instance)
    assert passed and description is None and metadata == {"rows": "(none)"}


def test_a_store_that_refuses_the_writes_is_the_store_cause(tmp_path: Path, sandbox_state: Path) -> None:
    """Through sync_tenant on a real SQLite store that lost a table: the failure is recorded with
    the cause store, and is not a permanent one."""
    world = generate_world(seed=32, tenants=2, users=30, revoked=0)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    seed_store(engine, world.store)
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        client = GraphClient(sandbox_settings(sandbox, world, max_retries=1), backoff_base_s=0.001)
        tenant_id = discover_into(engine, client)[0]
        run_id = f"test-{uuid.uuid4().hex[:8]}"
        ctx = sync_context(client, engine, run_id, SyncOptions())
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE tenant_suggestions"))
        outcome = sync_tenant(ctx, tenant_id)
    assert (outcome.status, outcome.cause) == ("failed", "store")
    assert "GLUE_STORE_URL" in (outcome.error or ""), "the store's error names the setting"
    assert _result(engine, run_id, tenant_id) == ("failed", "store")
    assert outcome.cause not in PERMANENT_CAUSES
