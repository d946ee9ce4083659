"""The previews of a tenant's tables, as an analyst reads them in the Dagster UI: missing values
are empty cells, a cut preview says how many rows it shows, the columns an analyst decides on
come first, long text is cut with an ellipsis (the Parquet files keep it whole), people are named
beside their ids, held users come first, and each table carries its column schema; whatever a
tenant's names hold (markdown, HTML, escape codes, 500 characters)."""

from __future__ import annotations

import pickle
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt

from glue_pipeline.defs.metadata import table_schema
from glue_pipeline.runner import run_sync
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.world import (
    AssignedLicense,
    ContactEmail,
    ContactPhone,
    Domain,
    ManagedDevice,
    Sku,
    StoreConfiguration,
    StoreContact,
    StoreOrganization,
    StoreSeed,
    Tenant,
    User,
    World,
)
from glue_pipeline.tables import (
    PREVIEWED,
    TENANT_TABLES,
    WAITING_PREVIEW_ROWS,
    cell_text,
    preview,
    publish,
    table_preview,
)
from glue_pipeline_tests.rendered import RenderedTable
from glue_pipeline_tests.served import served_world

# A name that would add rows, cells, an image, a link and HTML to markdown, move the cursor,
# retitle a terminal and reverse text; 500 characters long.
HOSTILE_NAME = ("Evil | Name\r\n| forged | row |\n![x](https://evil.example/p.png) [click](https://evil.example) "
                "<img src=x onerror=alert(1)> \x1b[2J\x1b]0;pwned\x07 \u202eevil `code` &amp; \\").ljust(500, "x")
# What a missing value must never show as.
MISSING_TEXT = re.compile(r"\b(nan|NaN|None|NaT)\b|<NA>")
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table"])
TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td"}
FOOTER = re.compile(r"showing (\d+) of (\d+) rows")


class Shown(NamedTuple):
    """A preview as a CommonMark + GFM renderer shows it."""

    header: list[str]
    rows: list[list[str]]
    footer: str  # the text under the table ('' for none)


def shown(markdown: str) -> Shown:
    """The preview rendered: one table (its header and rows, each as wide as the header) and at
    most a paragraph under it; no link, image or HTML; no control character in the text."""
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", markdown), repr(markdown)
    parsed = RenderedTable()
    parsed.feed(MARKDOWN.render(markdown))
    assert parsed.tags <= TABLE_TAGS | {"p"}, f"markup beyond the table: {parsed.tags - TABLE_TAGS}"
    header, *rows = parsed.rows
    assert all(len(row) == len(header) for row in rows), "no value adds or removes a cell"
    return Shown([c.strip() for c in header], [[c.strip() for c in row] for row in rows], parsed.outside.strip())


def _guid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


# --------------------------------------------------------------------------- missing values, the cut


def _with_missing_values(rows: int) -> pd.DataFrame:
    """A frame whose every column has real missing values of its kind."""
    every = range(rows)
    return pd.DataFrame({
        "display_name": pd.array([None if i % 3 == 0 else f"User {i}" for i in every], dtype="string"),
        "score": [np.nan if i % 2 else 87.5 for i in every],
        "contact_id": pd.array([pd.NA if i % 2 else i for i in every], dtype="Int64"),
        "reason": pd.Series([pd.NA if i % 4 == 0 else "ok" for i in every], dtype=object),
        "seen_at": pd.to_datetime([pd.NaT if i % 2 else "2026-03-04 05:06:07" for i in every], utc=True),
        "phones": [[None, "+1 555 0100", np.nan] if i % 2 else None for i in every],
        "matched_on": [None] * rows,
    })


def test_missing_values_are_empty_cells_and_a_cut_preview_says_how_many_rows_it_shows() -> None:
    frame = _with_missing_values(62)
    markdown = preview(frame)
    assert not MISSING_TEXT.search(markdown), markdown
    table = shown(markdown)
    assert table.footer == "showing 10 of 62 rows" and markdown.endswith("|\n\nshowing 10 of 62 rows")
    assert len(table.rows) == 10
    first, second = table.rows[0], table.rows[1]
    assert first == ["", "87.5", "0", "", "2026-03-04 05:06", "", ""]
    assert second == ["User 1", "", "", "ok", "", "+1 555 0100", ""]

    whole = preview(frame.head(7))
    assert len(shown(whole).rows) == 7 and shown(whole).footer == "" and "showing" not in whole
    assert not MISSING_TEXT.search(whole)


