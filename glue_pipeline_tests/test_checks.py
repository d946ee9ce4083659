"""The asset checks explain themselves: each says what it checks and what to do when it fails,
naming the Dagster job and the command that do it; a failing result gives the count, the fix and
the rows, with no number for the UI to plot; tenants' names add no row, link, image or code to
any of it. Concealed report names fail the check reports_not_concealed on the tenant's own
partition of tenant_contacts, in a run over a range of partitions and in a run of one.

Through the sandbox over real HTTPS, a real SQLite store and a real Dagster instance.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionResolvedStatus as Resolved
from dagster._core.storage.asset_check_state import AssetCheckState, bulk_update_asset_check_state
from markdown_it import MarkdownIt
from sqlalchemy import Engine, insert, select

from glue_pipeline.cli import main
from glue_pipeline.defs.definitions import build_defs
from glue_pipeline.defs.overview import TENANT_REPORTS_CHECK
from glue_pipeline.defs.partitions import TENANTS
from glue_pipeline.extract import CONCEALED_FIX
from glue_pipeline.runner import run_overview, run_sync
from glue_pipeline.sandbox.server import Sandbox
from glue_pipeline.sandbox.world import ContactEmail, World
from glue_pipeline.store import schema
from glue_pipeline_tests.served import served_world
from glue_pipeline_tests.stores import matched_world, sync_every_partition

# Markdown a name could forge: a row, a link, an image, HTML, code.
HOSTILE = "Evil\x1b[2J Corp\n| forged | row | [click](https://evil.example) <img src=x> `code`"
PARKED_HOSTILE = "Gone <b>Ltd</b> ![pixel](https://evil.example/p.png) | x |"
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table"])
TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td"}
TENANT_CHECK = TENANT_REPORTS_CHECK.key


@dataclass
class Synced:
    world: World
    engine: Engine
    instance: dg.DagsterInstance
    sandbox: Sandbox
    sync_run: str  # the first sync of every tenant (a run over a range of partitions)
    concealed: str  # HOSTILE: its reports conceal user names; it has no organization of its name
    shown: str  # matched, its reports show user names
    revoked: str  # PARKED_HOSTILE: its consent is revoked, so it fails


@pytest.fixture
def synced(tmp_path: Path, sandbox_state: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Synced]:
    """Three tenants discovered and synced once in one run (which fails: one tenant's consent is
    revoked); the store seeded with two contacts of one organization sharing an email."""
    world = matched_world(seed=43, tenants=3, users=45)
    concealed, shown, revoked = world.tenants
    concealed.display_name, concealed.reports_concealed = HOSTILE, True
    shown.reports_concealed = revoked.reports_concealed = False
    revoked.display_name, revoked.consent = PARKED_HOSTILE, "revoked"
    first, second = next((a, b) for a in world.store.contacts for b in world.store.contacts
                         if a.id != b.id and a.organization_id == b.organization_id and a.emails)
    second.emails.append(ContactEmail(value=first.emails[0].value, label="Work", primary=False))
    with served_world(world, tmp_path, sandbox_state, monkeypatch) as served:
        (run,) = run_sync(served.instance)
        assert not run.success, "the revoked tenant fails the run"
        yield Synced(world, served.engine, served.instance, served.sandbox, run.run_id, concealed.id, shown.id,
                     revoked.id)


def _evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    return [e.dagster_event.asset_check_evaluation_data for e in instance.all_logs(run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]


def _partitions(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Tenant id -> the partition its materialization in the run went to."""
    return {e.dagster_event.event_specific_data.materialization.metadata["tenant_id"].value: e.dagster_event.partition
            for e in instance.all_logs(run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"}


def _names_a_job_and_a_command(text: str) -> None:
    """`text` names a Dagster job and a glue-pipeline command; every job and command it names exists."""
    jobs = set(re.findall(r"\b(\w+) job\b", text)) - {"the"}
    assert jobs and jobs <= {job.name for job in build_defs().resolve_all_job_defs()}, (jobs, text)
    commands = re.findall(r"glue-pipeline ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", text)
    assert commands, text
    for name, sub in commands:
        command = main.get_command(click.Context(main), name)
        assert command is not None, (name, text)
        if isinstance(command, click.Group):
            assert command.get_command(click.Context(command), sub) is not None, (name, sub, text)


def _inert_text(markdown: str) -> None:
    """Markdown that renders as paragraphs only: no table, link, image, code or HTML."""
    tags = set(re.findall(r"<(\w+)", MARKDOWN.render(markdown)))
    assert tags <= {"p"}, (tags, markdown)


def _inert_table(markdown: str) -> int:
    """A markdown table whose every line is one row of the header's cells, rendered as such and
    nothing else; its row count."""
    lines = markdown.split("\n")
    html = MARKDOWN.render(markdown)
    assert set(re.findall(r"<(\w+)", html)) <= TABLE_TAGS, html
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert len(rows) == len(lines) - 1, html  # the header, then one row a line after the separator
    cells = {len(re.findall(r"<t[hd]\b", row)) for row in rows}
    assert len(cells) == 1, html
    return len(rows) - 1


def test_every_check_says_what_it_checks_and_what_to_do_naming_a_job_and_a_command() -> None:
    graph = build_defs().resolve_asset_graph()
    keys = graph.asset_check_keys
    assert len(keys) >= 8 and TENANT_CHECK in keys
    for key in keys:
        description = graph.get(key).description or ""
        holds, _, fix = description.partition(" If it fails: ")
        assert holds and fix, f"{key.name}: what it checks, then what to do: {description!r}"
        _names_a_job_and_a_command(fix)
        _inert_text(description)
    assert TENANT_REPORTS_CHECK.partitions_def == TENANTS, "evaluated per tenant partition"


def test_failing_checks_give_the_count_the_fix_and_inert_rows(synced: Synced) -> None:
    engine = synced.engine
    now = datetime.now(UTC)
    with engine.begin() as conn:
        # Two tenants matched by rule to one organization (the sync never does it).
        organization = conn.execute(select(schema.tenant_matches.c.organization_id)
                                    .where(schema.tenant_matches.c.tenant_id == synced.shown)).scalar_one()
        conn.execute(insert(schema.tenant_matches).values(tenant_id=synced.revoked, organization_id=organization,
                                                          status="matched", method="exact", updated_at=now))
        # Users held for the concealed tenant, their names and reasons as hostile as its name.
        for n, reason in enumerate([f"likely duplicate of contact 1 (score 99: {HOSTILE})",
                                    f"the UPN x@y.example is an email of 2 contacts (1, 2): {HOSTILE}"]):
            conn.execute(insert(schema.held_users).values(
                tenant_id=synced.concealed, user_id=f"00000000-0000-0000-0000-00000000000{n}",
                user_principal_name=f"|x{n}|@[y](https://evil.example)", display_name=HOSTILE, reason=reason,
                candidate_contact_ids="1", updated_at=now))
            # Devices held likewise: an ambiguous one and a likely duplicate.
            device_reason = [f"serial {HOSTILE} equals configurations 1 and 2", f"likely duplicate of configuration 1 "
                                                                                 f"(score 90: {HOSTILE})"][n]
            conn.execute(insert(schema.held_devices).values(
                tenant_id=synced.concealed, device_id=f"00000000-0000-0000-0000-00000000000{n}", device_name=HOSTILE,
                serial_number=f"|S{n}|", reason=device_reason, candidate_configuration_ids="1", updated_at=now))
    overview = run_overview(synced.instance)
    assert overview.success, overview.error

    results = {e.check_name: e for e in _evaluations(synced.instance, overview.run_id)}
    assert len(results) == 9 and not any(e.passed for e in results.values()), {
        k: e.passed for k, e in results.items()}
    graph = build_defs().resolve_asset_graph()
    for name, result in results.items():
        description = result.description or ""
        fix = (graph.get(dg.AssetCheckKey(result.asset_key, name)).description or "").partition(" If it fails: ")[2]
        assert re.match(r"[A-Z][a-z ]+[a-z]: [1-9]\d*\. Fix: ", description), description
        assert f"Fix: {fix}" in description, "the fix the check's description gives"
        _names_a_job_and_a_command(description)
        _inert_text(description)
        assert set(result.metadata) == {"rows"}, "no count for the UI to plot"
        rows = result.metadata["rows"].value
        shown = _inert_table(rows)
        assert description.startswith(f"{description.split(':')[0]}: {shown}."), "the count of the rows listed"

    assert all("forged" in results[name].metadata["rows"].value for name in (
        "all_tenants_matched", "reports_not_concealed", "no_ambiguous_contacts", "no_likely_duplicates_held",
        "no_ambiguous_devices", "no_likely_duplicate_devices_held"))
    assert "Gone" in results["no_conflicting_tenants"].metadata["rows"].value
    parked = results["no_parked_tenants"].description or ""
    assert f"({synced.revoked}): consent_revoked since " in parked and "Gone" in parked and "evil.example" in parked
    concealed = results["reports_not_concealed"].description or ""
    assert concealed.count(CONCEALED_FIX) == 1 and concealed.count("mailbox usage") == 1, "said once"


def test_concealed_reports_fail_the_check_on_the_tenants_own_partition(synced: Synced) -> None:
    instance = synced.instance
    partitions = _partitions(instance, synced.sync_run)
    concealed, shown = partitions[synced.concealed], partitions[synced.shown]

    # The run over every partition: each finished tenant's result on its partition.
    evaluations = [e for e in _evaluations(instance, synced.sync_run) if e.asset_check_key == TENANT_CHECK]
    assert {e.partition: e.passed for e in evaluations} == {concealed: False, shown: True}, "none for the failed one"
    (failed,) = [e for e in evaluations if not e.passed]
    assert failed.severity == dg.AssetCheckSeverity.WARN and set(failed.metadata) == set()
    _names_a_job_and_a_command(failed.description or "")
    assert CONCEALED_FIX in (failed.description or "")
    assert all(e.target_materialization_data and e.target_materialization_data.run_id == synced.sync_run
               for e in evaluations), "each refers to its partition's materialization"
    assert _status(instance) == {Resolved.FAILED: {concealed}, Resolved.SUCCEEDED: {shown}}

    # The tenant synced alone, unchanged: not materialized, so not evaluated again (no event for
    # it): its result refers to its last materialization, which still holds.
    (again,) = run_sync(instance, [synced.concealed])
    assert again.success and not again.materialized, again.error
    assert not [e for e in _evaluations(instance, again.run_id) if e.asset_check_key == TENANT_CHECK]
    assert _status(instance) == {Resolved.FAILED: {concealed}, Resolved.SUCCEEDED: {shown}}

    # The check run on its own for the partition (as from the UI): the same result, from the store.
    assets_job = build_defs().resolve_implicit_job_def_def_for_assets([TENANT_CHECK.asset_key])
    assert assets_job is not None
    alone = assets_job.get_subset(asset_selection=set(), asset_check_selection={TENANT_CHECK})
    checked = alone.execute_in_process(partition_key=concealed, instance=instance)
    assert checked.success
    (evaluation,) = [e for e in _evaluations(instance, checked.run_id) if e.asset_check_key == TENANT_CHECK]
    assert (evaluation.partition, evaluation.passed) == (concealed, False)
    assert evaluation.target_materialization_data is not None
    assert evaluation.target_materialization_data.run_id == synced.sync_run
    assert _status(instance) == {Resolved.FAILED: {concealed}, Resolved.SUCCEEDED: {shown}}

    # A run that fails (the other tenant throttled throughout) materializes the unchanged tenant at
    # its end: the result comes after, and refers to that materialization.
    faults = synced.sandbox.faults
    faults.fault_tenants.add(synced.shown)
    faults.rate_429, faults.retry_after_s = 1.0, 0.0
    failing = sync_every_partition(instance)
    assert not failing.success
    (evaluation,) = [e for e in _evaluations(instance, failing.run_id) if e.asset_check_key == TENANT_CHECK]
    assert (evaluation.partition, evaluation.passed) == (concealed, False)
    assert evaluation.target_materialization_data is not None
    assert evaluation.target_materialization_data.run_id == failing.run_id
    assert _status(instance) == {Resolved.FAILED: {concealed}, Resolved.SUCCEEDED: {shown}}, \
        "the throttled tenant keeps its result: its last materialization still holds"


def _status(instance: dg.DagsterInstance) -> dict[Resolved, set[str]]:
    """The tenant check's partitions by status, as the UI reads them (skipped ones left out)."""
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        state = bulk_update_asset_check_state(instance, [(TENANT_CHECK, TENANTS)],
                                              {TENANT_CHECK: AssetCheckState.empty()})[TENANT_CHECK]
    shown = {status: set(subset.value.get_partition_keys()) for status, subset in state.subsets.items()
             if status in (Resolved.FAILED, Resolved.SUCCEEDED, Resolved.IN_PROGRESS)}
    return {status: keys for status, keys in shown.items() if keys}
