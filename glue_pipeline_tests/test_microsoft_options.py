"""Microsoft data options, each run end to end against the sandbox: the tenant's Manage link for
direct-login tenants, the primary email (UPN or mail), syncs with the mailbox report or Entra ID
off, and mailbox reports without Recipient Type or with their columns in another order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from glue_pipeline.cli import main
from glue_pipeline.demo import sandbox_env
from glue_pipeline.mapping import admin_center_url, contact_fields, entra_user_url
from glue_pipeline.options import FieldMapping
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline_tests.stores import granted_tenants as _granted
from glue_pipeline_tests.stores import table_rows as _rows

MAILBOX_FIELDS = ["mailbox_storage_used_bytes", "mailbox_item_count", "mailbox_warning_quota_bytes",
                  "mailbox_quota_bytes", "mailbox_last_activity", "mailbox_has_archive", "mailbox_report_date"]
ENTRA_FIELDS = ["last_sign_in", "last_password_change"]

Sync = Callable[..., Engine]


@pytest.fixture
def sync_with(glue_env: dict, small_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sync]:
    """sync_with(options, store="main", url=None) -> engine: discovery and one sync of every tenant
    of the small world with these options, into the named store. Each store is its own database
    (a SQLite file unless `url` names another; seeded on first use) with its own cache, tables and
    Dagster instance."""
    instances = []

    def sync(options: dict | None = None, store: str = "main", url: str | None = None) -> Engine:
        folder = tmp_path / store
        url = url or f"sqlite:///{folder / 'store.db'}"
        new = not folder.exists()
        folder.mkdir(exist_ok=True)
        engine = make_engine(url)
        if new:
            seed_store(engine, small_world.store)
        config = folder / "glue.yaml"
        config.write_text(yaml.safe_dump({"sync": options or {}}))
        for key, value in {"GLUE_STORE_URL": url, "GLUE_CONFIG": str(config), "GLUE_VAR_DIR": str(folder / "var"),
                           "GLUE_DATA_DIR": str(folder / "tables"),
                           "DAGSTER_HOME": str(folder / "dagster_home")}.items():
            monkeypatch.setenv(key, value)
        instance = get_instance()
        instances.append(instance)
        assert run_discovery(instance).success
        run_sync(instance)
        return engine

    yield sync
    for instance in instances:
        instance.dispose()




def _latest_results(engine: Engine) -> list[dict]:
    """Each tenant's latest sync_results row (a sync of every tenant may take several runs)."""
    rows = sorted(_rows(engine, schema.sync_results), key=lambda r: r["finished_at"])
    return list({r["tenant_id"]: r for r in rows}.values())


def _assert_granted_tenants_synced(engine: Engine, world: World) -> None:
    status = {r["tenant_id"]: r["status"] for r in _latest_results(engine)}
    assert {t.id for t in _granted(world)} <= set(status)
    assert all(status[t.id] != "failed" for t in _granted(world)), status


def _overlays(engine: Engine) -> dict[tuple[str, str], dict]:
    return {(o["tenant_id"], o["user_id"]): o for o in _rows(engine, schema.contact_microsoft)}


# --------------------------------------------------------------------------- Manage links


@pytest.fixture
def direct_env(sandbox_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, dict]]:
    """A world with three direct-login tenants (two of them reached only that way), served, with
    the configuration file naming their sources."""
    world = generate_world(seed=5, tenants=6, users=240, revoked=0, direct=3)
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as server:
        env = {**sandbox_env(server, world), "GLUE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
               "GLUE_VAR_DIR": str(tmp_path / "var"), "GLUE_DATA_DIR": str(tmp_path / "tables"),
               "DAGSTER_HOME": str(tmp_path / "dagster_home"), "GLUE_CONFIG": str(tmp_path / "glue.yaml")}
        sources = []
        for position, app in enumerate(world.direct_apps):
            env[f"GLUE_SECRET_DIRECT_{position}"] = app.client_secret
            sources.append({"name": f"direct-{position}", "tenant_id": app.tenant_id, "client_id": app.client_id,
                            "client_secret_env": f"GLUE_SECRET_DIRECT_{position}"})
        (tmp_path / "glue.yaml").write_text(yaml.safe_dump({"sources": sources}))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        seed_store(make_engine(env["GLUE_STORE_URL"]), world.store)
        yield world, env