@pytest.mark.parametrize("table", PREVIEWED)
def test_no_previewed_table_shows_a_missing_value_as_text(table: str) -> None:
    frame = _with_missing_values(12).assign(action=[None, "held"] * 6)
    markdown = table_preview(table, frame)
    assert not MISSING_TEXT.search(markdown), markdown
    assert shown(markdown).footer == "showing 10 of 12 rows"


# --------------------------------------------------------------------------- columns and cuts


# Each previewed table's columns as the sync builds them, and as its preview shows them.
COLUMN_ORDERS = {
    "organization_match": (
        ["tenant_id", "tenant_name", "status", "organization_id", "organization_name", "method", "reason",
         "suggestions"],
        ["tenant_name", "status", "organization_name", "reason", "suggestions", "tenant_id", "organization_id",
         "method"]),
    "contact_matches": (
        ["user_id", "user_principal_name", "display_name", "action", "contact_id", "matched_on", "reason",
         "contact_name"],
        ["display_name", "user_principal_name", "action", "reason", "contact_name", "user_id", "contact_id",
         "matched_on"]),
    "duplicate_risk": (
        ["user_id", "contact_id", "score", "level", "reasons", "contact_name", "display_name", "user_principal_name"],
        ["display_name", "user_principal_name", "contact_name", "score", "level", "reasons", "user_id",
         "contact_id"]),
    "differences": (
        ["contact_id", "contact_name", "user_id", "user_principal_name", "field", "store_value", "microsoft_value",
         "first_seen_at", "last_seen_at", "run_id", "display_name"],
        ["display_name", "user_principal_name", "contact_name", "field", "store_value", "microsoft_value",
         "contact_id", "user_id", "run_id", "first_seen_at", "last_seen_at"]),
    "licenses": (
        ["sku_id", "part_number", "product_name", "capability_status", "consumed", "enabled", "suspended",
         "warning", "unused"],
        ["product_name", "part_number", "capability_status", "consumed", "enabled", "unused", "suspended",
         "warning", "sku_id"]),
    "device_matches": (
        ["device_id", "device_name", "serial_number", "action", "configuration_id", "matched_on", "reason",
         "configuration_name"],
        ["device_name", "serial_number", "action", "reason", "configuration_name", "device_id", "configuration_id",
         "matched_on"]),
    "device_risk": (
        ["device_id", "configuration_id", "score", "level", "reasons", "configuration_name", "device_name",
         "serial_number"],
        ["device_name", "serial_number", "configuration_name", "score", "level", "reasons", "device_id",
         "configuration_id"]),
}


def test_every_previewed_table_leads_with_the_columns_an_analyst_decides_on() -> None:
    assert set(COLUMN_ORDERS) == set(PREVIEWED)
    for table, (built, previewed) in COLUMN_ORDERS.items():
        values = {c: f"v{n}" for n, c in enumerate(built)}
        frame = pd.DataFrame([values], columns=built)
        assert shown(table_preview(table, frame)) == Shown(previewed, [[values[c] for c in previewed]], ""), table


def _hostile_matches() -> pd.DataFrame:
    """contact_matches rows whose every text is long or hostile; a cut falls right after a pipe
    in one name and right after a backslash in another."""
    reason = "likely duplicate of contact 7 (score 100: same name | [x](https://evil.example)) " * 4
    return pd.DataFrame({
        "user_id": [_guid(f"user {i}") for i in range(3)],
        "user_principal_name": [("a" * 80) + "@contoso.example", "b|c@contoso.example", "d@contoso.example"],
        "display_name": [HOSTILE_NAME, "a" * 28 + "|" + "b" * 10, "a" * 28 + "\\" + "b" * 10],
        "action": ["held", "create", "match"],
        "contact_id": pd.array([7, pd.NA, 9], dtype="Int64"),
        "matched_on": ["duplicate_risk", None, "email"],
        "reason": [reason, "no contact has any of the user's addresses\r\n| forged | row |", "\x1b]0;pwned\x07"],
        "contact_name": pd.array(["Grace <b>Hopper</b>", pd.NA, "Ada " + "Lovelace " * 10], dtype="string"),
    })


