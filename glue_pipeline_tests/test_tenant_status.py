"""Every tenant's state (`glue-pipeline status`, the tenant_status asset) and pausing a tenant
(`glue-pipeline tenant pause|resume`, the tenant_pause job), after real syncs of the small world
against the sandbox: OK, Error with its cause, Unmatched, Held, Paused, New and Syncing…; the
--failed, --tenant and --json options; a paused tenant left out of syncs and synced again once
resumed; names that try to forge the output."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg
import pytest
from click.testing import CliRunner, Result
from markdown_it import MarkdownIt
from sqlalchemy import Engine, insert, select, update

from glue_pipeline.cli import main
from glue_pipeline.decisions import apply_decision
from glue_pipeline.defs.definitions import build_defs
from glue_pipeline.defs.overview import run_tenants
from glue_pipeline.render import markdown_cell
from glue_pipeline.runner import get_instance, run_discovery, run_overview, run_sync
from glue_pipeline.sandbox.server import Sandbox
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import heartbeats, schema
from glue_pipeline.store.engine import make_engine, write_transaction
from glue_pipeline.store.parked import parked_tenants
from glue_pipeline.store.rows import as_utc
from glue_pipeline.store.runs import finish_run, start_run
from glue_pipeline.store.status import RECENT_RUNS, STATES, live_sync_runs, tenant_statuses
from glue_pipeline.store.writer import utcnow
from glue_pipeline_tests.stores import partition_of, partition_states, sync_every_partition

RENAMED = "Fabrikam Proprietary Limited"  # so the Fabrikam tenant is only suggested: Unmatched
COLUMNS = ["tenant", "tenant_id", "organization", "status", "last_synced", "users", "created", "updated", "detail"]
# What must never reach a terminal: C0 and C1 controls, DEL, bidi overrides and isolates, line separators.
CONTROLS = {*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), *map(chr, range(0x202A, 0x202F)),
            *map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029"}
HOSTILE = "Evil | Org\n| forged | row | OK |\r\x1b[2J\x1b]0;pwned\x07 \u202e[click](https://evil.example) ![](x.png)"
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table"])


@dataclass
class Synced:
    engine: Engine
    instance: dg.DagsterInstance
    world: World
    sandbox: Sandbox
    run_id: str  # the full sync's run

    def tenant(self, name: str) -> str:
        return next(t.id for t in self.world.tenants if t.display_name == name)


@pytest.fixture
def synced(glue_env: dict, small_world: World, sandbox: Sandbox, tmp_path,
           monkeypatch: pytest.MonkeyPatch) -> Synced:
    """The small world discovered and synced once through the CLI's runner: Tailspin Toys fails
    (consent revoked), Fabrikam is only suggested, the four others are written."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert CliRunner().invoke(main, ["store", "init"]).exit_code == 0
    store = small_world.store.model_copy(deep=True)
    next(o for o in store.organizations if o.name == "Fabrikam Pty Ltd").name = RENAMED
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    from glue_pipeline.store.seed import seed_store
    assert seed_store(engine, store)
    instance = get_instance()
    assert run_discovery(instance).success
    (run,) = run_sync(instance)
    assert not run.success, "the revoked tenant fails the run"
    yield Synced(engine, instance, small_world, sandbox, run.run_id)
    instance.dispose()


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _split_cells(line: str) -> list[str]:
    """A markdown table line's cells, split on the `|` no backslash escapes."""
    assert line.startswith("|") and line.endswith("|"), line
    cells, cell, chars = [], "", iter(line[1:-1])
    for char in chars:
        if char == "\\":
            cell += char + next(chars, "")
        elif char == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
    return [*cells, cell.strip()]


def _table(output: str) -> dict[str, dict[str, str]]:
    """The status table's rows by tenant id: header, separator, one line a tenant, then a blank line."""
    lines = output.split("\n")
    end = lines.index("")
    assert _split_cells(lines[0]) == COLUMNS and set(lines[1]) <= {"|", "-"}
    rows = [dict(zip(COLUMNS, _split_cells(line), strict=True)) for line in lines[2:end]]
    return {row["tenant_id"]: row for row in rows}


