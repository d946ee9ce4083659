"""Microsoft data in depth, against the sandbox: sync options from a configuration file, Entra
fields with their fallback, concealed reports, organization details, licenses, doctor."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Engine, select

from glue_pipeline.cli import main
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.server import Sandbox
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline_tests.stores import granted_tenants as _granted
from glue_pipeline_tests.stores import table_rows as _rows


@pytest.fixture
def sync_with(glue_env: dict, small_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """sync_with(options) -> store engine: one full sync of the small world with these options."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)
    instances = []

    def sync(options: dict | None = None) -> Engine:
        config = tmp_path / "glue.yaml"
        config.write_text(yaml.safe_dump({"sync": options or {}}))
        monkeypatch.setenv("GLUE_CONFIG", str(config))
        instance = get_instance()
        instances.append(instance)
        assert run_discovery(instance).success
        run_sync(instance)
        return engine

    yield sync
    for instance in instances:
        instance.dispose()




def test_concealed_reports_are_detected_and_not_joined(sync_with, small_world: World) -> None:
    engine = sync_with()
    concealed = {t.id for t in _granted(small_world) if t.reports_concealed}
    assert concealed, "the small world has tenants with concealed reports"
    flagged = {r["tenant_id"] for r in _rows(engine, schema.tenants, schema.tenants.c.reports_concealed.is_(True))}
    assert flagged == concealed
    overlays = _rows(engine, schema.contact_microsoft, schema.contact_microsoft.c.tenant_id.in_(concealed))
    assert overlays and all(o["mailbox_storage_used_bytes"] is None for o in overlays)
    notes = _rows(engine, schema.sync_log, schema.sync_log.c.action == "tenant_note")
    steps = [n for n in notes if "Display concealed user, group, and site names" in n["message"]]
    assert {n["tenant_id"] for n in steps} == concealed and len(steps) == len(concealed)
    joined = _rows(engine, schema.contact_microsoft, schema.contact_microsoft.c.tenant_id.not_in(concealed))
    assert any(o["mailbox_storage_used_bytes"] is not None for o in joined)


def test_fix_concealed_reports_switches_concealment_off(sync_with, sandbox: Sandbox,
                                                       small_world: World) -> None:
    concealed = [t for t in _granted(small_world) if t.reports_concealed]
    allowed, refused = concealed[0], concealed[1]
    sandbox.config.world.tenant(allowed.id).roles.append("ReportSettings.ReadWrite.All")
    engine = sync_with({"fix_concealed_reports": True})
    still = {r["tenant_id"] for r in _rows(engine, schema.tenants, schema.tenants.c.reports_concealed.is_(True))}
    assert allowed.id not in still and refused.id in still
    notes = {n["tenant_id"]: n["message"] for n in _rows(
        engine, schema.sync_log, schema.sync_log.c.message.like("report name concealment%"))}
    assert "switched off" in notes[allowed.id]
    assert "ReportSettings.ReadWrite.All" in notes[refused.id], "refused: said, and the tenant still syncs"
    assert _rows(engine, schema.contact_microsoft, schema.contact_microsoft.c.tenant_id == refused.id)


def test_sign_in_is_left_empty_with_a_reason_where_graph_refuses_it(sync_with, small_world: World) -> None:
    engine = sync_with()
    notes = _rows(engine, schema.sync_log, schema.sync_log.c.message.like("last sign-in is left empty%"))
    assert notes, "some generated tenants have no Entra ID P1/P2"
    assert len(notes) == len({n["tenant_id"] for n in notes}), "said once per tenant"
    assert all("AuditLog.Read.All" in n["message"] for n in notes)
    refused = {n["tenant_id"] for n in notes}
    overlays = _rows(engine, schema.contact_microsoft, schema.contact_microsoft.c.tenant_id.in_(refused))
    assert overlays and all(o["last_sign_in"] is None for o in overlays)


def test_organization_details_licenses_and_manage_links(sync_with, small_world: World) -> None:
    engine = sync_with()
    tenant = _granted(small_world)[0]
    row = _rows(engine, schema.tenants, schema.tenants.c.tenant_id == tenant.id)[0]
    assert (row["city"], row["street"], row["postal_code"]) == (tenant.city, tenant.street, tenant.postal_code)
    assert set(row["verified_domains"].split(", ")) == {d.name for d in tenant.domains}
    assert row["manage_url"] == f"https://admin.cloud.microsoft/?delegatedOrg={tenant.initial_domain}"
    licenses = _rows(engine, schema.licenses, schema.licenses.c.tenant_id == tenant.id)
    assert {lic["sku_id"] for lic in licenses} == {s.skuId for s in tenant.skus}
    assert all(lic["unused"] == max(lic["enabled"] - lic["consumed"], 0) for lic in licenses)
    overlay = _rows(engine, schema.contact_microsoft, schema.contact_microsoft.c.tenant_id == tenant.id)[0]
    assert overlay["manage_url"].endswith(f"/userId/{overlay['user_id']}")
    assert overlay["licenses"], "each synced (licensed) user shows its licenses by name"