def test_long_and_hostile_values_are_cut_inert_cells_and_whole_in_the_parquet_file(tmp_path: Path) -> None:
    frame = _hostile_matches()
    published = publish({"contact_matches": frame}, "tenant-1", tmp_path)["contact_matches"]
    assert published["preview"] is not None
    table = shown(published["preview"])
    assert table.header[:2] == ["display_name", "user_principal_name"] and len(table.rows) == 3
    rows = [dict(zip(table.header, row, strict=True)) for row in table.rows]
    hostile = rows[0]
    assert len(hostile["display_name"]) == 30 and hostile["display_name"].endswith("…")
    assert hostile["display_name"] == cell_text(HOSTILE_NAME, 30) == "Evil | Name  | forged | row |…"
    assert hostile["user_principal_name"] == "a" * 27 + "…"
    assert len(hostile["reason"]) == 60 and hostile["reason"].startswith("likely duplicate of contact 7")
    assert hostile["user_id"] == frame.at[0, "user_id"][:8] + "…"
    assert (rows[1]["display_name"], rows[2]["display_name"]) == ("a" * 28 + "|…", "a" * 28 + "\\…")
    assert rows[1]["reason"] == "no contact has any of the user's addresses  | forged | row |"
    assert rows[2]["reason"] == "]0;pwned" and rows[0]["contact_name"] == "Grace <b>Hopper</b>"
    assert rows[2]["contact_name"] == ("Ada " + "Lovelace " * 10)[:29].rstrip() + "…"
    # Every row fits the screen: no cell is longer than its column's limit.
    limits = {"display_name": 30, "user_principal_name": 28, "reason": 60, "contact_name": 30, "user_id": 9}
    assert all(len(row[c]) <= n for row in rows for c, n in limits.items())

    written = pd.read_parquet(str(published["path"]))
    assert written["display_name"].tolist() == frame["display_name"].tolist(), "the file keeps the names whole"
    assert written["reason"].tolist() == frame["reason"].tolist()


# --------------------------------------------------------------------------- held users first


@pytest.mark.parametrize(("held", "rows"), [(0, 10), (3, 10), (15, 15), (40, 40), (60, WAITING_PREVIEW_ROWS)])
def test_held_and_ambiguous_users_lead_the_contact_matches_preview(held: int, rows: int) -> None:
    """62 users, the held ones (every fifth of them ambiguous) listed last: the preview shows them
    first, then the creates, and as many rows as it takes to show every held user, up to 50."""
    others = ["match", "skipped", "create"] * 21
    actions = others[:62 - held] + ["ambiguous" if i % 5 == 4 else "held" for i in range(held)]
    frame = pd.DataFrame({"user_id": [_guid(str(i)) for i in range(62)],
                          "user_principal_name": [f"user{i}@contoso.example" for i in range(62)],
                          "display_name": [f"User {i}" for i in range(62)], "action": actions,
                          "contact_id": pd.array([pd.NA] * 62, dtype="Int64"), "matched_on": None,
                          "reason": [f"reason {i}" for i in range(62)]})
    table = shown(table_preview("contact_matches", frame))
    assert table.footer == f"showing {rows} of 62 rows" and len(table.rows) == rows
    previewed = [dict(zip(table.header, row, strict=True)) for row in table.rows]
    waiting = [r for r in previewed if r["action"] in ("held", "ambiguous")]
    assert len(waiting) == min(held, WAITING_PREVIEW_ROWS) and previewed[:len(waiting)] == waiting, "held first"
    assert [r["display_name"] for r in waiting] == [f"User {i}" for i in range(62 - held, 62)][:WAITING_PREVIEW_ROWS]
    creates = [r["action"] for r in previewed[len(waiting):]]
    assert creates == ["create"] * len(creates), "then the users that become new contacts"


# --------------------------------------------------------------------------- column schemas


