"""Nothing rendered can be forged by a customer's data: a tenant, user, organization or contact
name adds no row, cell, image, link or HTML to a markdown table (checked on the raw text and as
a CommonMark + GFM renderer sees it), and no escape code, bidi override or line break reaches a
terminal or a log line."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt
from sqlalchemy import Engine, func, insert, select, update

from glue_pipeline.cli import main
from glue_pipeline.defs.definitions import build_defs
from glue_pipeline.defs.metadata import table_metadata
from glue_pipeline.render import markdown_cell, markdown_table, terminal_text
from glue_pipeline.report import SyncSummary, format_summary
from glue_pipeline.runner import run_overview, run_sync
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.world import StoreOrganization, World
from glue_pipeline.store import schema
from glue_pipeline.store.partition_keys import partitions_of
from glue_pipeline.tables import CELL_LIMIT, CELL_LIMITS, WAITING_PREVIEW_ROWS, cell_text, preview
from glue_pipeline_tests.rendered import RenderedTable
from glue_pipeline_tests.served import served_world

HOSTILE_VALUES = [
    "a|b", "a\\|b", "x\r|forged|row", "x\n| forged | row |", "![](https://evil.example/p.png)",
    "[click](https://evil.example)", "<img src=x onerror=alert(1)>", "<https://evil.example>",
    "\x1b[2J\x1b]0;pwned\x07", "\u202eevil", "nul\x00here", "ends with a backslash\\", "`code | span`",
    "&lt;img src=x&gt; &#91;x&#93;(https://evil.example)", "\x9b2J\x9d0;c1 codes\x9c",
]
# Every value at once, as a tenant or organization name.
HOSTILE_NAME = ("Evil | Org\r| forged | row |\n| forged | row | ![](https://evil.example/p.png) "
                "[click](https://evil.example) <img src=x onerror=alert(1)> <https://evil.example> "
                "\x1b[2J\x1b]0;pwned\x07 \u202eevil")
# What terminal_text must remove (or turn into a space).
CONTROLS = {*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), *map(chr, range(0x202A, 0x202F)),
            *map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029"}
TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td"}
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


# --------------------------------------------------------------------------- how a table is read


def _split_unescaped(text: str, separator: str = "|") -> list[str]:
    """`text` split on the separators a backslash does not escape."""
    parts, current, chars = [], "", iter(text)
    for char in chars:
        if char == "\\":
            current += char + next(chars, "")
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _cells(line: str) -> list[str]:
    """The raw cells of a markdown table line ('| a | b |')."""
    assert line.startswith("|") and line.endswith("|"), line
    return [c.strip() for c in _split_unescaped(line[1:-1])]


def _unescaped_text(cell: str) -> str:
    """What a cell's text is once its backslash escapes are read."""
    return "".join(part[1:] if part.startswith("\\") else part for part in _split_escapes(cell))


def _split_escapes(cell: str) -> list[str]:
    parts, chars = [], iter(cell)
    for char in chars:
        parts.append(char + next(chars, "") if char == "\\" else char)
    return parts


def _inert_table(markdown: str, rows: int, columns: int | None = None) -> list[list[str]]:
    """Checks a markdown table of `rows` rows and `columns` columns (default: its header's), raw
    and rendered by a CommonMark + GFM renderer (raw HTML allowed, as in GFM); returns the
    rendered rows' cells. A table cut short says so under it, after a blank line."""
    markdown, _, footer = markdown.partition("\n\n")
    assert not footer or re.fullmatch(rf"showing {rows} of \d+ rows", footer), footer
    lines = markdown.split("\n")
    columns = columns or len(_cells(lines[0]))
    assert len(lines) == 2 + rows, markdown
    assert all(len(_cells(line)) == columns for line in lines), markdown
    for line in lines:
        unescaped = "".join(part for part in _split_escapes(line) if not part.startswith("\\"))
        assert not set(unescaped) & set("[]<>&`\r"), line
    html = MARKDOWN.render(markdown)
    parsed = RenderedTable()
    parsed.feed(html)
    assert parsed.tags <= TABLE_TAGS, f"markup beyond the table: {parsed.tags - TABLE_TAGS}"
    assert "<img" not in html and "<a " not in html and "<https" not in html
    assert len(parsed.rows) == 1 + rows and all(len(r) == columns for r in parsed.rows), html
    return parsed.rows[1:]