def test_options_select_users_and_leave_unmapped_fields_alone(sync_with, small_world: World) -> None:
    engine = sync_with({"users": {"include_unlicensed": True, "include_guests": True},
                        "licenses": False,
                        "mapping": {"title": None, "location": "department"}})
    assert not _rows(engine, schema.licenses)
    guests = [o for o in _rows(engine, schema.contact_microsoft) if o["user_type"] == "Guest"]
    assert guests, "guests are synced when the option says so"
    created = _rows(engine, schema.contacts, schema.contacts.c.created_by == "microsoft")
    assert created and all(c["title"] is None for c in created), "an unmapped field is never written"


def test_a_bad_configuration_is_refused_before_any_write(glue_env: dict, small_world: World, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "glue.yaml"
    config.write_text(yaml.safe_dump({"sync": {"duplicate_policy": "maybe", "mapping": {"title": "job"}}}))
    monkeypatch.setenv("GLUE_CONFIG", str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, small_world.store)
    result = CliRunner().invoke(main, ["sync"])
    assert result.exit_code != 0
    assert "option 'duplicate_policy' is invalid" in result.output
    assert not _rows(engine, schema.contact_microsoft) and not _rows(engine, schema.sync_results)


def test_doctor_names_each_problem_and_its_fix(glue_env: dict, sandbox: Sandbox, small_world: World,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_CONFIG", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("sync: {}\n")
    tenant = next(t for t in _granted(small_world) if not t.reports_concealed)
    served = sandbox.config.world.tenant(tenant.id)
    served.roles = [r for r in served.roles if r != "Reports.Read.All"]
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1, result.output
    revoked = next(t for t in small_world.tenants if t.consent == "revoked")
    lines = result.output.splitlines()
    assert any(revoked.display_name in line and "AADSTS700016" in line for line in lines)
    assert any(tenant.display_name in line and "permission Reports.Read.All" in line and "problem" in line
               for line in lines)
    assert any("report names not concealed" in line and "problem" in line for line in lines)
    assert small_world.app.client_secret not in result.output


def test_a_tenants_reads_run_side_by_side_and_stop_at_the_first_failure() -> None:
    import threading as _threading

    from glue_pipeline.extract import side_by_side

    started: list[str] = []
    both_running = _threading.Barrier(2, timeout=10)

    def read(name: str, fail: bool = False):  # type: ignore[no-untyped-def]
        def call() -> str:
            started.append(name)
            if name in ("a", "b"):
                both_running.wait()  # a and b are in flight at the same time
            if fail:
                raise ValueError(f"{name} failed")
            return name
        return call

    assert side_by_side(2, read("a"), read("b"), read("c")) == ["a", "b", "c"]
    started.clear()
    both_running.reset()
    with pytest.raises(ValueError, match="a failed"):
        side_by_side(2, read("a", fail=True), read("b", fail=True), read("c"))
    assert "c" not in started, "a read not yet started does not start after a failure"
    assert side_by_side(1, read("x"), read("y")) == ["x", "y"]


def test_the_license_table_mirrors_microsoft_in_a_few_statements(tmp_path) -> None:
    """Rows are rewritten only when they differ, in bulk: a select, a delete and an insert, not a
    round trip per SKU."""
    import pandas as pd
    from sqlalchemy import event, insert

    from glue_pipeline.extract import licenses_frame
    from glue_pipeline.store.engine import make_engine, write_transaction
    from glue_pipeline.store.migrate import upgrade_store
    from glue_pipeline.store.schema import licenses, tenants
    from glue_pipeline.store.writer import replace_licenses, utcnow

    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade_store(engine)

    def skus(consumed: dict[str, int]) -> pd.DataFrame:
        return licenses_frame([{"skuId": sku, "skuPartNumber": sku.upper(), "capabilityStatus": "Enabled",
                                "consumedUnits": n, "prepaidUnits": {"enabled": 10}} for sku, n in consumed.items()])

    with write_transaction(engine) as conn:
        conn.execute(insert(tenants).values(tenant_id="t1", first_seen_at=utcnow(), last_seen_at=utcnow()))
        replace_licenses(conn, "t1", None, skus({"a": 1, "b": 2, "c": 3, "d": 4}))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with write_transaction(engine) as conn:
        replace_licenses(conn, "t1", None, skus({"a": 1, "b": 5, "c": 6, "e": 7}))  # d gone, e new
    writes = [s for s in statements if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    assert len(writes) == 2, writes
    with engine.connect() as conn:
        rows = {r.sku_id: r.consumed for r in conn.execute(select(licenses))}
    assert rows == {"a": 1, "b": 5, "c": 6, "e": 7}