def test_each_table_is_published_with_its_column_schema_as_plain_values(tmp_path: Path) -> None:
    frames = {"contact_matches": _hostile_matches(), "users": _with_missing_values(3)}
    report = publish(frames, "tenant-1", None)
    for name, frame in frames.items():
        columns = report[name]["columns"]
        assert columns == [(str(c), str(t)) for c, t in frame.dtypes.items()]
        assert pickle.loads(pickle.dumps(report[name])) == report[name], "crosses a process pipe as it is"
        schema = table_schema(columns)
        assert isinstance(schema, dg.TableSchemaMetadataValue)
        assert [(c.name, c.type) for c in schema.schema.columns] == columns
    assert ("contact_id", "Int64") in report["contact_matches"]["columns"]
    assert report["users"]["preview"] is None and report["users"]["path"] is None, "not previewed, not written"


# --------------------------------------------------------------------------- a synced tenant

SLUG = "contoso"
DOCUMENTED_TITLE = "Head of | [Sales](https://evil.example) <b>EMEA</b> and a very long documented title indeed"


def _user(name: str, local: str, sku: Sku, **fields: Any) -> User:
    first, _, last = name.partition(" ")
    return User(id=_guid(f"{SLUG}:{local}"), userPrincipalName=f"{local}@{SLUG}.example", displayName=name,
                givenName=first, surname=last or None, assignedLicenses=[AssignedLicense(skuId=sku.skuId)],
                **fields)


def previews_world() -> World:
    """Contoso Ltd, matched by name: Ada (documented, with another title than Microsoft's), Grace
    (a new user with the name and mobile phone of a documented contact, so held as a likely
    duplicate, listed last), a user with HOSTILE_NAME and eleven more new users; Ada's laptop
    (documented by its serial) and a new front-desk PC named like a documented one of another
    serial (a medium duplicate risk)."""
    sku = Sku(skuId=_guid(f"{SLUG}:sku"), skuPartNumber="SPE_E3", enabled=20)
    ada = _user("Ada Lovelace", "ada", sku, jobTitle="Director")
    grace = _user("Grace Hopper", "grace", sku, mobilePhone="+1 555 0142")
    users = [ada, _user(HOSTILE_NAME, "evil", sku)]
    users += [_user(f"User{i:02} Contoso", f"user{i:02}", sku) for i in range(11)] + [grace]
    devices = [ManagedDevice(id=_guid("ada laptop"), deviceName="ADA-LAPTOP", serialNumber="5CG1111AAA",
                             operatingSystem="Windows", model="HP EliteBook 840 G8", userId=ada.id,
                             userPrincipalName=ada.userPrincipalName),
               ManagedDevice(id=_guid("front desk"), deviceName="FRONT-DESK", serialNumber="5CG2222BBB",
                             operatingSystem="Windows", model="HP EliteDesk 800 G6")]
    tenant = Tenant(id=_guid(SLUG), display_name="Contoso Ltd", users=users, skus=[sku], devices=devices,
                    domains=[Domain(name=f"{SLUG}.example", is_default=True),
                             Domain(name=f"{SLUG}.onmicrosoft.com", is_initial=True)])
    contacts = [StoreContact(id=10, organization_id=1, first_name="Ada", last_name="Lovelace", title=DOCUMENTED_TITLE,
                             emails=[ContactEmail(value=ada.userPrincipalName, primary=True)]),
                StoreContact(id=11, organization_id=1, first_name="Grace", last_name="Hopper",
                             emails=[ContactEmail(value="grace.hopper@navy.example", primary=True)],
                             phones=[ContactPhone(value="+1 555 0142", label="Mobile", primary=True)])]
    base = generate_world(seed=3, tenants=1, users=5, revoked=0)
    return World(partner=base.partner, app=base.app, tenants=[tenant],
                 store=StoreSeed(organizations=[StoreOrganization(id=1, name="Contoso Ltd", configurations=[
                     StoreConfiguration(id=21, name="Ada's laptop", serial_number="5cg1111aaa"),
                     StoreConfiguration(id=22, name="FRONT-DESK", serial_number="5CG3333CCC")])],
                                 contacts=contacts))


