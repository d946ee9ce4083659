"""End to end: the sandbox over HTTPS, the Dagster jobs on a real instance, the store on SQLite
and on PostgreSQL (store and instance both on PostgreSQL in that case)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest
from sqlalchemy import Engine, select

from glue_pipeline.report import summarize
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline_tests.stores import BOOKKEEPING, partition_of, partition_states

# Tables and columns that describe the documentation itself (not when the sync last looked).
VOLATILE_COLUMNS = {"last_seen_at", "first_seen_at", "updated_at", "created_at"}


def store_snapshot(engine: Engine) -> dict[str, list[tuple]]:
    snapshot = {}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            if table.name in BOOKKEEPING:
                continue
            columns = [c for c in table.columns if c.name not in VOLATILE_COLUMNS]
            snapshot[table.name] = sorted(tuple(map(str, r)) for r in conn.execute(select(*columns)))
    return snapshot


def full_sync(instance: dg.DagsterInstance) -> list:
    result = run_discovery(instance)
    assert result.success, result.error
    return run_sync(instance)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, glue_env: dict, tmp_path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, dg.DagsterInstance]]:
    """(store engine, Dagster instance), both on SQLite or both on PostgreSQL, the instance built
    from the project's own dagster.yaml / dagster-postgres.yaml as a deployment would."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    store_url = glue_env["GLUE_STORE_URL"]
    if request.param == "postgres":
        store_url = request.getfixturevalue("pg_database")
        monkeypatch.setenv("GLUE_STORE_URL", store_url)
        monkeypatch.setenv("DAGSTER_PG_URL", store_url.replace("postgresql+psycopg2://", "postgresql://"))
    instance = get_instance()
    expected = "PostgresRunStorage" if request.param == "postgres" else "SqliteRunStorage"
    assert type(instance.run_storage).__name__ == expected
    try:
        yield make_engine(store_url), instance
    finally:
        instance.dispose()


def emitted_text(instance: dg.DagsterInstance, engine: Engine) -> str:
    """Everything the runs logged in Dagster and everything in the store, as one text."""
    parts = []
    for run in instance.get_runs():
        parts += [str(entry) for entry in instance.all_logs(run.run_id)]
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            parts += [str(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(parts)


def test_full_sync_writes_contacts_and_a_rerun_changes_nothing(
        backend: tuple[Engine, dg.DagsterInstance], small_world: World) -> None:
    engine, instance = backend
    assert seed_store(engine, small_world.store)
    seeded_contacts = len(small_world.store.contacts)
    revoked = {t.id for t in small_world.tenants if t.consent == "revoked"}
    assert len(revoked) == 1

    runs = full_sync(instance)
    assert len(runs) == 1, "all tenants sync in one run over the partition range"
    assert not runs[0].success, "the revoked tenant fails the run"
    first = summarize(engine, [runs[0].run_id])
    assert first.tenants == len(small_world.tenants)
    assert first.failed == 1 and first.created > 0
    tenant_id, _name, message = first.errors[0]
    assert tenant_id in revoked
    assert "AADSTS700016" in message and "grant admin consent" in message

    with engine.connect() as conn:
        contacts = conn.execute(select(schema.contacts.c.id)).all()
        links = conn.execute(select(schema.contact_microsoft.c.tenant_id)).scalars().all()
        matched = dict(conn.execute(select(schema.tenant_matches.c.tenant_id,
                                           schema.tenant_matches.c.status)).all())
    assert len(contacts) == seeded_contacts + first.created
    assert revoked.isdisjoint(links), "nothing is written for the failed tenant"
    assert {t for t, s in matched.items() if s == "matched"} == set(links)

    materialized, failed = partition_states(instance)
    assert failed == revoked
    assert materialized == {t.id for t in small_world.tenants} - revoked

    before = store_snapshot(engine)
    second = summarize(engine, [r.run_id for r in full_sync(instance)])
    assert (second.created, second.updated) == (0, 0)
    assert second.unchanged == first.created + first.updated + first.unchanged
    assert store_snapshot(engine) == before
    assert small_world.app.client_secret not in emitted_text(instance, engine)


def test_one_tenant_rerun_alone(glue_env: dict, small_world: World, instance: dg.DagsterInstance) -> None:
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)
    result = run_discovery(instance)
    assert result.success, result.error
    tenant = next(t for t in small_world.tenants if t.consent == "granted")
    runs = run_sync(instance, [tenant.id])
    assert [r.success for r in runs] == [True]
    summary = summarize(engine, [runs[0].run_id])
    assert summary.tenants == 1
    materialized, failed = partition_states(instance)
    assert materialized == {tenant.id} and not failed


def test_cli_sync_then_status_then_rerun_of_the_failed_tenant(
        glue_env: dict, small_world: World, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from glue_pipeline.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    runner = CliRunner()
    assert runner.invoke(main, ["store", "init"]).exit_code == 0
    revoked = next(t for t in small_world.tenants if t.consent == "revoked")
    result = runner.invoke(main, ["sync"])
    assert result.exit_code == 1, "a failed tenant makes the command fail"
    assert f"tenants: {len(small_world.tenants)} (" in result.output and "1 failed" in result.output
    assert f"glue-pipeline sync --tenant {revoked.id}" in result.output
    status = runner.invoke(main, ["status"])
    assert status.exit_code == 0 and "1 failed" in status.output and "AADSTS700016" in status.output
    rerun = runner.invoke(main, ["sync", "--tenant", revoked.id])
    # The same cause as in the first run: the tenant is parked, so its run succeeds (still failed).
    assert rerun.exit_code == 0 and "tenants: 1 (0 matched, 0 unmatched, 1 failed)" in rerun.output
    unknown = runner.invoke(main, ["sync", "--tenant", "not-a-tenant"])
    assert unknown.exit_code != 0 and "no tenant 'not-a-tenant' is known" in unknown.output
    by_name = runner.invoke(main, ["sync", "--tenant", revoked.display_name])
    assert by_name.exit_code == 0 and "tenants: 1 (0 matched, 0 unmatched, 1 failed)" in by_name.output
    key = partition_of(revoked.id)
    assert runner.invoke(main, ["sync", "--tenant", key]).exit_code == 0, "the partition key names it too"


def test_a_table_preview_is_a_markdown_table_of_the_first_rows_with_cells_escaped() -> None:
    import pandas as pd

    from glue_pipeline.tables import preview

    frame = pd.DataFrame({"user": [f"user {i}" for i in range(25)], "reason": ["a | b\nc"] * 25})
    lines = preview(frame).splitlines()
    assert lines[:2] == ["| user | reason |", "|---|---|"]
    assert len(lines) == 2 + 10 + 2 and lines[2] == "| user 0 | a \\| b c |"
    assert lines[-2:] == ["", "showing 10 of 25 rows"]
    assert preview(frame.head(0)) == "(empty)"