def _json(*args: str) -> dict[str, dict]:
    result = _invoke("status", "--json", *args)
    assert result.exit_code == 0, result.output
    return {item["tenant_id"]: item for item in json.loads(result.output)}


def _record_cause(engine: Engine, run_id: str, tenant_id: str) -> None:
    """The failed tenant's cause word, as the sync records it."""
    with engine.begin() as conn:
        conn.execute(update(schema.sync_results).where(schema.sync_results.c.run_id == run_id,
                                                       schema.sync_results.c.tenant_id == tenant_id)
                     .values(cause="consent_revoked"))


def _results_of(engine: Engine, run_id: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(schema.sync_results.c.tenant_id)
                                .where(schema.sync_results.c.run_id == run_id)).scalars())


def _linked_contacts(engine: Engine, tenant_id: str) -> list[tuple]:
    """The tenant's linked contacts as the store holds them: contact, overlay and update time."""
    query = (select(schema.contacts.c.id, schema.contacts.c.title, schema.contacts.c.updated_at,
                    schema.contact_microsoft.c.user_id)
             .join(schema.contact_microsoft, schema.contact_microsoft.c.contact_id == schema.contacts.c.id)
             .where(schema.contact_microsoft.c.tenant_id == tenant_id).order_by(schema.contacts.c.id))
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def _beat(engine: Engine, run_id: str, age: timedelta = timedelta(0)) -> None:
    """A heartbeat row for the run, as its process writes it, `age` old."""
    heartbeats.beat(engine, run_id, "sync_tenants", socket.gethostname(), os.getpid(), utcnow())
    if age:
        with engine.begin() as conn:
            conn.execute(update(schema.run_heartbeats).where(schema.run_heartbeats.c.run_id == run_id)
                         .values(beat_at=utcnow() - age))


# --------------------------------------------------------------------------- states