def _shown(value: str) -> str:
    """A value as a table shows it: on one line, without control characters."""
    return terminal_text(value).strip()


# --------------------------------------------------------------------------- the three functions


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_a_hostile_value_is_one_inert_cell(value: str) -> None:
    cell = markdown_cell(value)
    assert not set(cell) & CONTROLS, repr(cell)
    assert len(_split_unescaped(cell)) == 1, f"an unescaped pipe in {cell!r}"
    assert not set("".join(p for p in _split_escapes(cell) if not p.startswith("\\"))) & set("[]<>&`|")
    assert _unescaped_text(cell) == terminal_text(value), "escapes hide nothing and add nothing"


def test_ordinary_text_stays_readable_and_missing_values_are_empty() -> None:
    plain = "Contoso Ltd. - jane.doe@contoso.com (Sales, 2nd floor) #4: 50% done!"
    assert markdown_cell(plain) == plain
    assert markdown_cell("Smith & Sons [UK]") == "Smith \\& Sons \\[UK\\]"
    for missing in (None, float("nan"), np.nan, pd.NA, pd.NaT, np.datetime64("NaT")):
        assert markdown_cell(missing) == "" and terminal_text(missing) == ""
    assert markdown_cell(0) == "0" and markdown_cell(False) == "False" and markdown_cell([1, None]) == "\\[1, None\\]"


def test_a_table_of_hostile_values_has_one_row_each_raw_and_rendered() -> None:
    frame = pd.DataFrame({"name | [x]": HOSTILE_VALUES, "n": range(len(HOSTILE_VALUES)),
                          "missing": [None, np.nan, pd.NA, pd.NaT] + [None] * (len(HOSTILE_VALUES) - 4)})
    markdown = markdown_table(frame)
    rows = _inert_table(markdown, len(HOSTILE_VALUES), 3)
    assert [r[0].strip() for r in rows] == [_shown(v) for v in HOSTILE_VALUES], "each value is its text"
    assert [r[1] for r in rows] == [str(i) for i in range(len(HOSTILE_VALUES))]
    assert all(r[2] == "" for r in rows)
    header = MARKDOWN.render(markdown).split("</thead>")[0]
    assert "name | [x]" in header


def test_a_table_keeps_its_limit_says_empty_and_aligns_the_same_cells() -> None:
    frame = pd.DataFrame({"name": HOSTILE_VALUES, "n": range(len(HOSTILE_VALUES))})
    limited = markdown_table(frame, limit=3)
    assert [_unescaped_text(_cells(line)[0]) for line in limited.split("\n")[2:5]] == \
           [terminal_text(v) for v in HOSTILE_VALUES[:3]]
    assert limited.endswith(f"|\n\nshowing 3 of {len(HOSTILE_VALUES)} rows")
    assert markdown_table(frame.head(0)) == "(empty)" and preview(frame.head(0)) == "(empty)"
    aligned = markdown_table(frame, aligned=True)
    assert len({len(line) for line in aligned.split("\n")}) == 1, "every line as wide as the others"
    assert [_cells(line) for line in aligned.split("\n")[2:]] == \
           [_cells(line) for line in markdown_table(frame).split("\n")[2:]]
    _inert_table(aligned, len(HOSTILE_VALUES), 2)


