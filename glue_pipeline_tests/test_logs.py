"""`glue-pipeline logs`: the sync log of real syncs against the sandbox, read back through every
filter, as lines and as JSON Lines; hostile names and messages; following a running run from
another process; the same query on PostgreSQL."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select, text

from glue_pipeline.cli import main
from glue_pipeline.demo import sandbox_env
from glue_pipeline.render import terminal_text
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine, write_transaction
from glue_pipeline.store.logs import LogFilter, LogFollower, LogQueryError, parse_since, read_log
from glue_pipeline.store.migrate import check_store
from glue_pipeline.store.runs import finish_run, start_run
from glue_pipeline.store.seed import seed_store
from glue_pipeline.store.writer import LogEntry, upsert_tenant, write_log
from glue_pipeline.vocabulary import LogAction, values

CLI = Path(sys.executable).parent / "glue-pipeline"
COMMAND = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "glue_pipeline.cli"]


# ------------------------------------------------------------------ a store two real syncs wrote
@pytest.fixture(scope="module")
def synced(small_world: World, sandbox_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The small world (one tenant with revoked consent) synced twice through `glue-pipeline sync`;
    the environment stays pointed at its store for the module's tests, which only read it."""
    tmp = tmp_path_factory.mktemp("logs")
    with Sandbox(SandboxConfig(world=small_world.model_copy(deep=True)), state_dir=sandbox_state) as server, \
            pytest.MonkeyPatch.context() as env:
        settings = {**sandbox_env(server, small_world), "GLUE_STORE_URL": f"sqlite:///{tmp / 'store.db'}",
                    "GLUE_DATA_DIR": str(tmp / "tables"), "GLUE_VAR_DIR": str(tmp / "var"),
                    "DAGSTER_HOME": str(tmp / "dagster_home")}
        for key, value in settings.items():
            env.setenv(key, value)
        engine = make_engine(settings["GLUE_STORE_URL"])
        seed_store(engine, small_world.store)
        # The revoked tenant fails the first sync, and the second leaves it out (parked).
        for expected in ("tenants: 6 (5 matched, 0 unmatched, 1 failed)",
                         "tenants: 5 (5 matched, 0 unmatched, 0 failed)"):
            result = CliRunner().invoke(main, ["sync"])
            assert expected in result.output, result.output
            assert "next: 1 parked tenants are left out of syncs of every tenant" in result.output, \
                "the sync says the revoked tenant is parked, and how to sync it"
        yield engine
        engine.dispose()


def log_rows(engine: Engine, *where: object) -> list[dict]:
    """The sync_log rows (with the tenant's name), newest first, read straight from the store."""
    query = (select(schema.sync_log, schema.tenants.c.display_name)
             .join(schema.tenants, schema.tenants.c.tenant_id == schema.sync_log.c.tenant_id, isouter=True)
             .where(*where).order_by(schema.sync_log.c.id.desc()))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def logs(*args: str) -> Result:
    return CliRunner().invoke(main, ["logs", *args])