def test_status_shows_ok_error_unmatched_held_and_paused_as_lines_and_json(synced: Synced) -> None:
    engine = synced.engine
    failed, fabrikam, adatum, trey = (synced.tenant(n) for n in
                                      ("Tailspin Toys", "Fabrikam Pty Ltd", "Adatum", "Trey Research"))
    _record_cause(engine, synced.run_id, failed)
    # Adatum ignored and synced again alone: held (ignored); Trey Research paused.
    apply_decision(engine, "ignore", adatum, by="analyst")
    (rerun,) = run_sync(synced.instance, [adatum])
    assert rerun.success, rerun.error
    paused = _invoke("tenant", "pause", "Trey Research", "--reason", "customer offboarding", "--by", "ops-anna")
    assert paused.exit_code == 0, paused.output
    assert f"paused tenant Trey Research ({trey}): paused by ops-anna since " in paused.output
    assert f"until `glue-pipeline tenant resume {trey}`" in paused.output

    result = _invoke("status")
    assert result.exit_code == 0, "tenants in Error do not fail the command"
    rows = _table(result.output)
    assert set(rows) == {t.id for t in synced.world.tenants}
    assert {r["status"] for r in rows.values()} == {"OK", "Error", "Unmatched", "Held", "Paused"}
    assert rows[failed]["status"] == "Error"
    assert rows[failed]["detail"].startswith("consent_revoked: ") and "AADSTS700016" in rows[failed]["detail"]
    assert rows[failed]["last_synced"] == "" and rows[failed]["users"] == ""
    assert (rows[failed]["created"], rows[failed]["updated"]) == ("0", "0")
    assert rows[fabrikam]["status"] == "Unmatched" and "match list --open" in rows[fabrikam]["detail"]
    assert rows[fabrikam]["organization"] == ""
    assert rows[adatum]["status"] == "Held" and rows[adatum]["detail"].startswith("ignored by an analyst")
    assert rows[trey]["status"] == "Paused"
    assert rows[trey]["detail"].startswith("paused by ops-anna since ")
    assert rows[trey]["detail"].endswith(": customer offboarding")
    assert rows[trey]["organization"] == "Trey Research"
    ok = [r for r in rows.values() if r["status"] == "OK"]
    assert len(ok) == 2 and all(r["organization"] and r["detail"] == "" for r in ok)
    with engine.connect() as conn:
        written = {r.tenant_id: r for r in conn.execute(select(schema.sync_results)
                                                        .where(schema.sync_results.c.run_id == synced.run_id))}
    for row in ok:
        result_row = written[row["tenant_id"]]
        assert (row["users"], row["created"], row["updated"]) == (
            str(result_row.users), str(result_row.created), str(result_row.updated))
        assert int(row["users"]) > 0 and int(row["created"]) + int(row["updated"]) > 0
        assert row["last_synced"] == f"{result_row.finished_at:%Y-%m-%d %H:%M}"
    # The run totals stay, after the table.
    footer = result.output.split("\n\n", 1)[1]
    assert footer.startswith(f"last sync run {rerun.run_id}\ntenants: 1 (0 matched, 1 unmatched, 0 failed)")

    items = _json()
    assert {i["status"] for i in items.values()} == {"ok", "error", "unmatched", "held", "paused"}
    assert all(i["status"] in STATES for i in items.values())
    error = items[failed]
    assert (error["label"], error["cause"], error["users"], error["last_synced_at"]) == (
        "Error", "consent_revoked", None, None)
    assert "AADSTS700016" in error["error"] and error["detail"] == f"consent_revoked: {error['error']}"
    assert (error["created"], error["updated"]) == (0, 0)
    paused_item = items[trey]
    assert (paused_item["label"], paused_item["paused_by"], paused_item["pause_reason"]) == (
        "Paused", "ops-anna", "customer offboarding")
    assert datetime.fromisoformat(paused_item["paused_at"]).utcoffset() == timedelta(0)
    assert isinstance(paused_item["users"], int) and paused_item["organization"] == "Trey Research"
    assert items[adatum]["match_status"] == "ignored" and items[fabrikam]["match_status"] == "suggested"
    for item in items.values():
        if item["status"] == "ok":
            assert item["label"] == "OK" and isinstance(item["organization_id"], int)
            assert isinstance(item["users"], int) and isinstance(item["created"], int)
            assert datetime.fromisoformat(item["last_synced_at"]).utcoffset() == timedelta(0)
            assert item["error"] is None and item["cause"] is None


def test_held_after_a_decision_until_the_next_sync_and_new_before_any_sync(synced: Synced) -> None:
    fabrikam = synced.tenant("Fabrikam Pty Ltd")
    apply_decision(synced.engine, "accept", fabrikam, by="analyst")
    item = _json("--tenant", fabrikam)[fabrikam]
    assert (item["status"], item["organization"]) == ("held", RENAMED)
    assert item["detail"] == "matched since its last sync: the next sync writes its users"
    # A tenant discovery found and no sync has seen yet.
    with synced.engine.begin() as conn:
        conn.execute(insert(schema.tenants).values(tenant_id="00000000-0000-4000-8000-00000000abcd",
                                                   display_name="Brand New Co", first_seen_at=utcnow(),
                                                   last_seen_at=utcnow()))
    new = _json("--tenant", "brand new co")["00000000-0000-4000-8000-00000000abcd"]
    assert (new["status"], new["label"], new["users"], new["created"], new["last_synced_at"]) == (
        "new", "New", None, None, None)