def test_the_dagster_previews_escape_every_cell() -> None:
    frame = pd.DataFrame({"tenant_name": HOSTILE_VALUES})
    for markdown, rows in ((preview(frame), 10), (table_metadata(frame, preview_rows=25)["preview"].value,
                                                  len(HOSTILE_VALUES))):
        rendered = _inert_table(markdown, rows, 1)
        assert [r[0].strip() for r in rendered] == \
               [cell_text(v, CELL_LIMITS["tenant_name"]).strip() for v in HOSTILE_VALUES[:rows]]


def test_terminal_text_removes_every_control_character() -> None:
    every = "".join(sorted(CONTROLS))
    assert terminal_text(f"a{every}b") == "a" + " " * 8 + "b", "tab, LF, VT, FF, CR, NEL, LS, PS are a space"
    for value in HOSTILE_VALUES:
        assert not set(terminal_text(value)) & CONTROLS, repr(value)
    assert terminal_text("\x1b[2J\x1b]0;pwned\x07 Fabrikam") == "[2J]0;pwned Fabrikam"
    assert terminal_text("\u202eevil\u2066x\u2069") == "evilx"
    text = terminal_text("line one\x1b[2J\nline\r two\n\x07three", multiline=True)
    assert text.split("\n") == ["line one[2J", "line  two", "three"]


def test_a_summary_lists_each_failed_tenant_on_one_safe_line() -> None:
    summary = SyncSummary(["run"], tenants=2, failed=2, errors=[
        ("t1", HOSTILE_NAME, "AADSTS700016: consent revoked\nFix: re-consent \x1b]0;pwned\x07"),
        ("t2\x1b[2J", "Fabrikam\r  - forged: error", "boom")])
    lines = format_summary(summary).split("\n")
    assert not set("".join(lines)) & CONTROLS
    assert lines[4] == "errors: 2" and len(lines) == 5 + 2 + 1
    assert lines[5] == f"  - {terminal_text(HOSTILE_NAME)}: AADSTS700016: consent revoked Fix: re-consent ]0;pwned"
    assert lines[6] == "  - Fabrikam   - forged: error: boom"
    assert lines[7] == "re-run the failed tenants alone: glue-pipeline sync --tenant t1 --tenant t2[2J"