@pytest.fixture
def synced(tmp_path: Path, sandbox_state: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The tenant synced through Dagster into a SQLite store: its materialization's metadata."""
    world = previews_world()
    with served_world(world, tmp_path, sandbox_state, monkeypatch) as served:
        (run,) = run_sync(served.instance)
        assert run.success, run.error
        (materialization,) = [
            e.dagster_event.event_specific_data.materialization for e in served.instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
            and e.dagster_event.asset_key == dg.AssetKey("tenant_contacts")]
        yield {key: entry.value for key, entry in materialization.metadata.items()}


def test_a_synced_tenant_shows_its_people_by_name_its_held_user_first_and_each_schema(
        synced: dict[str, Any]) -> None:
    files = {table: pd.read_parquet(synced[f"{table} file"]) for table in TENANT_TABLES}
    for table, frame in files.items():
        schema = synced[f"{table} columns"]  # one schema per table: Dagster takes one column_schema an event
        assert [c.name for c in schema.columns] == list(frame.columns) and all(c.type for c in schema.columns)
    assert ("contact_id", "Int64") in [(c.name, c.type) for c in synced["contact_matches columns"].columns]
    previews = {table: synced[table] for table in PREVIEWED if table in synced}
    assert set(previews) == set(PREVIEWED), "every previewed table has rows"
    for table, markdown in previews.items():
        assert not MISSING_TEXT.search(markdown), (table, markdown)

    # contact_matches: Grace, held, first; then the new users, the hostile name cut and inert.
    matches = shown(previews["contact_matches"])
    assert matches.footer == "showing 10 of 14 rows" and len(matches.rows) == 10
    rows = [dict(zip(matches.header, row, strict=True)) for row in matches.rows]
    grace = rows[0]
    assert (grace["display_name"], grace["user_principal_name"], grace["action"], grace["contact_name"],
            grace["contact_id"]) == ("Grace Hopper", "grace@contoso.example", "held", "Grace Hopper", "11")
    assert grace["reason"].startswith("likely duplicate of contact 11") and grace["reason"].endswith("…")
    assert [r["action"] for r in rows[1:]] == ["create"] * 9
    users = files["users"].set_index("user_principal_name")["display_name"]
    evil = next(r for r in rows if r["user_principal_name"] == "evil@contoso.example")
    assert evil["display_name"] == cell_text(users["evil@contoso.example"], 30) and evil["display_name"].endswith("…")
    assert len(users["evil@contoso.example"]) > 200, "the users file keeps the name whole"

    # device_matches and device_risk name the device and the configuration beside their ids.
    devices = {r[0]: r for r in shown(previews["device_matches"]).rows}
    assert devices["ADA-LAPTOP"][:5] == ["ADA-LAPTOP", "5CG1111AAA", "match", devices["ADA-LAPTOP"][3],
                                         "Ada's laptop"]
    assert devices["FRONT-DESK"][2] == "create"
    (device_risk,) = shown(previews["device_risk"]).rows
    assert device_risk[:3] == ["FRONT-DESK", "5CG2222BBB", "FRONT-DESK"] and device_risk[4] == "medium"

    # duplicate_risk and differences name the user and the contact beside their ids.
    risk = files["duplicate_risk"]
    assert risk[["display_name", "user_principal_name", "contact_name", "contact_id", "level"]].values.tolist() == \
           [["Grace Hopper", "grace@contoso.example", "Grace Hopper", 11, "high"]]
    (risk_row,) = shown(previews["duplicate_risk"]).rows
    assert risk_row[:5] == ["Grace Hopper", "grace@contoso.example", "Grace Hopper", "100", "high"]
    title = files["differences"].set_index("field").loc["title"]
    assert (title["display_name"], title["user_principal_name"], title["contact_name"], title["contact_id"],
            title["store_value"]) == ("Ada Lovelace", "ada@contoso.example", "Ada Lovelace", 10, DOCUMENTED_TITLE)
    differences = shown(previews["differences"])
    (shown_title,) = [dict(zip(differences.header, r, strict=True)) for r in differences.rows if r[3] == "title"]
    assert shown_title["display_name"] == "Ada Lovelace" and shown_title["contact_name"] == "Ada Lovelace"
    assert shown_title["store_value"] == cell_text(DOCUMENTED_TITLE, 28) == "Head of | [Sales](https://e…"

    (organization,) = shown(previews["organization_match"]).rows
    assert organization[:3] == ["Contoso Ltd", "matched", "Contoso Ltd"]
    licenses = shown(previews["licenses"])
    assert licenses.header[0] == "product_name" and licenses.rows[0][:2] == ["Microsoft 365 E3", "SPE_E3"]