def test_syncing_while_a_run_with_a_fresh_heartbeat_has_not_finished_the_tenant(synced: Synced) -> None:
    engine = synced.engine
    everyone = {t.id for t in synced.world.tenants}
    # A run of the store alone (not in the Dagster instance): it covers every tenant.
    start_run(engine, "run-in-progress", len(everyone))
    _beat(engine, "run-in-progress")
    done = synced.tenant("Adatum")
    with write_transaction(engine) as conn:
        conn.execute(insert(schema.sync_results).values(
            run_id="run-in-progress", tenant_id=done, status="synced", users=13, created=0, updated=1,
            unchanged=12, held=0, skipped=0, finished_at=utcnow()))
    assert live_sync_runs(engine) == ["run-in-progress"]
    items = _json()
    assert {t for t, i in items.items() if i["status"] == "syncing"} == everyone - {done}
    assert all(i["label"] == "Syncing…" and i["syncing_run_id"] == "run-in-progress"
               for t, i in items.items() if t != done)
    assert (items[done]["status"], items[done]["updated"]) == ("ok", 1)
    lines = _table(_invoke("status").output)
    assert lines[synced.tenant("Trey Research")]["status"] == "Syncing…"

    # Its process gone: the beat is stale, so nothing is syncing although the row says running.
    _beat(engine, "run-in-progress", age=timedelta(minutes=10))
    assert live_sync_runs(engine) == []
    assert "syncing" not in {i["status"] for i in _json().values()}
    # A running row without any heartbeat is not in progress either.
    heartbeats.end(engine, "run-in-progress")
    assert "syncing" not in {i["status"] for i in _json().values()}

    # A Dagster run of one tenant (its partition) in progress covers that tenant only.
    trey = synced.tenant("Trey Research")
    (one,) = run_sync(synced.instance, [trey])
    assert one.success, one.error
    with engine.begin() as conn:
        conn.execute(update(schema.sync_results).where(schema.sync_results.c.run_id == one.run_id)
                     .values(run_id="moved-away"))  # as if it had not finished the tenant yet
    start_run(engine, one.run_id, 1)
    _beat(engine, one.run_id)
    assert run_tenants(synced.instance, engine, [one.run_id, synced.run_id, "not-a-run"]) == {
        one.run_id: {trey}, synced.run_id: everyone}
    items = _json()
    assert {t for t, i in items.items() if i["status"] == "syncing"} == {trey}
    # Paused wins over syncing.
    assert _invoke("tenant", "pause", trey).exit_code == 0
    assert _json("--tenant", trey)[trey]["status"] == "paused"


def test_the_last_successful_sync_is_found_behind_many_failed_runs(synced: Synced) -> None:
    """A tenant failing for longer than the newest runs the status reads first keeps its last
    successful sync, users and organization from further back."""
    engine, adatum = synced.engine, synced.tenant("Adatum")
    with engine.connect() as conn:
        good = conn.execute(select(schema.sync_results).where(schema.sync_results.c.run_id == synced.run_id,
                                                              schema.sync_results.c.tenant_id == adatum)).one()
    for n in range(RECENT_RUNS + 3):
        run_id = f"failing-{n:02d}"
        start_run(engine, run_id, 1)
        with write_transaction(engine) as conn:
            conn.execute(insert(schema.sync_results).values(
                run_id=run_id, tenant_id=adatum, status="failed", users=0, created=0, updated=0, unchanged=0,
                held=0, skipped=0, error=f"failure {n}", cause="transient", finished_at=utcnow()))
        finish_run(engine, run_id, 1, 1)
    item = _json("--tenant", adatum)[adatum]
    assert (item["status"], item["error"], item["cause"]) == ("error", f"failure {RECENT_RUNS + 2}", "transient")
    assert datetime.fromisoformat(item["last_synced_at"]) == as_utc(good.finished_at)
    assert item["users"] == good.users and item["organization"] == "ADATUM"
    others = _json()
    assert others[synced.tenant("Trey Research")]["status"] == "ok"
    assert others[synced.tenant("Tailspin Toys")]["last_synced_at"] is None