def test_a_direct_login_tenant_gets_the_direct_admin_center_link(direct_env: tuple[World, dict]) -> None:
    world, env = direct_env
    result = CliRunner().invoke(main, ["sync"])
    assert result.exit_code == 0, result.output
    engine = make_engine(env["GLUE_STORE_URL"])
    tenants = {r["tenant_id"]: r for r in _rows(engine, schema.tenants)}
    only_direct = {t.id for t in world.tenants if t.relationship == "none"}
    assert only_direct and {t for t, r in tenants.items() if r["relationship"] == "direct"} == only_direct
    partner = {t.id for t in world.tenants} - only_direct
    assert partner & {a.tenant_id for a in world.direct_apps}, "a partner customer with a direct-login app too"
    for tenant in world.tenants:
        row = tenants[tenant.id]
        if tenant.id in only_direct:
            assert row["manage_url"] == f"https://admin.cloud.microsoft/?tenantId={tenant.id}"
        else:
            assert row["manage_url"] == f"https://admin.cloud.microsoft/?delegatedOrg={tenant.initial_domain}", \
                "a partner customer keeps the delegated form, whichever source syncs it"
    overlays = _rows(engine, schema.contact_microsoft)
    assert {o["tenant_id"] for o in overlays} & only_direct and {o["tenant_id"] for o in overlays} & partner
    for overlay in overlays:
        default = tenants[overlay["tenant_id"]]["default_domain"]
        assert overlay["manage_url"] == (f"https://entra.microsoft.com/{default}/#blade/Microsoft_AAD_IAM/"
                                         f"UserDetailsMenuBlade/Profile/userId/{overlay['user_id']}"), \
            "the Entra link names the tenant in its path: right for partner and direct admins alike"


def test_manage_links_keep_a_tenants_domain_inside_its_part_of_the_url() -> None:
    tenant_id = "7d2f0c4e-9a1b-4c3d-8e5f-a6b7c8d9e0f1"
    hostile = "evil.example/#/x?delegatedOrg=other.onmicrosoft.com"
    assert admin_center_url(hostile, tenant_id) == (
        "https://admin.cloud.microsoft/?delegatedOrg=evil.example%2F%23%2Fx%3FdelegatedOrg%3Dother.onmicrosoft.com")
    assert admin_center_url(hostile, tenant_id, direct=True) == f"https://admin.cloud.microsoft/?tenantId={tenant_id}"
    assert admin_center_url(None, tenant_id) == f"https://admin.cloud.microsoft/?delegatedOrg={tenant_id}"
    user_id = "0f1e2d3c-4b5a-4968-8776-655443322110"
    assert entra_user_url(hostile, user_id, tenant_id).startswith(
        "https://entra.microsoft.com/evil.example%2F%23%2Fx%3FdelegatedOrg%3Dother.onmicrosoft.com/#blade/")
    assert entra_user_url(None, user_id, tenant_id).startswith(f"https://entra.microsoft.com/{tenant_id}/#blade/"), \
        "without a default domain the tenant id names the tenant"


# --------------------------------------------------------------------------- primary email


def _emails_by_contact(engine: Engine) -> dict[int, list[dict]]:
    emails: dict[int, list[dict]] = {}
    for row in _rows(engine, schema.contact_emails):
        emails.setdefault(row["contact_id"], []).append(row)
    return emails


