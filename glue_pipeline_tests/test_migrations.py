"""The store's schema moves by Alembic revisions: a store of an earlier release keeps every row and
reaches the head, a new store gets exactly schema.py's tables, a store newer than the code is
refused, the CLI shows and upgrades the revision, and processes starting at once take turns."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from glue_pipeline.cli import main
from glue_pipeline.settings import ConfigError
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrate import (
    StoreRevision,
    _migration,
    check_store,
    store_revision,
    upgrade_store,
)
from glue_pipeline.store.migrations import BASELINE, HEAD, VERSION_TABLE, alembic_config
from glue_pipeline_tests import schema_10c17fa as old

PROJECT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 11, 30, 9, 15, 27, 123456, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)
T1, T2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
U1, U2, U3 = ("aaaaaaaa-0000-4000-8000-00000000000" + str(n) for n in (1, 2, 3))
SKU = "cccccccc-0000-4000-8000-000000000001"
FUTURE = "9999_from_a_newer_release"

# Rows in every table of the store as of 10c17fa, in an order its foreign keys accept.
OLD_ROWS: dict[str, list[dict[str, object]]] = {
    "organizations": [{"id": 1, "name": "Contoso Ltd", "created_at": NOW, "updated_at": LATER},
                      {"id": 2, "name": "Fabrikam Straße GmbH", "created_at": NOW, "updated_at": NOW}],
    "contacts": [{"id": 1, "organization_id": 1, "first_name": "Adele", "last_name": "Vance", "title": "CFO",
                  "location": "Berlin", "created_by": "microsoft", "created_at": NOW, "updated_at": LATER},
                 {"id": 2, "organization_id": 1, "first_name": "Zoë", "last_name": None, "title": None,
                  "location": None, "created_by": "store", "created_at": NOW, "updated_at": NOW}],
    "contact_emails": [{"id": 1, "contact_id": 1, "value": "adele@contoso.com", "label": "Work", "is_primary": True},
                       {"id": 2, "contact_id": 1, "value": "av@contoso.com", "label": "Alias", "is_primary": False}],
    "contact_phones": [{"id": 1, "contact_id": 1, "value": "+49 30 1234567", "label": "Mobile", "is_primary": True}],
    "contact_microsoft": [{
        "contact_id": 1, "tenant_id": T1, "user_id": U1, "user_principal_name": "adele@contoso.com",
        "status": "enabled", "user_type": "Member", "licenses": "Microsoft 365 E3",
        "created_in_microsoft": "2024-01-02", "last_password_change": "2026-10-01", "last_sign_in": "2026-11-29",
        "mailbox_storage_used_bytes": 53_687_091_200, "mailbox_item_count": 123_456,
        "mailbox_warning_quota_bytes": 96_636_764_160, "mailbox_quota_bytes": 107_374_182_400,
        "mailbox_last_activity": "2026-11-29", "mailbox_has_archive": False, "mailbox_report_date": "2026-11-29",
        "manage_url": "https://entra.microsoft.com/#view/user/" + U1}],
    "tenants": [{"tenant_id": T1, "display_name": "Contoso", "default_domain": "contoso.com",
                 "initial_domain": "contoso.onmicrosoft.com", "relationship": "both", "data_source": None,
                 "manage_url": "https://admin.microsoft.com/?tid=" + T1, "street": "1 Main St", "city": "Berlin",
                 "state": None, "postal_code": "10115", "country": "DE", "phone": "+49 30 1",
                 "verified_domains": "contoso.com,contoso.onmicrosoft.com", "reports_concealed": True,
                 "first_seen_at": NOW, "last_seen_at": LATER, "vanished_at": None},
                {"tenant_id": T2, "display_name": "Fabrikam", "default_domain": "fabrikam.com",
                 "initial_domain": "fabrikam.onmicrosoft.com", "relationship": "direct", "data_source": "fabrikam",
                 "manage_url": None, "street": None, "city": None, "state": None, "postal_code": None,
                 "country": None, "phone": None, "verified_domains": None, "reports_concealed": None,
                 "first_seen_at": NOW, "last_seen_at": NOW, "vanished_at": LATER}],
    "tenant_matches": [{"tenant_id": T1, "organization_id": 1, "status": "matched", "method": "exact",
                        "decided_by": None, "decided_at": None, "updated_at": NOW},
                       {"tenant_id": T2, "organization_id": None, "status": "suggested", "method": None,
                        "decided_by": None, "decided_at": None, "updated_at": NOW}],
    "tenant_suggestions": [{"tenant_id": T2, "rank": 1, "organization_id": 2,
                            "organization_name": "Fabrikam Straße GmbH", "score": 91, "reasons": "name; domain"}],
    "match_decisions": [{"id": 1, "tenant_id": T1, "action": "match", "organization_id": 1, "user_id": None,
                         "contact_id": None, "decided_by": "analyst", "decided_at": NOW, "note": "by hand"}],
    "contact_decisions": [{"tenant_id": T1, "user_id": U2, "action": "link", "contact_id": 2,
                           "decided_by": "analyst", "decided_at": LATER}],
    "held_users": [{"tenant_id": T1, "user_id": U3, "user_principal_name": "x@contoso.com", "display_name": "X",
                    "reason": "likely duplicate of contact 2", "candidate_contact_ids": "2", "updated_at": NOW}],
    "licenses": [{"tenant_id": T1, "sku_id": SKU, "organization_id": 1, "part_number": "SPE_E3",
                  "product_name": "Microsoft 365 E3", "capability_status": "Enabled", "consumed": 12, "enabled": 15,
                  "suspended": 0, "warning": 1, "unused": 3}],
    "data_sources": [{"name": "fabrikam", "connected": False, "changed_at": NOW}],
    "sync_runs": [{"run_id": "run-1", "started_at": NOW, "finished_at": LATER, "status": "succeeded",
                   "tenants_total": 2, "tenants_failed": 0}],
    "sync_results": [{"run_id": "run-1", "tenant_id": T1, "status": "synced", "organization_id": 1, "users": 3,
                      "created": 1, "updated": 0, "unchanged": 1, "held": 1, "skipped": 0, "error": None,
                      "finished_at": LATER}],
    "tenant_sync_state": [{"tenant_id": T1, "fingerprint": "f" * 64, "status": "synced", "organization_id": 1,
                           "users": 3, "contacts": 2, "held": 1, "skipped": 0, "run_id": "run-1", "synced_at": LATER}],
    "sync_log": [{"id": 1, "run_id": "run-1", "tenant_id": T1, "at": NOW, "level": "info", "action": "contact_created",
                  "contact_id": 1, "user_id": U1, "message": "created Adele Vance"},
                 {"id": 2, "run_id": "run-1", "tenant_id": None, "at": LATER, "level": "warning",
                  "action": "tenant_note", "contact_id": None, "user_id": None, "message": "a note"}],
}


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def make_old_store(engine: Engine) -> None:
    """A store as a release before versioning made it (create_all of that time), with rows."""
    old.metadata.create_all(engine)
    with engine.begin() as conn:
        for table in old.metadata.sorted_tables:
            conn.execute(insert(table), OLD_ROWS[table.name])


def old_rows(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {table.name: [tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key))]
                for table in old.metadata.sorted_tables}


def recorded_versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def shape(engine: Engine) -> dict[str, dict[str, object]]:
    """Each table's columns, primary key, foreign keys, indexes, unique and CHECK constraints, as
    the database reports them (without the version table)."""
    inspector = inspect(engine)
    return {table: {
        "columns": {c["name"]: (str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
                    for c in inspector.get_columns(table)},
        "primary key": inspector.get_pk_constraint(table),
        "foreign keys": sorted(map(repr, inspector.get_foreign_keys(table))),
        "indexes": sorted(map(repr, inspector.get_indexes(table))),
        "unique constraints": sorted(map(repr, inspector.get_unique_constraints(table))),
        "check constraints": sorted(map(repr, inspector.get_check_constraints(table))),
    } for table in inspector.get_table_names() if table != VERSION_TABLE}


def test_every_table_of_the_old_store_gets_rows() -> None:
    assert set(OLD_ROWS) == set(old.metadata.tables)


def test_head_names_the_newest_revision() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD], (
        "glue_pipeline/store/migrations/__init__.py HEAD must name the newest revision")


def test_an_old_store_keeps_every_row_and_reaches_head(engine: Engine) -> None:
    make_old_store(engine)
    before = old_rows(engine)
    assert {name: len(rows) for name, rows in before.items()} == {name: len(rows) for name, rows in OLD_ROWS.items()}
    assert store_revision(engine) == StoreRevision(BASELINE, unversioned=True)

    assert upgrade_store(engine) == StoreRevision(BASELINE, unversioned=True)
    assert old_rows(engine) == before
    assert recorded_versions(engine) == [HEAD]
    assert not store_revision(engine).pending

    assert upgrade_store(engine) == StoreRevision(HEAD)  # a second upgrade is a no-op
    assert old_rows(engine) == before
    assert recorded_versions(engine) == [HEAD]


def test_a_new_store_gets_exactly_the_tables_of_the_schema(engine: Engine) -> None:
    schema.metadata.create_all(engine)
    created = shape(engine)
    schema.metadata.drop_all(engine)
    assert shape(engine) == {}

    assert upgrade_store(engine) == StoreRevision(None)
    assert recorded_versions(engine) == [HEAD]
    assert set(created) == set(schema.metadata.tables)
    assert shape(engine) == created, (
        "schema.py and the revisions in glue_pipeline/store/migrations/versions disagree: write a revision "
        "(python -m glue_pipeline.store.migrations \"what changed\"; README 'The store')")


def test_a_store_newer_than_the_code_is_refused(store_url: str, engine: Engine,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade_store(engine)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = :future"), {"future": FUTURE})
    for attempt in (upgrade_store, store_revision, lambda _: check_store(store_url, writes=True)):
        with pytest.raises(ConfigError) as refused:
            attempt(engine)
        assert "GLUE_STORE_URL=" in str(refused.value) and FUTURE in str(refused.value)
        assert "upgrade glue-pipeline" in str(refused.value)
    monkeypatch.setenv("GLUE_STORE_URL", store_url)
    for command in (["store", "status"], ["store", "upgrade"], ["match", "list"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1 and FUTURE in result.output and "upgrade glue-pipeline" in result.output
    assert recorded_versions(engine) == [FUTURE]


def test_a_database_shared_with_dagster_keeps_both_revisions(engine: Engine) -> None:
    """Dagster's PostgreSQL storage records its revision in `alembic_version`; the store may share
    its database and never reads or writes that table."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('29b539ebc72a')"))
    assert upgrade_store(engine) == StoreRevision(None)
    assert upgrade_store(engine) == StoreRevision(HEAD)
    with engine.connect() as conn:
        assert list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) == ["29b539ebc72a"]
    assert recorded_versions(engine) == [HEAD]