def json_lines(result: Result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def ids(result: Result) -> list[int]:
    return [entry["id"] for entry in json_lines(result)]


def test_every_entry_newest_first_as_json_lines(synced: Engine) -> None:
    rows = log_rows(synced)
    assert len(rows) > 20 and len({r["run_id"] for r in rows}) >= 2, "two syncs (the second around a parked tenant)"
    entries = json_lines(logs("--json", "--limit", "100000"))
    assert [e["id"] for e in entries] == [r["id"] for r in rows], "every entry, newest (last written) first"
    first = entries[0]
    assert set(first) == {"id", "run_id", "tenant_id", "tenant_name", "at", "level", "action", "contact_id",
                          "user_id", "message", "configuration_id", "device_id"}
    by_id = {r["id"]: r for r in rows}
    for entry in entries:
        row = by_id[entry["id"]]
        assert entry["tenant_name"] == row["display_name"] and entry["message"] == row["message"]
        assert entry["contact_id"] == row["contact_id"] and entry["user_id"] == row["user_id"]
        at = datetime.fromisoformat(entry["at"])
        assert at.utcoffset() == timedelta(0) and at.replace(tzinfo=None) == row["at"].replace(tzinfo=None)
    assert any(e["contact_id"] for e in entries) and any(e["user_id"] for e in entries)


def test_human_lines_show_time_level_tenant_action_message_and_ids(synced: Engine) -> None:
    rows = log_rows(synced)
    result = logs("--limit", "100000")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(rows), "one line per entry"
    for line, row in zip(lines, rows):
        at = row["at"].replace(tzinfo=UTC)
        tenant = f"{row['display_name']} ({row['tenant_id'][:8]})" if row["display_name"] else row["tenant_id"]
        assert line.startswith(f"{at:%Y-%m-%d %H:%M:%S}  {row['level']:<7}  {tenant}  {row['action']}  "
                               f"{terminal_text(row['message'])}"), line
        if row["contact_id"] is not None:
            assert f"contact {row['contact_id']}" in line
        if row["user_id"] is not None:
            assert f"user {row['user_id']}" in line


def _busiest_tenant(engine: Engine) -> tuple[str, str]:
    rows = log_rows(engine, schema.sync_log.c.action == "contact_created")
    tenant_id = max({r["tenant_id"] for r in rows}, key=lambda t: sum(r["tenant_id"] == t for r in rows))
    return tenant_id, next(r["display_name"] for r in rows if r["tenant_id"] == tenant_id)


def test_filter_by_tenant_id_and_by_name_case_and_spaces_ignored(synced: Engine) -> None:
    tenant_id, name = _busiest_tenant(synced)
    expected = [r["id"] for r in log_rows(synced, schema.sync_log.c.tenant_id == tenant_id)]
    assert expected and len(expected) < len(log_rows(synced))
    assert ids(logs("--json", "--tenant", tenant_id, "--limit", "100000")) == expected
    assert ids(logs("--json", "--tenant", tenant_id.upper(), "--limit", "100000")) == expected
    shouted = "  " + name.upper().replace(" ", "   ") + " "
    assert ids(logs("--json", "--tenant", shouted, "--limit", "100000")) == expected
    assert ids(logs("--json", "--tenant", tenant_id[:8], "--limit", "100000")) == expected, "as lines show it"

    failed = log_rows(synced, schema.sync_log.c.action == "tenant_failed")[0]["tenant_id"]
    both = [r["id"] for r in log_rows(synced, schema.sync_log.c.tenant_id.in_([tenant_id, failed]))]
    assert ids(logs("--json", "--tenant", name, "--tenant", failed, "--limit", "100000")) == both


def test_filter_by_run_last_and_by_run_id(synced: Engine) -> None:
    with synced.connect() as conn:
        runs = list(conn.execute(select(schema.sync_runs.c.run_id).order_by(schema.sync_runs.c.started_at)).scalars())
    first, last = runs[0], runs[-1]
    newest = [r["id"] for r in log_rows(synced, schema.sync_log.c.run_id == last)]
    oldest = [r["id"] for r in log_rows(synced, schema.sync_log.c.run_id == first)]
    assert newest and oldest and not set(newest) & set(oldest)
    assert ids(logs("--json", "--run", "last", "--limit", "100000")) == newest
    assert ids(logs("--json", "--run", first, "--limit", "100000")) == oldest
    assert ids(logs("--json", "--run", first[:8], "--limit", "100000")) == oldest, "the start of a run id"
    # The second sync found nothing new in the tenants the first one wrote.
    assert {e["action"] for e in json_lines(logs("--json", "--run", "last"))} >= {"tenant_unchanged"}


def test_filter_by_level_is_that_level_or_worse(synced: Engine) -> None:
    warnings = [r["id"] for r in log_rows(synced, schema.sync_log.c.level.in_(["warning", "error"]))]
    errors = [r["id"] for r in log_rows(synced, schema.sync_log.c.level == "error")]
    assert errors and len(warnings) > len(errors)
    assert ids(logs("--json", "--level", "warning", "--limit", "100000")) == warnings
    assert ids(logs("--json", "--level", "ERROR")) == errors
    assert len(ids(logs("--json", "--level", "info", "--limit", "100000"))) == len(log_rows(synced))
    bad = logs("--level", "fatal")
    assert bad.exit_code != 0 and "give one of info, warning, error" in bad.output


def test_filter_by_action_and_an_unknown_action_lists_them(synced: Engine) -> None:
    created = [r["id"] for r in log_rows(synced, schema.sync_log.c.action == "contact_created")]
    either = [r["id"] for r in log_rows(synced, schema.sync_log.c.action.in_(["contact_created", "tenant_failed"]))]
    assert created and len(either) > len(created)
    assert ids(logs("--json", "--action", "contact_created", "--limit", "100000")) == created
    assert ids(logs("--json", "--action", "contact_created", "--action", "tenant_failed",
                    "--limit", "100000")) == either
    bad = logs("--action", "contact_deleted")
    assert bad.exit_code != 0 and "unknown action 'contact_deleted'" in bad.output
    assert "the actions are " + ", ".join(values(LogAction)) in bad.output


def test_filters_combine(synced: Engine) -> None:
    tenant_id, name = _busiest_tenant(synced)
    expected = [r["id"] for r in log_rows(synced, schema.sync_log.c.tenant_id == tenant_id,
                                          schema.sync_log.c.action == "tenant_unchanged")]
    assert len(expected) == 1, "the second sync found the tenant unchanged"
    [run_id] = {r["run_id"] for r in log_rows(synced, schema.sync_log.c.id == expected[0])}
    assert ids(logs("--json", "--tenant", name, "--run", run_id, "--action", "tenant_unchanged",
                    "--level", "info", "--since", "1d")) == expected
    assert ids(logs("--json", "--tenant", name, "--run", run_id, "--action", "contact_created")) == []


def test_since_takes_durations_and_iso_times(synced: Engine) -> None:
    rows = log_rows(synced)
    assert ids(logs("--json", "--since", "7d", "--limit", "100000")) == [r["id"] for r in rows]
    assert ids(logs("--json", "--since", "1H", "--limit", "100000")) == [r["id"] for r in rows]
    future = logs("--since", (datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert future.exit_code == 0 and future.stdout == "" and "no log entry matches" in future.stderr

    # A cut between the two syncs' entries, written as UTC without a zone and as +02:00.
    cut = min(r["at"] for r in rows if r["run_id"] == rows[0]["run_id"]).replace(tzinfo=UTC)
    expected = [r["id"] for r in rows if r["at"].replace(tzinfo=UTC) >= cut]
    assert 0 < len(expected) < len(rows)
    naive = cut.replace(tzinfo=None).isoformat()
    plus_two = cut.astimezone(timezone(timedelta(hours=2))).isoformat()
    for when in (naive, naive.replace("T", " "), cut.isoformat().replace("+00:00", "Z"), plus_two):
        assert ids(logs("--json", "--since", when, "--limit", "100000")) == expected, when


@pytest.mark.parametrize("when", ["yesterday", "5 minutes", "-2h", "2w", "", "2024-13-01", "1.5h"])
def test_a_since_that_is_neither_duration_nor_time_is_refused_with_the_forms(synced: Engine, when: str) -> None:
    result = logs("--since", when)
    assert result.exit_code != 0
    assert f"--since '{when}' is neither a duration (90s, 30m, 2h, 7d) nor an ISO-8601 time" in result.output
    assert "without a zone it is UTC" in result.output


def test_parse_since() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_since("90s", now) == now - timedelta(seconds=90)
    assert parse_since(" 30m ", now) == now - timedelta(minutes=30)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2024-05-01", now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_since("2024-05-01T10:00:00+02:00", now) == datetime(2024, 5, 1, 8, tzinfo=UTC)
    with pytest.raises(LogQueryError, match="reaches too far back"):
        parse_since("99999999999d", now)


def test_limit_keeps_the_newest_and_says_on_stderr_what_it_cut(synced: Engine) -> None:
    rows = log_rows(synced)
    result = logs("--json", "--limit", "5")
    assert ids(result) == [r["id"] for r in rows[:5]]
    assert (f"showing 5 of {len(rows):,} entries: narrow with --since/--tenant/--run or raise --limit"
            in result.stderr)
    assert "showing" not in result.stdout
    whole = logs("--json", "--limit", str(len(rows)))
    assert len(ids(whole)) == len(rows) and "showing" not in whole.stderr
    assert logs("--limit", "0").exit_code != 0


def test_unknown_tenant_and_run_name_the_fix(synced: Engine) -> None:
    tenant = logs("--tenant", "No Such Customer Ltd")
    assert tenant.exit_code != 0
    assert "no tenant has the id or name 'No Such Customer Ltd'" in tenant.output
    assert "`glue-pipeline match list` lists every tenant with its id" in tenant.output
    run = logs("--run", "not-a-run")
    assert run.exit_code != 0 and "no sync run 'not-a-run' is in the store: `--run last`" in run.output


def test_follow_without_a_running_run_is_an_error_and_a_finished_run_prints_and_exits(synced: Engine) -> None:
    result = logs("--follow")
    assert result.exit_code != 0 and "no sync run is running, so there is nothing to follow" in result.output
    oldest_first = list(reversed([r["id"] for r in log_rows(synced, schema.sync_log.c.run_id == last_run(synced))]))
    finished = logs("--follow", "--json", "--run", "last", "--limit", "100000")
    assert ids(finished) == oldest_first
    with synced.connect() as conn:
        status = conn.execute(select(schema.sync_runs.c.status)
                              .where(schema.sync_runs.c.run_id == last_run(synced))).scalar_one()
    assert f"is not running ({status}): nothing more to follow" in finished.stderr


def last_run(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(select(schema.sync_runs.c.run_id).order_by(schema.sync_runs.c.started_at.desc())).scalar()


# ------------------------------------------------------------------ stores written through the store's writers
@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("GLUE_STORE_URL", url)
    engine = check_store(url, writes=True)
    yield engine
    engine.dispose()


def add_tenant(engine: Engine, tenant_id: str, name: str) -> None:
    with write_transaction(engine) as conn:
        upsert_tenant(conn, {"tenant_id": tenant_id, "display_name": name}, datetime.now(UTC))


def add_log(engine: Engine, run_id: str, tenant_id: str | None, *entries: LogEntry) -> None:
    with write_transaction(engine) as conn:
        write_log(conn, run_id, tenant_id, list(entries), datetime.now(UTC))


EVIL_ID = "0badc0de-0000-4000-8000-000000000001"
EVIL_NAME = "Evil\x1b[31m Corp\n2024-01-01 00:00:00  error    Forged Ltd\x1b]0;pwned\x07\u202e"
EVIL_MESSAGE = "held\x1b[2J\x1b[H\r\nfake 2024-01-01 00:00:00  info  line\tend\x9b31m"


def test_hostile_names_and_messages_are_escaped_on_the_terminal_and_round_trip_as_json(store: Engine) -> None:
    add_tenant(store, EVIL_ID, EVIL_NAME)
    start_run(store, "run-evil", 1)
    add_log(store, "run-evil", EVIL_ID, LogEntry("warning", "contact_held", EVIL_MESSAGE, contact_id=7,
                                                   user_id="user\x1b[1m\nid"),
            LogEntry("info", "tenant_note", "plain"))

    human = logs()
    assert human.exit_code == 0, human.output
    for control in ("\x1b", "\x07", "\r", "\x9b", "\u202e", "\t"):
        assert control not in human.stdout
    lines = human.stdout.splitlines()
    assert len(lines) == 2, "a name or message with line breaks adds no line"
    assert "Evil[31m Corp 2024-01-01 00:00:00  error    Forged Ltd]0;pwned (0badc0de)" in lines[1]
    assert "held[2J[H  fake 2024-01-01 00:00:00  info  line end31m" in lines[1]
    assert "[contact 7, user user[1m id]" in lines[1]

    entries = json_lines(logs("--json"))
    assert [e["message"] for e in entries] == ["plain", EVIL_MESSAGE]
    assert entries[1]["tenant_name"] == EVIL_NAME and entries[1]["user_id"] == "user\x1b[1m\nid"
    assert all("\x1b" not in line and "\n" not in line for line in logs("--json").stdout.splitlines())

    # Its name, hostile as it is, still selects it.
    assert ids(logs("--json", "--tenant", EVIL_NAME)) == [e["id"] for e in entries]


def test_a_name_several_tenants_share_is_refused_listing_them(store: Engine) -> None:
    add_tenant(store, "11111111-1111-4111-8111-111111111111", "Twin Co")
    add_tenant(store, "22222222-2222-4222-8222-222222222222", "twin\n CO ")
    add_tenant(store, "33333333-3333-4333-8333-333333333333", "Other Co")
    result = logs("--tenant", "TWIN CO")
    assert result.exit_code != 0
    message = result.output.strip().splitlines()
    assert len(message) == 1, "a name's line break adds no line"
    assert ("2 tenants match 'TWIN CO': Twin Co (11111111-1111-4111-8111-111111111111); twin  CO  "
            "(22222222-2222-4222-8222-222222222222): give the tenant id with --tenant") in message[0]


def test_the_start_of_an_id_two_tenants_share_is_refused(store: Engine) -> None:
    add_tenant(store, "abcdef01-1111-4111-8111-111111111111", "One")
    add_tenant(store, "abcdef02-2222-4222-8222-222222222222", "Two")
    assert logs("--tenant", "abcdef02").exit_code == 0
    result = logs("--tenant", "ABCDEF0")
    assert result.exit_code != 0
    assert ("2 tenants match 'ABCDEF0': One (abcdef01-1111-4111-8111-111111111111); Two "
            "(abcdef02-2222-4222-8222-222222222222): give the tenant id with --tenant") in result.output


def test_a_log_entry_of_a_tenant_the_store_does_not_know_is_shown_by_id(store: Engine) -> None:
    start_run(store, "run-x", 1)
    add_log(store, "run-x", "44444444-4444-4444-8444-444444444444", LogEntry("error", "tenant_failed", "gone"))
    add_log(store, "run-x", None, LogEntry("info", "tenant_note", "run note"))
    result = logs("--tenant", "44444444-4444-4444-8444-444444444444")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [result.stdout.splitlines()[0]]
    assert result.stdout.endswith("  error    44444444-4444-4444-8444-444444444444  tenant_failed  gone\n")
    assert "  info     -  tenant_note  run note" in logs().stdout


# ------------------------------------------------------------------ following a running run
class Lines:
    """A process's output stream, line by line, read in a thread so a test can wait with a bound."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, done: Callable[[list[str]], bool], what: str) -> list[str]:
        while not done(self.lines):
            try:
                line = self._queue.get(timeout=120)  # a bound against a hang, not a timing assertion
            except queue.Empty:
                raise AssertionError(f"waited in vain for {what}; got {self.lines}") from None
            if line is None:
                raise AssertionError(f"the stream ended before {what}; got {self.lines}")
            self.lines.append(line)
        return self.lines

    def until_end(self) -> list[str]:
        while (line := self._queue.get(timeout=120)) is not None:
            self.lines.append(line)
        return self.lines


def follow(args: list[str], url: str) -> tuple[subprocess.Popen[str], Lines, Lines]:
    process = subprocess.Popen([*COMMAND, "logs", "--follow", *args], env={**os.environ, "GLUE_STORE_URL": url},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, Lines(process.stdout), Lines(process.stderr)


def messages(lines: list[str]) -> list[str]:
    return [json.loads(line)["message"] for line in lines]


def test_follow_prints_new_entries_as_they_come_until_the_run_ends(store: Engine) -> None:
    url = str(store.url)
    add_tenant(store, EVIL_ID, "Contoso")
    start_run(store, "run-old", 1)
    add_log(store, "run-old", EVIL_ID, LogEntry("info", "tenant_note", "old run"))
    finish_run(store, "run-old", 1, 0)
    start_run(store, "run-now", 1)
    add_log(store, "run-now", EVIL_ID, LogEntry("info", "tenant_note", "one"), LogEntry("info", "tenant_note", "two"))

    process, out, err = follow(["--json"], url)
    try:
        err.wait_for(lambda lines: any("following run run-now until it ends" in x for x in lines), "following")
        assert messages(out.wait_for(lambda lines: len(lines) >= 2, "the entries there")) == ["one", "two"]

        def write() -> None:
            add_log(store, "run-now", EVIL_ID, LogEntry("warning", "contact_held", "three", user_id="u3"),
                    LogEntry("info", "contact_created", "four", contact_id=4))
            add_log(store, "run-other", EVIL_ID, LogEntry("info", "tenant_note", "another run's"))
            add_log(store, "run-now", EVIL_ID, LogEntry("error", "tenant_failed", "five"))

        writer = threading.Thread(target=write)
        writer.start()
        writer.join()
        out.wait_for(lambda lines: len(lines) >= 5, "the new entries")
        # Written just before the run ends: the last look after the end still finds it.
        add_log(store, "run-now", None, LogEntry("info", "tenant_note", "six"))
        finish_run(store, "run-now", 1, 1)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert any("run run-now ended: failed" in line for line in err.until_end())
    assert messages(out.until_end()) == ["one", "two", "three", "four", "five", "six"], "oldest first, each once"
    assert json.loads(out.lines[2])["user_id"] == "u3" and json.loads(out.lines[3])["contact_id"] == 4


def test_follow_keeps_to_its_filters(store: Engine) -> None:
    add_tenant(store, EVIL_ID, "Contoso")
    start_run(store, "run-now", 1)
    process, out, err = follow(["--run", "run-now", "--level", "warning"], str(store.url))
    try:
        err.wait_for(lambda lines: any("following run run-now" in x for x in lines), "following")
        add_log(store, "run-now", EVIL_ID, LogEntry("info", "tenant_note", "quiet"),
                LogEntry("warning", "contact_held", "loud"))
        finish_run(store, "run-now", 1, 0)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
    lines = out.until_end()
    assert len(lines) == 1 and lines[0].endswith("  warning  Contoso (0badc0de)  contact_held  loud")


def test_ctrl_c_stops_following_quietly(store: Engine) -> None:
    start_run(store, "run-now", 1)
    process, out, err = follow([], str(store.url))
    try:
        err.wait_for(lambda lines: any("following run run-now" in x for x in lines), "following")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
    rest = "\n".join(err.until_end())
    assert "Traceback" not in rest and "Aborted" not in rest and "KeyboardInterrupt" not in rest


# ------------------------------------------------------------------ PostgreSQL
def test_the_same_query_on_postgresql(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_STORE_URL", pg_database)
    setup = make_engine(pg_database)
    with setup.begin() as conn:  # sessions in another zone than UTC: times must still show in UTC
        conn.execute(text(f'ALTER DATABASE "{setup.url.database}" SET timezone TO \'Asia/Kolkata\''))
    setup.dispose()
    engine = check_store(pg_database, writes=True)
    try:
        add_tenant(engine, EVIL_ID, "Fabrikam Ltd")
        add_tenant(engine, "55555555-5555-4555-8555-555555555555", "Northwind")
        start_run(engine, "run-1", 2)
        add_log(engine, "run-1", EVIL_ID, LogEntry("info", "contact_created", "a", contact_id=1),
                LogEntry("warning", "contact_held", EVIL_MESSAGE, user_id="u"))
        add_log(engine, "run-1", "55555555-5555-4555-8555-555555555555", LogEntry("error", "tenant_failed", "b"))
        finish_run(engine, "run-1", 2, 1)
        start_run(engine, "run-2", 2)
        add_log(engine, "run-2", EVIL_ID, LogEntry("info", "tenant_unchanged", "c"))
        rows = log_rows(engine)
        assert [r["message"] for r in rows] == ["c", "b", EVIL_MESSAGE, "a"]

        assert messages(logs("--json").stdout.splitlines()) == ["c", "b", EVIL_MESSAGE, "a"]
        assert messages(logs("--json", "--tenant", "fabrikam LTD").stdout.splitlines()) == ["c", EVIL_MESSAGE, "a"]
        assert messages(logs("--json", "--run", "last").stdout.splitlines()) == ["c"]
        assert messages(logs("--json", "--run", "run-1", "--level", "warning").stdout.splitlines()) \
            == ["b", EVIL_MESSAGE]
        assert messages(logs("--json", "--action", "contact_created", "--action", "tenant_unchanged")
                        .stdout.splitlines()) == ["c", "a"]
        assert messages(logs("--json", "--since", "1h").stdout.splitlines()) == ["c", "b", EVIL_MESSAGE, "a"]
        assert logs("--json", "--since", "2999-01-01").stdout == ""
        cut = logs("--json", "--limit", "2")
        assert messages(cut.stdout.splitlines()) == ["c", "b"] and "showing 2 of 4 entries" in cut.stderr
        human = logs("--tenant", EVIL_ID).stdout
        assert "\x1b" not in human and len(human.splitlines()) == 3
        with engine.connect() as conn:
            assert conn.execute(text("SHOW timezone")).scalar() == "Asia/Kolkata"
            stored = conn.execute(select(schema.sync_log.c.at).order_by(schema.sync_log.c.id.desc())).scalar()
        assert stored.utcoffset() == timedelta(hours=5, minutes=30)
        assert human.startswith(f"{stored.astimezone(UTC):%Y-%m-%d %H:%M:%S}  info     Fabrikam Ltd (0badc0de)")
        assert all(json.loads(line)["at"].endswith("+00:00") for line in logs("--json").stdout.splitlines())
        page = read_log(engine, LogFilter(tenant_ids=(EVIL_ID,), level="warning"), 10)
        assert [e.message for e in page.entries] == [EVIL_MESSAGE] and page.total == 1
        assert page.entries[0].tenant_name == "Fabrikam Ltd" and page.entries[0].at.tzinfo is not None
    finally:
        engine.dispose()


def test_a_follower_on_postgresql_sees_an_entry_committed_after_later_ones(pg_database: str) -> None:
    """Two tenants' transactions at once: the one that took the lower id commits last."""
    engine = check_store(pg_database, writes=True)
    try:
        start_run(engine, "run-now", 2)
        follower = LogFollower(engine, LogFilter(run_id="run-now"), [])
        assert follower.poll() == []
        with write_transaction(engine) as slow:
            write_log(slow, "run-now", None, [LogEntry("info", "tenant_note", "slow")], datetime.now(UTC))
            add_log(engine, "run-now", None, LogEntry("info", "tenant_note", "quick"))
            assert [e.message for e in follower.poll()] == ["quick"]
        later = follower.poll()
        assert [e.message for e in later] == ["slow"] and later[0].id < follower_ids(engine)[-1]
        assert follower.poll() == [] and follower.poll(last=True) == [], "each entry once"
        assert follower.running()
        finish_run(engine, "run-now", 2, 0)
        assert not follower.running()
    finally:
        engine.dispose()


def follower_ids(engine: Engine) -> list[int]:
    return sorted(r["id"] for r in log_rows(engine))