def test_the_packages_log_records_are_safe_lines_and_others_are_untouched(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("glue_pipeline.graph.client").info("tenant %s: answered", HOSTILE_NAME)
    try:
        raise ValueError("boom \x1b[2J\nsecond line \x1b]0;pwned\x07")
    except ValueError:
        logging.getLogger("glue_pipeline.sync").exception("failed %s", "a\nb")
    logging.getLogger("elsewhere").info("left as it is: %s", "\x1b[2J")
    names = ("glue_pipeline.graph.client", "glue_pipeline.sync", "elsewhere")
    ours_and_theirs = [r for r in caplog.records if r.name in names]
    assert len(ours_and_theirs) == 3
    ours, theirs = ours_and_theirs[:2], ours_and_theirs[2]
    assert ours[0].getMessage() == f"tenant {terminal_text(HOSTILE_NAME)}: answered"
    assert ours[1].getMessage() == "failed a b"
    assert theirs.getMessage() == "left as it is: \x1b[2J", "only the package's records are touched"
    ours_text = caplog.text.replace(theirs.getMessage(), "")
    assert "ValueError: boom [2J" in ours_text and "second line ]0;pwned" in ours_text
    assert not set(ours_text.replace("\n", "")) & CONTROLS


# --------------------------------------------------------------------------- end to end


class Synced(NamedTuple):
    world: World
    engine: Engine
    instance: dg.DagsterInstance
    sync_run: str
    overview_run: str


@pytest.fixture(params=["sqlite", "postgres"])
def hostile(request: pytest.FixtureRequest, tmp_path: Path, sandbox_state: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Synced]:
    """A world whose store holds an organization with HOSTILE_NAME and whose first tenant has
    that name; synced through Dagster (one tenant's consent is revoked, so it fails) into a
    SQLite or PostgreSQL store; the overview refreshed."""
    world = generate_world(seed=8, tenants=3, users=60, revoked=1)
    world.tenants[0].display_name = HOSTILE_NAME
    world.store.organizations.append(
        StoreOrganization(id=max(o.id for o in world.store.organizations) + 1, name=HOSTILE_NAME))
    store_url = (request.getfixturevalue("pg_database") if request.param == "postgres"
                 else f"sqlite:///{tmp_path / 'store.db'}")
    with served_world(world, tmp_path, sandbox_state, monkeypatch, store_url) as served:
        runs = run_sync(served.instance)
        assert len(runs) == 1 and not runs[0].success, "the revoked tenant fails the run"
        overview = run_overview(served.instance)
        assert overview.success
        yield Synced(world, served.engine, served.instance, runs[0].run_id, overview.run_id)


def _events(instance: dg.DagsterInstance, run_id: str, kind: str) -> list:  # type: ignore[type-arg]
    return [e.dagster_event for e in instance.all_logs(run_id)
            if e.dagster_event and e.dagster_event.event_type_value == kind]


def _stored_name(engine: Engine, tenant_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(select(schema.tenants.c.display_name)
                            .where(schema.tenants.c.tenant_id == tenant_id)).scalar_one()


def test_hostile_names_forge_nothing_in_the_cli_the_previews_and_the_checks(hostile: Synced) -> None:
    world, engine, instance = hostile.world, hostile.engine, hostile.instance
    tenant = world.tenants[0]
    tenant_name = _stored_name(engine, tenant.id)
    assert "|" in tenant_name and "[click]" in tenant_name and "<img" in tenant_name
    runner = CliRunner()

    # match list: one line per tenant, nine cells each, the names as they are, no control code.
    listing = runner.invoke(main, ["match", "list"], color=True)  # color: click strips nothing
    assert listing.exit_code == 0, listing.output
    assert not set(listing.output.replace("\n", "")) & CONTROLS, repr(listing.output)
    lines = listing.output.rstrip("\n").split("\n")
    assert len(lines) == 2 + len(world.tenants) and all(len(_cells(line)) == 9 for line in lines)
    row = next(_cells(line) for line in lines[2:] if _cells(line)[1] == tenant.id)
    assert _unescaped_text(row[0]) == terminal_text(tenant_name)
    assert _unescaped_text(row[6]) == terminal_text(HOSTILE_NAME), "the store's organization, suggested"
    _inert_table(listing.output.rstrip("\n"), len(world.tenants), 9)

    # match held: a held user whose names (in the store) carry the same.
    user_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(insert(schema.held_users).values(
            tenant_id=tenant.id, user_id=user_id, user_principal_name=f"x|y@{tenant.default_domain}",
            display_name=HOSTILE_NAME, reason="likely duplicate\n| forged | row |", candidate_contact_ids="1",
            updated_at=datetime.now(UTC)))
        held_users = conn.execute(select(func.count()).select_from(schema.held_users)).scalar_one()
    held = runner.invoke(main, ["match", "held"], color=True)
    assert held.exit_code == 0, held.output
    assert not set(held.output.replace("\n", "")) & CONTROLS
    held_row = next(r for r in _inert_table(held.output.rstrip("\n"), held_users, 7) if r[2].strip() == user_id)
    assert (held_row[3].strip(), held_row[4].strip(), held_row[5].strip()) == (
        f"x|y@{tenant.default_domain}", _shown(HOSTILE_NAME), "likely duplicate | forged | row |")

    # match held-devices: a held device whose name and serial carry the same.
    device_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(insert(schema.held_devices).values(
            tenant_id=tenant.id, device_id=device_id, device_name=HOSTILE_NAME, serial_number="S|1\n| forged |",
            reason="serial S|1 equals configurations 1 and 2\n| forged | row |", candidate_configuration_ids="1",
            updated_at=datetime.now(UTC)))
        held_devices = conn.execute(select(func.count()).select_from(schema.held_devices)).scalar_one()
    devices = runner.invoke(main, ["match", "held-devices"], color=True)
    assert devices.exit_code == 0, devices.output
    assert not set(devices.output.replace("\n", "")) & CONTROLS
    device_row = next(r for r in _inert_table(devices.output.rstrip("\n"), held_devices, 7)
                      if r[2].strip() == device_id)
    assert (device_row[3].strip(), device_row[4].strip()) == (_shown(HOSTILE_NAME), "S|1 | forged |")

    # The organization_matches checks: the suggested tenant waits for a decision.
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
              for e in _events(instance, hostile.overview_run, "ASSET_CHECK_EVALUATION")}
    waiting = checks["all_tenants_matched"]
    assert not waiting.passed
    listed = int(re.search(r": (\d+)\. Fix: ", waiting.description or "")[1])  # the count the text gives
    rows = _inert_table(waiting.metadata["rows"].value, listed, 5)
    hostile_row = next(r for r in rows if r[1] == tenant.id)
    assert hostile_row[0].strip() == _shown(tenant_name) and hostile_row[4].strip() == _shown(HOSTILE_NAME)

    # The tenant's previews: its organization match (with the suggestion) and its users.
    materializations = [e.event_specific_data.materialization
                        for e in _events(instance, hostile.sync_run, "ASSET_MATERIALIZATION")]
    key = partitions_of(engine, [tenant.id])[tenant.id]
    assert not set(key) & (CONTROLS | set("|[]<>,/\\")) and key.endswith(f"({tenant.id[:8]})"), key
    (materialization,) = [m for m in materializations if m.partition == key]
    metadata = materialization.metadata
    (match_row,) = _inert_table(metadata["organization_match"].value, 1, 8)
    assert match_row[0].strip() == cell_text(tenant_name, CELL_LIMITS["tenant_name"]).strip()
    assert match_row[4].strip() == cell_text(f"1. {HOSTILE_NAME}", CELL_LIMIT), "the suggestion, cut"
    users, held = metadata["contact_matches rows"].value, metadata["held"].value
    _inert_table(metadata["contact_matches"].value, min(users, max(10, min(held, WAITING_PREVIEW_ROWS))))


def test_hostile_names_forge_nothing_in_status_doctor_and_the_doctor_report(hostile: Synced) -> None:
    world, engine, instance = hostile.world, hostile.engine, hostile.instance
    runner = CliRunner()
    # A store written before names were cleaned where Graph data enters still holds them raw.
    revoked = next(t for t in world.tenants if t.consent == "revoked")
    with engine.begin() as conn:
        conn.execute(update(schema.tenants).where(schema.tenants.c.tenant_id == revoked.id)
                     .values(display_name=HOSTILE_NAME))
    status = runner.invoke(main, ["status"], color=True)
    assert status.exit_code == 0, status.output
    assert not set(status.output.replace("\n", "")) & CONTROLS, repr(status.output)
    lines = status.output.rstrip("\n").split("\n")
    errors = lines.index("errors: 1")
    assert lines[errors + 1].startswith(f"  - {terminal_text(HOSTILE_NAME)}: ") and "AADSTS700016" in lines[errors + 1]
    assert lines[errors + 2].startswith("re-run the failed tenants alone") and len(lines) == errors + 3

    doctor = runner.invoke(main, ["doctor"], color=True)
    assert doctor.exit_code == 1, doctor.output
    assert not set(doctor.output.replace("\n", "")) & CONTROLS
    table = doctor.output.split("\n\n")[0]
    checks = len(table.split("\n")) - 2
    rows = _inert_table(table, checks, 6)
    assert any(r[1].strip() == _shown(_stored_name(engine, world.tenants[0].id)) for r in rows)

    result = build_defs().resolve_job_def("doctor").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    (observation,) = [e.event_specific_data.asset_observation
                      for e in _events(instance, result.run_id, "ASSET_OBSERVATION")]
    report = observation.metadata["doctor report"].value
    assert len(_inert_table(report, observation.metadata["doctor checks"].value, 7)) == checks