def _primary(emails: list[dict]) -> str:
    primaries = [e["value"] for e in emails if e["is_primary"]]
    assert len(primaries) == 1, emails
    return str(primaries[0])


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_primary_email_follows_the_mapping_and_a_flip_converges(database: str, sync_with: Sync,
                                                                    small_world: World,
                                                                    request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_database") if database == "postgres" else None
    include = {"users": {"include_unlicensed": True}}
    engine = sync_with({**include, "mapping": {"primary_email": "mail"}}, url=url)
    _assert_granted_tenants_synced(engine, small_world)
    users = {(t.id, u.id): u for t in _granted(small_world) for u in t.users}
    overlays = _overlays(engine)
    differing = [k for k in overlays if users[k].mail and users[k].mail.lower() != users[k].userPrincipalName.lower()]
    without = [k for k in overlays if not users[k].mail]
    assert differing and without, "the small world has synced users of both kinds"
    emails = _emails_by_contact(engine)
    for key in differing:
        mine = emails[overlays[key]["contact_id"]]
        assert _primary(mine) == users[key].mail
        assert users[key].userPrincipalName.lower() in {e["value"].lower() for e in mine if not e["is_primary"]}, \
            "the UPN becomes another email"
    for key in without:
        assert _primary(emails[overlays[key]["contact_id"]]) == users[key].userPrincipalName, "no mail: the UPN"
    contacts = _rows(engine, schema.contacts)

    engine = sync_with({**include, "mapping": {"primary_email": "upn"}}, url=url)
    assert len(_rows(engine, schema.contacts)) == len(contacts), "flipping the option creates no contact"
    assert _overlays(engine).keys() == overlays.keys()
    results = _latest_results(engine)
    assert sum(r["created"] for r in results) == 0 and sum(r["updated"] for r in results) > 0
    emails = _emails_by_contact(engine)
    for key in differing:
        mine = emails[overlays[key]["contact_id"]]
        assert _primary(mine) == users[key].userPrincipalName
        assert users[key].mail.lower() in {e["value"].lower() for e in mine if not e["is_primary"]}, \
            "no address is removed: mail stays as another email"
    for mine in emails.values():
        values = [e["value"].lower() for e in mine]
        assert len(values) == len(set(values)), "no address twice on one contact"

    engine = sync_with({**include, "mapping": {"primary_email": "mail"}}, url=url)
    assert len(_rows(engine, schema.contacts)) == len(contacts)
    emails = _emails_by_contact(engine)
    assert all(_primary(emails[overlays[k]["contact_id"]]) == users[k].mail for k in differing)


def test_the_primary_email_takes_mail_only_when_it_is_an_address() -> None:
    upn = "ann.lee@contoso.onmicrosoft.com"
    user = {"id": "u1", "user_principal_name": upn, "mail": "Ann.Lee@contoso.com",
            "proxy_addresses": ["SMTP:Ann.Lee@contoso.com", "smtp:ann@contoso.com", "SIP:ann@contoso.com"]}
    by_mail = contact_fields(user, FieldMapping(primary_email="mail"))
    assert (by_mail.primary_email, by_mail.aliases) == ("Ann.Lee@contoso.com", [upn, "ann@contoso.com"])
    by_upn = contact_fields(user, FieldMapping())
    assert (by_upn.primary_email, by_upn.aliases) == (upn, ["Ann.Lee@contoso.com", "ann@contoso.com"])
    no_aliases = contact_fields(user, FieldMapping(primary_email="mail", aliases=False))
    assert no_aliases.aliases == [upn], "the UPN is kept as another email even without proxy aliases"
    for mail in (None, "", "   ", "not an address"):
        fields = contact_fields({**user, "mail": mail, "proxy_addresses": []}, FieldMapping(primary_email="mail"))
        assert (fields.primary_email, fields.aliases) == (upn, []), mail
    same = contact_fields({**user, "mail": upn.upper(), "proxy_addresses": []}, FieldMapping(primary_email="mail"))
    assert (same.primary_email, same.aliases) == (upn.upper(), []), "one address, not two that differ in case"


def test_an_unknown_primary_email_choice_is_refused_naming_the_choices(
        glue_env: dict, small_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "glue.yaml"
    config.write_text(yaml.safe_dump({"sync": {"mapping": {"primary_email": "proxy"}}}))
    monkeypatch.setenv("GLUE_CONFIG", str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)
    result = CliRunner().invoke(main, ["sync"])
    assert result.exit_code != 0
    assert "option 'mapping.primary_email' is invalid" in result.output
    assert "'upn' or 'mail'" in result.output, result.output
    assert not _rows(engine, schema.contact_microsoft) and not _rows(engine, schema.sync_results)


# --------------------------------------------------------------------------- mailbox_usage and entra off


def test_mailbox_usage_off_fetches_no_report_and_leaves_the_mailbox_overlay(sync_with: Sync, sandbox: Sandbox,
                                                                           small_world: World) -> None:
    engine = sync_with({"mailbox_usage": False}, store="off")
    _assert_granted_tenants_synced(engine, small_world)
    assert sandbox.stats.graph.get("getMailboxUsageDetail", 0) == 0
    assert sandbox.stats.requests.get("report-download", 0) == 0
    overlays = _overlays(engine)
    assert overlays and all(o[f] is None for o in overlays.values() for f in MAILBOX_FIELDS), \
        "a first sync without the report leaves the mailbox fields empty"

    sandbox.stats.reset()
    engine = sync_with(store="on")
    assert sandbox.stats.graph["getMailboxUsageDetail"] > 0, "on: the report is fetched"
    before = _overlays(engine)
    assert any(o["mailbox_storage_used_bytes"] is not None for o in before.values())
    sandbox.stats.reset()
    # A full read, with an empty cache, as the day after: nothing of the report is at hand.
    engine = sync_with({"mailbox_usage": False, "users_delta": False}, store="on")
    assert sandbox.stats.graph.get("getMailboxUsageDetail", 0) == 0
    assert sandbox.stats.requests.get("report-download", 0) == 0
    _assert_granted_tenants_synced(engine, small_world)
    after = _overlays(engine)
    assert after.keys() == before.keys()
    assert all(after[k][f] == before[k][f] for k in before for f in MAILBOX_FIELDS), \
        "the mailbox fields stay as they were"


def test_entra_off_selects_no_sign_in_activity_and_leaves_the_entra_fields(sync_with: Sync, sandbox: Sandbox,
                                                                         small_world: World) -> None:
    engine = sync_with({"entra": False}, store="off")
    _assert_granted_tenants_synced(engine, small_world)
    selected = sandbox.stats.selected
    assert selected["users:userPrincipalName"] > 0, "the users were read with a $select"
    assert not [k for k in selected if k.endswith(":signInActivity")], selected
    overlays = _overlays(engine)
    assert overlays and all(o[f] is None for o in overlays.values() for f in ENTRA_FIELDS), \
        "a first sync without Entra leaves last sign-in and last password change empty"
    assert all(o["status"] in ("enabled", "disabled") for o in overlays.values()), "the status is always kept"
    notes = _rows(engine, schema.sync_log, schema.sync_log.c.message.like("last sign-in is left empty%"))
    assert not notes, "nothing asked, nothing refused"

    # Signed in today, so the overlay shows it (older sign-ins are not shown).
    today = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for tenant in sandbox.world.tenants:
        for user in tenant.users:
            if user.signInActivity is not None:
                user.signInActivity.lastSignInDateTime = today
    sandbox.refresh()
    sandbox.stats.reset()
    engine = sync_with(store="on")
    assert sandbox.stats.selected["users:signInActivity"] > 0, "on: signInActivity is selected"
    before = _overlays(engine)
    for field in ENTRA_FIELDS:
        assert any(o[field] is not None for o in before.values()), field
    sandbox.stats.reset()
    engine = sync_with({"entra": False, "users_delta": False}, store="on")  # a full read, as every day
    _assert_granted_tenants_synced(engine, small_world)
    assert not [k for k in sandbox.stats.selected if k.endswith(":signInActivity")]
    assert sandbox.stats.graph["users"] > 0, "all users were read again"
    after = _overlays(engine)
    assert after.keys() == before.keys()
    assert all(after[k][f] == before[k][f] for k in before for f in ENTRA_FIELDS), \
        "last sign-in and last password change stay as they were"


# --------------------------------------------------------------------------- mailbox report layouts


def _skip_reasons(folder: Path, tenant_ids: list[str]) -> dict[tuple[str, str], str]:
    reasons = {}
    for tenant_id in tenant_ids:
        matches = pd.read_parquet(folder / "tables" / "contact_matches" / f"{tenant_id}.parquet")
        for row in matches[matches["action"] == "skipped"].itertuples():
            reasons[(tenant_id, str(row.user_id))] = str(row.reason)
    return reasons


@pytest.mark.parametrize("layout", ["no_recipient_type", "reordered"])
def test_a_mailbox_report_in_another_layout_fills_the_overlay_the_same(
        layout: str, sync_with: Sync, sandbox: Sandbox, small_world: World, tmp_path: Path) -> None:
    tenants = [t.id for t in _granted(small_world)]
    standard = sync_with(store="standard")
    sandbox.faults.report_layout.update({t: layout for t in tenants})
    sandbox.stats.reset()
    variant = sync_with(store=layout)
    assert sandbox.stats.requests["report-download"] > 0 and sandbox.stats.report_faults == 0
    _assert_granted_tenants_synced(variant, small_world)
    expected, got = _overlays(standard), _overlays(variant)
    assert got.keys() == expected.keys(), "the same users became contacts"
    assert any(o["mailbox_storage_used_bytes"] is not None for o in got.values())
    for key, overlay in expected.items():
        assert {f: got[key][f] for f in MAILBOX_FIELDS} == {f: overlay[f] for f in MAILBOX_FIELDS}, key
    with variant.connect() as conn:
        notes = conn.execute(select(func.count()).select_from(schema.sync_log)
                             .where(schema.sync_log.c.message.like("the mailbox usage report%"))).scalar_one()
    assert notes == 0, "the report was read, not refused"

    # Where report names are concealed no report row is joined, so no shared mailbox is told apart.
    shared = {(t.id, u.id) for t in _granted(small_world) if not t.reports_concealed for u in t.users
              if u.mailbox is not None and u.mailbox.recipient_type == "Shared"}
    assert shared, "the small world has shared mailboxes in tenants whose reports name users"
    before, after = _skip_reasons(tmp_path / "standard", tenants), _skip_reasons(tmp_path / layout, tenants)
    assert all(before[k] == "shared or resource mailbox" for k in shared)
    if layout == "reordered":
        assert after == before
    else:
        # Without Recipient Type nothing tells a shared mailbox apart: it is skipped as the
        # unlicensed account it is, and never becomes a contact.
        assert all(after[k] == "no license assigned" for k in shared)
        assert {k: r for k, r in after.items() if k not in shared} == \
            {k: r for k, r in before.items() if k not in shared}
    assert not shared & got.keys()