def test_failed_and_tenant_filters(synced: Synced) -> None:
    failed = synced.tenant("Tailspin Toys")
    only_failed = _table(_invoke("status", "--failed").output)
    assert list(only_failed) == [failed] and only_failed[failed]["status"] == "Error"
    assert list(_json("--failed")) == [failed]
    adatum, trey = synced.tenant("Adatum"), synced.tenant("Trey Research")
    chosen = _table(_invoke("status", "--tenant", "ADATUM", "--tenant", trey).output)
    assert set(chosen) == {adatum, trey}
    assert list(_json("--tenant", "Adatum", "--failed")) == []
    assert _invoke("status", "--tenant", "Adatum", "--failed").output.startswith("no tenant is in Error\n")
    unknown = _invoke("status", "--tenant", "Nobody Ltd")
    assert unknown.exit_code != 0
    assert ("no tenant 'Nobody Ltd' is known: give a tenant id, partition key or name as `glue-pipeline status` "
            "shows") in unknown.output


# --------------------------------------------------------------------------- pause and resume


def _partition_observations(instance: dg.DagsterInstance, tenant_id: str) -> list[dg.AssetObservation]:
    """The observations on the tenant's partition of tenant_contacts, oldest first."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("tenant_contacts"), asset_partitions=[partition_of(tenant_id)]),
        limit=50, ascending=True).records
    return [r.event_log_entry.asset_observation for r in records if r.event_log_entry.asset_observation]


def test_a_paused_tenant_is_not_synced_until_resumed(synced: Synced) -> None:
    engine, sandbox = synced.engine, synced.sandbox
    adatum = synced.tenant("Adatum")
    paused = _invoke("tenant", "pause", "adatum", "--reason", "migration")
    assert paused.exit_code == 0 and f"paused tenant Adatum ({adatum})" in paused.output
    again = _invoke("tenant", "pause", adatum)
    assert again.exit_code == 0 and "is already paused" in again.output and "migration" in again.output
    before = _linked_contacts(engine, adatum)
    assert before, "Adatum's users are linked to contacts"
    shown = _partition_observations(synced.instance, adatum)[-1]  # the partition's page shows the pause
    assert shown.metadata["paused"].value is True and shown.metadata["reason"].value == "migration"
    assert (shown.description or "").startswith("Adatum: paused by ")
    changed = sandbox.change_users(adatum, fraction=1.0, seed=3, fields=("jobTitle",))
    assert changed

    parked = {p.tenant_id for p in parked_tenants(engine)}
    runs = run_sync(synced.instance)  # every tenant but those left out: Adatum and any parked one
    assert all(adatum not in r.tenant_ids for r in runs)
    results = set().union(*(_results_of(engine, r.run_id) for r in runs))
    assert results == {t.id for t in synced.world.tenants} - {adatum} - parked
    assert _linked_contacts(engine, adatum) == before, "a paused tenant's contacts are untouched"
    every = sync_every_partition(synced.instance).run_id
    assert adatum not in _results_of(engine, every)
    logs = [e.message for e in synced.instance.all_logs(every) if e.message]
    assert any(f"1 paused tenant(s) not synced: Adatum ({adatum})" in m for m in logs)
    assert _linked_contacts(engine, adatum) == before
    materialized, failed = partition_states(synced.instance)
    assert adatum in materialized and adatum not in failed
    refused = _invoke("sync", "--tenant", adatum)
    assert refused.exit_code != 0
    assert f"tenant Adatum ({adatum}) is paused by " in refused.output
    assert f"`glue-pipeline tenant resume {adatum}`" in refused.output
    assert _json("--tenant", adatum)[adatum]["status"] == "paused"

    resumed = _invoke("tenant", "resume", "Adatum", "--by", "ops-anna")
    assert resumed.exit_code == 0 and f"resumed tenant Adatum ({adatum}) (it was paused by " in resumed.output
    assert f"glue-pipeline sync --tenant {adatum}" in resumed.output
    assert "is not paused: nothing changed" in _invoke("tenant", "resume", adatum).output
    with engine.connect() as conn:
        row = conn.execute(select(schema.tenants).where(schema.tenants.c.tenant_id == adatum)).one()
    assert (row.paused_at, row.paused_by, row.pause_reason) == (None, None, None)
    assert _partition_observations(synced.instance, adatum)[-1].metadata["paused"].value is False
    (again_run,) = run_sync(synced.instance, [adatum])
    assert again_run.success and _results_of(engine, again_run.run_id) == {adatum}
    after = _linked_contacts(engine, adatum)
    assert [r[0] for r in after] == [r[0] for r in before] and after != before, "synced again: titles updated"
    assert _json("--tenant", adatum)[adatum]["status"] == "ok"


def test_pause_names_one_tenant_or_says_why_not(synced: Synced) -> None:
    unknown = _invoke("tenant", "pause", "No Such Tenant")
    assert unknown.exit_code != 0 and "no tenant 'No Such Tenant' is known" in unknown.output
    adatum, trey = synced.tenant("Adatum"), synced.tenant("Trey Research")
    with synced.engine.begin() as conn:
        conn.execute(update(schema.tenants).where(schema.tenants.c.tenant_id.in_([adatum, trey]))
                     .values(display_name="Twin Co"))
    twins = _invoke("tenant", "pause", "twin co")
    assert twins.exit_code != 0
    assert f"2 tenants are named 'twin co' ({', '.join(sorted([adatum, trey]))}): give the tenant id" in twins.output
    assert _invoke("tenant", "pause", adatum.upper()).exit_code == 0, "an id, case aside"
    assert {t for t, i in _json().items() if i["status"] == "paused"} == {adatum}


def test_the_tenant_pause_job_pauses_and_resumes_from_the_ui(synced: Synced) -> None:
    job = build_defs().resolve_job_def("tenant_pause")
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

    def launch(**config: object) -> dg.ExecuteInProcessResult:
        return job.execute_in_process(instance=synced.instance, raise_on_error=False,
                                      run_config={**quiet, "ops": {"set_tenant_paused": {"config": config}}})

    trey = synced.tenant("Trey Research")
    paused = launch(tenant="Trey Research", reason="contract ended")
    assert paused.success
    messages = [e.message for e in synced.instance.all_logs(paused.run_id) if e.message]
    assert any(f"paused tenant Trey Research ({trey}): paused by dagster-ui" in m for m in messages)
    item = _json("--tenant", trey)[trey]
    assert (item["status"], item["paused_by"], item["pause_reason"]) == ("paused", "dagster-ui", "contract ended")
    shown = _partition_observations(synced.instance, trey)[-1]
    assert shown.metadata["paused"].value is True and shown.metadata["paused_by"].value == "dagster-ui"
    resumed = launch(tenant=trey, paused=False, by="ops-ben")
    assert resumed.success and _json("--tenant", trey)[trey]["status"] == "ok"
    assert _partition_observations(synced.instance, trey)[-1].metadata["paused"].value is False
    unknown = launch(tenant="Nobody")
    assert not unknown.success
    failure = next(e for e in unknown.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no tenant 'Nobody' is known" in failure.step_failure_data.error.message


# --------------------------------------------------------------------------- the asset


def test_the_tenant_status_asset_counts_tenants_per_state(synced: Synced) -> None:
    _record_cause(synced.engine, synced.run_id, synced.tenant("Tailspin Toys"))
    assert _invoke("tenant", "pause", "Adatum").exit_code == 0
    outcome = run_overview(synced.instance)
    assert outcome.success, outcome.error
    (materialization,) = [e.dagster_event.event_specific_data.materialization
                          for e in synced.instance.all_logs(outcome.run_id)
                          if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
                          and e.dagster_event.asset_key == dg.AssetKey("tenant_status")]
    metadata = materialization.metadata
    counts = {state: metadata[f"tenants {state}"].value for state in STATES}
    assert counts == {"error": 1, "unmatched": 1, "paused": 1, "ok": 3, "held": 0, "syncing": 0, "new": 0}
    assert metadata["dagster/row_count"].value == 6
    rows = [_split_cells(line) for line in metadata["preview"].value.split("\n")[2:]]
    assert [r[3] for r in rows] == ["Error", "Unmatched", "Paused", "OK", "OK", "OK"], "what needs someone first"
    assert rows[0][8].startswith("consent_revoked: ")


# --------------------------------------------------------------------------- hostile names


def test_a_hostile_tenant_name_forges_no_status_line_and_no_preview_row(synced: Synced) -> None:
    trey = synced.tenant("Trey Research")
    with synced.engine.begin() as conn:  # a store written before names were cleaned where they enter
        conn.execute(update(schema.tenants).where(schema.tenants.c.tenant_id == trey).values(display_name=HOSTILE))
    assert _invoke("tenant", "pause", trey, "--reason", HOSTILE).exit_code == 0

    result = CliRunner().invoke(main, ["status"], color=True)
    assert result.exit_code == 0
    assert not set(result.output.replace("\n", "")) & CONTROLS, repr(result.output)
    rows = _table(result.output)
    assert len(rows) == 6, "one line a tenant, whatever its name holds"
    assert rows[trey]["status"] == "Paused"
    assert rows[trey]["tenant"] == markdown_cell(HOSTILE).strip()
    assert sum(r["status"] == "OK" for r in rows.values()) == 3
    lines = [e for e in result.output.split("\n") if e.startswith("|")]
    assert len(lines) == 2 + 6

    items = _json()
    assert items[trey]["name"] == HOSTILE and items[trey]["pause_reason"] == HOSTILE, "JSON carries the value"
    raw = _invoke("status", "--json").output
    assert not set(raw.replace("\n", "")) & CONTROLS

    outcome = run_overview(synced.instance)
    assert outcome.success
    (materialization,) = [e.dagster_event.event_specific_data.materialization
                          for e in synced.instance.all_logs(outcome.run_id)
                          if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
                          and e.dagster_event.asset_key == dg.AssetKey("tenant_status")]
    preview = materialization.metadata["preview"].value
    assert len(preview.split("\n")) == 2 + 6 and all(len(_split_cells(line)) == 9 for line in preview.split("\n"))
    html = MARKDOWN.render(preview)
    assert html.count("<tr>") == 7 and "<img" not in html and "<a " not in html and "\x1b" not in html


# --------------------------------------------------------------------------- PostgreSQL


def test_status_on_postgresql(glue_env: dict, small_world: World, pg_database: str, tmp_path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_STORE_URL", pg_database)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert _invoke("store", "init").exit_code == 0
    engine = make_engine(pg_database)
    from glue_pipeline.store.seed import seed_store
    seed_store(engine, small_world.store)
    instance = get_instance()
    try:
        assert run_discovery(instance).success
        (run,) = run_sync(instance)
        failed = next(t.id for t in small_world.tenants if t.consent == "revoked")
        paused = next(t.id for t in small_world.tenants if t.display_name == "Adatum")
        assert _invoke("tenant", "pause", "Adatum", "--reason", "audit").exit_code == 0
        items = _json()
        assert len(items) == len(small_world.tenants)
        assert items[failed]["status"] == "error" and "AADSTS700016" in items[failed]["error"]
        assert items[paused]["status"] == "paused" and items[paused]["pause_reason"] == "audit"
        assert {i["status"] for t, i in items.items() if t not in (failed, paused)} == {"ok"}
        assert all(isinstance(i["users"], int) for t, i in items.items() if t != failed)
        start_run(engine, "pg-run", 6)
        _beat(engine, "pg-run")
        states = {r.tenant_id: r.status for r in tenant_statuses(engine)}
        assert states[paused] == "paused" and set(states.values()) == {"paused", "syncing"}
        assert list(_json("--failed")) == [] and run.run_id
    finally:
        instance.dispose()