def test_a_revision_may_alter_a_table_that_others_refer_to(engine: Engine) -> None:
    """What a later revision written in batch mode does: on SQLite the table is copied, dropped and
    renamed, which its referring rows survive only because the migration checks foreign keys at
    the end rather than enforcing them at each statement."""
    make_old_store(engine)
    upgrade_store(engine)
    before = old_rows(engine)
    with _migration(engine) as conn, \
            Operations(MigrationContext.configure(conn)).batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("note", sa.Text()))
        batch.alter_column("name", type_=sa.String(300), existing_nullable=False)
    assert old_rows(engine) == before
    assert "note" in {c["name"] for c in inspect(engine).get_columns("organizations")}
    with pytest.raises(IntegrityError), engine.begin() as conn:  # enforced again afterwards
        conn.execute(insert(schema.contacts).values(organization_id=99, created_by="store", created_at=NOW,
                                                    updated_at=NOW))


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_store_status_and_upgrade_on_the_command_line(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_STORE_URL", store_url)
    assert "revision: none (no tables yet)" in cli("store", "status")
    assert "upgrade pending: yes" in cli("store", "status")
    assert f"upgraded from none (no tables yet) to {HEAD}" in cli("store", "upgrade")
    status = cli("store", "status")
    assert f"revision: {HEAD}\nhead: {HEAD}\nupgrade pending: no" in status and "store upgrade" not in status
    assert f"already at the head revision {HEAD}" in cli("store", "upgrade")


def test_the_command_line_upgrades_an_old_store(store_url: str, engine: Engine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    make_old_store(engine)
    before = old_rows(engine)
    monkeypatch.setenv("GLUE_STORE_URL", store_url)
    status = cli("store", "status")
    assert f"revision: {BASELINE} (tables made before the schema was versioned" in status
    assert "upgrade pending: yes" in status and "next: `glue-pipeline store upgrade`" in status
    assert f"upgraded from {BASELINE} (tables made before the schema was versioned, not yet recorded) to {HEAD}" \
        in cli("store", "upgrade")
    assert "upgrade pending: no" in cli("store", "status")
    assert recorded_versions(engine) == [HEAD] and old_rows(engine) == before


def test_store_init_brings_an_old_store_to_head(store_url: str, engine: Engine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    make_old_store(engine)
    before = old_rows(engine)
    monkeypatch.setenv("GLUE_STORE_URL", store_url)
    assert "store ready" in cli("store", "init")
    assert recorded_versions(engine) == [HEAD] and old_rows(engine) == before


def checked_columns() -> list[tuple[sa.Table, str]]:
    """Every (table, column) schema.py keeps to a vocabulary: its CHECK constraints ck_<table>_<column>."""
    return [(table, constraint.name.removeprefix(f"ck_{table.name}_"))
            for table in schema.metadata.sorted_tables for constraint in sorted(table.constraints, key=str)
            if isinstance(constraint, sa.CheckConstraint) and isinstance(constraint.name, str)]


def test_the_vocabulary_columns_are_checked() -> None:
    assert {f"{table.name}.{column}" for table, column in checked_columns()} == {
        "contacts.created_by", "contact_microsoft.status", "tenants.relationship", "tenant_matches.status",
        "tenant_matches.method", "match_decisions.action", "contact_decisions.action", "sync_runs.status",
        "sync_results.status", "sync_results.cause", "tenant_sync_state.status", "sync_log.level",
        "sync_log.action", "configurations.created_by", "configuration_microsoft.status",
        "configuration_decisions.action"}


def test_an_upgraded_old_store_has_exactly_the_tables_of_the_schema(engine: Engine) -> None:
    """SQLite copies a table to add its CHECK constraints: its indexes, unique constraints and
    foreign keys come along, as create_all makes them."""
    make_old_store(engine)
    upgrade_store(engine)
    upgraded = shape(engine)
    schema.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
    schema.metadata.create_all(engine)
    assert upgraded == shape(engine)


def add_a_device(engine: Engine) -> None:
    """A configuration linked to an Intune device, with a decision: rows for the tables the old store lacked."""
    with engine.begin() as conn:
        organization_id = conn.execute(sa.select(sa.func.min(schema.organizations.c.id))).scalar_one()
        configuration_id = conn.execute(insert(schema.configurations).values(
            organization_id=organization_id, name="DESKTOP-1A2B3C4", created_by="microsoft", created_at=LATER,
            updated_at=LATER)).inserted_primary_key[0]
        conn.execute(insert(schema.configuration_microsoft).values(
            configuration_id=configuration_id, tenant_id=T2, device_id="d1", status="active"))
        conn.execute(insert(schema.configuration_decisions).values(
            tenant_id=T2, device_id="d1", action="link", configuration_id=configuration_id, decided_by="ann",
            decided_at=LATER))


def test_an_upgraded_store_refuses_words_outside_its_vocabularies(engine: Engine) -> None:
    make_old_store(engine)
    upgrade_store(engine)
    row = {"run_id": "run-2", "tenant_id": T2, "organization_id": None, "finished_at": LATER}
    with pytest.raises(IntegrityError, match="ck_sync_results_status"), engine.begin() as conn:
        conn.execute(insert(schema.sync_results).values(**row, status="pending"))
    add_a_device(engine)
    for table, column in checked_columns():  # every checked column holds a row
        with pytest.raises(IntegrityError, match=f"ck_{table.name}_{column}"), engine.begin() as conn:
            conn.execute(table.update().values({column: "bogus"}))
    with engine.begin() as conn:  # the words of the vocabulary still go in
        conn.execute(insert(schema.sync_results).values(**row, status="held"))
        conn.execute(schema.tenant_matches.update().where(schema.tenant_matches.c.tenant_id == T2)
                     .values(status="conflict", method=None))


def test_an_old_store_holding_an_unknown_word_is_refused_unchanged(store_url: str, engine: Engine,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The upgrade names the table, column and value and the fix, and changes nothing; once the
    rows are fixed, it goes through."""
    make_old_store(engine)
    matches, log = old.tenant_matches, old.sync_log
    with engine.begin() as conn:
        conn.execute(matches.update().where(matches.c.tenant_id == T2).values(status="pending"))
        conn.execute(log.update().values(action="tenant_exploded\x1b[2J"))
    before = old_rows(engine)
    with pytest.raises(ConfigError) as refused:
        upgrade_store(engine)
    message = str(refused.value)
    assert message.startswith("GLUE_STORE_URL=") and "0002_vocabulary_checks" in message
    assert "tenant_matches.status holds 'pending' (1 row) (allowed: matched, suggested, conflict, unmatched, " \
           "ignored)" in message
    assert "sync_log.action holds 'tenant_exploded\\x1b[2J' (2 rows)" in message and "\x1b" not in message
    assert "Nothing was changed" in message and "glue-pipeline store upgrade" in message
    assert old_rows(engine) == before
    assert store_revision(engine) == StoreRevision(BASELINE, unversioned=True)
    assert "ck_" not in repr(shape(engine))

    monkeypatch.setenv("GLUE_STORE_URL", store_url)
    for command in (["store", "upgrade"], ["match", "list"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1 and "tenant_matches.status holds 'pending'" in result.output, result.output
    with engine.begin() as conn:  # the fix the message gives
        conn.execute(matches.update().where(matches.c.status == "pending").values(status="unmatched"))
        conn.execute(log.delete().where(log.c.action == "tenant_exploded\x1b[2J"))
    assert f"to {HEAD}" in cli("store", "upgrade")
    assert recorded_versions(engine) == [HEAD]
    with engine.connect() as conn:
        assert set(conn.execute(select(matches.c.status)).scalars()) == {"matched", "unmatched"}


UPGRADE_AT_ONCE = textwrap.dedent("""
    import json, sys
    import alembic.command  # loaded before the start, so that the processes reach the store together
    from glue_pipeline.store.migrate import upgrade_store
    from glue_pipeline.store.engine import make_engine

    engine = make_engine(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    before = upgrade_store(engine)
    print(json.dumps({"current": before.current, "pending": before.pending}), flush=True)
""")


@pytest.mark.parametrize("kind", ["new", "old"])
def test_processes_upgrading_at_once_take_turns(store_url: str, engine: Engine, kind: str) -> None:
    if kind == "old":
        make_old_store(engine)
        rows = old_rows(engine)
    processes = [subprocess.Popen([sys.executable, "-c", UPGRADE_AT_ONCE, store_url], cwd=PROJECT, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(3)]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:  # all are ready: start them together
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out))
    assert sorted(o["pending"] for o in outcomes) == [False, False, True]  # one migrated, the others found head
    assert recorded_versions(engine) == [HEAD]
    assert set(shape(engine)) == set(schema.metadata.tables)
    if kind == "old":
        assert old_rows(engine) == rows


AT_HEAD = textwrap.dedent("""
    import json, sys
    from sqlalchemy import event
    from glue_pipeline.store.migrate import upgrade_store
    from glue_pipeline.store.engine import make_engine

    engine = make_engine(sys.argv[1])
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    upgrade_store(engine)
    print(json.dumps({"statements": statements, "alembic": "alembic" in sys.modules}))
""")


def test_a_store_at_head_costs_one_read(store_url: str, engine: Engine) -> None:
    """It runs at the start of every run and command: one SELECT, and alembic is not even loaded."""
    upgrade_store(engine)
    out = subprocess.run([sys.executable, "-c", AT_HEAD, store_url], cwd=PROJECT, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    seen = json.loads(out)
    reads = [s for s in seen["statements"] if s != "BEGIN"]  # SQLite's deferred BEGIN takes no lock
    assert reads == [f"SELECT version_num FROM {VERSION_TABLE}"] and not seen["alembic"]
