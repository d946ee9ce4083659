"""Intune devices end to end: the sandbox over HTTPS, the sync through a real Dagster instance, the
store on SQLite and on PostgreSQL. One tenant's devices cover each rule that matters to an MSP: a
serial written another way, placeholder serials, a re-enrolled device, a device whose user is not
synced, a shared device, a personal phone; another tenant has no Intune licence and a third lacks
the permission. Re-runs converge; a device gone from Intune keeps its configuration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dagster as dg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from glue_pipeline.cli import main
from glue_pipeline.report import summarize
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.server import Sandbox
from glue_pipeline.sandbox.world import ManagedDevice, StoreConfiguration, StoreConfigurationLink, World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline_tests.stores import matched_world, table_rows

PERMISSION = "DeviceManagementManagedDevices.Read.All"


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"device:{name}"))


def _device(name: str, serial: str, **fields: object) -> ManagedDevice:
    base: dict[str, object] = {"id": _id(name), "deviceName": name, "serialNumber": serial, "manufacturer": "HP",
                               "model": "HP EliteBook 840 G8", "operatingSystem": "Windows", "osVersion": "10.0.22631",
                               "complianceState": "compliant", "wiFiMacAddress": ""}
    return ManagedDevice.model_validate({**base, **fields})


def device_world() -> World:
    """Three matched tenants: A with one device of each kind and the store's configurations for
    them, B without Intune, C without the permission."""
    world = matched_world(seed=16, tenants=3, users=30, revoked=0)
    a, b, c = world.tenants
    org = next(o for o in world.store.organizations if o.name == a.display_name)
    for other in world.store.organizations:
        other.configurations = []
    synced_user = next(u for u in a.users if u.assignedLicenses and u.accountEnabled and u.userType == "Member")
    gone_user = str(uuid.uuid5(uuid.NAMESPACE_URL, "left the company"))
    a.devices = [
        _device("LT-ANNA", "5CG1234XYZ", userId=synced_user.id, userPrincipalName=synced_user.userPrincipalName),
        _device("WHITEBOX-01", "To be filled by O.E.M.", manufacturer="System manufacturer",
                model="System Product Name"),
        _device("DESKTOP-7Q2M9XK", "PF2ABCDE", manufacturer="LENOVO", model="ThinkCentre M70q"),
        _device("LT-LEFT", "5CG9999ABC", userId=gone_user, userPrincipalName="left@example.com"),
        _device("KIOSK-1", "8CC0001XYZ", model="HP EliteDesk 800 G6"),
        _device("Anna's iPhone", "F2LXK0AAHG7F", operatingSystem="iOS", manufacturer="Apple", model="iPhone 14",
                managedDeviceOwnerType="personal"),
    ]
    org.configurations = [
        StoreConfiguration(id=9001, name="Anna laptop", serial_number="5cg-1234 xyz"),
        StoreConfiguration(id=9002, name="OLD-PC", serial_number="To be filled by O.E.M."),
        StoreConfiguration(id=9003, name="Reception PC", serial_number="PF2ABCDE",
                           microsoft=StoreConfigurationLink(tenant_id=a.id, device_id=_id("re-enrolled before"))),
    ]
    b.intune = False
    b.devices = [_device("B-LAPTOP", "5CG5555BBB")]
    c.roles = [r for r in c.roles if r != PERMISSION]
    c.devices = [_device("C-LAPTOP", "5CG6666CCC")]
    return world


@pytest.fixture(params=["sqlite", "postgres"])
def synced(request: pytest.FixtureRequest, tmp_path, sandbox_state,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, Engine, dg.DagsterInstance, Sandbox]]:
    from glue_pipeline.demo import sandbox_env
    from glue_pipeline.sandbox.server import SandboxConfig
    from glue_pipeline_tests.served import clock_env

    world = device_world()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Sandbox(SandboxConfig(world=world.model_copy(deep=True)), state_dir=sandbox_state) as sandbox:
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
        if request.param == "postgres":
            url = request.getfixturevalue("pg_database")
            monkeypatch.setenv("DAGSTER_PG_URL", url.replace("postgresql+psycopg2://", "postgresql://"))
        for key, value in {**sandbox_env(sandbox, world), **clock_env(world), "GLUE_STORE_URL": url,
                           "GLUE_DATA_DIR": str(tmp_path / "tables"), "GLUE_VAR_DIR": str(tmp_path / "var")}.items():
            monkeypatch.setenv(key, value)
        engine = make_engine(url)
        seed_store(engine, world.store)
        instance = get_instance()
        try:
            assert run_discovery(instance).success
            assert all(r.success for r in run_sync(instance))
            yield world, engine, instance, sandbox
        finally:
            instance.dispose()


def _by_device(engine: Engine) -> dict[str, dict]:
    """Each linked device's configuration with its overlay, by the device's name."""
    c, m = schema.configurations, schema.configuration_microsoft
    with engine.connect() as conn:
        rows = conn.execute(select(c, m.c.device_id, m.c.tenant_id, m.c.status, m.c.manage_url, m.c.owner_type)
                            .join(m, m.c.configuration_id == c.c.id)).all()
    return {r.name: dict(r._mapping) for r in rows}


def test_devices_become_configurations_and_a_rerun_converges(synced) -> None:
    world, engine, instance, _sandbox = synced
    a, b, c = world.tenants
    configurations = _by_device(engine)
    # The serial written another way (case, dash, space) matched the documented laptop; its name
    # follows Intune's, its primary contact is its user's.
    laptop = configurations["LT-ANNA"]
    assert laptop["id"] == 9001 and laptop["device_id"] == _id("LT-ANNA") and laptop["status"] == "active"
    user = next(d.userId for d in a.devices if d.deviceName == "LT-ANNA")
    contact = table_rows(engine, schema.contact_microsoft, schema.contact_microsoft.c.user_id == user)[0]
    assert laptop["primary_contact_id"] == contact["contact_id"]
    assert laptop["configuration_type"] == "Laptop" and laptop["created_by"] == "store"
    assert laptop["manage_url"].startswith("https://intune.microsoft.com/") and _id("LT-ANNA") in laptop["manage_url"]
    # A placeholder serial matched nothing: the white box is a new configuration, OLD-PC untouched.
    assert configurations["WHITEBOX-01"]["created_by"] == "microsoft"
    assert "OLD-PC" not in configurations
    # The re-enrolled device took over the configuration linked to its old Intune id.
    assert configurations["DESKTOP-7Q2M9XK"]["id"] == 9003
    assert configurations["DESKTOP-7Q2M9XK"]["configuration_type"] == "Desktop"
    # A device whose user is not synced, and a shared device: written, without a primary contact.
    assert configurations["LT-LEFT"]["primary_contact_id"] is None
    assert configurations["KIOSK-1"]["primary_contact_id"] is None
    # The personal phone is skipped (devices.include_personal is off).
    assert "Anna's iPhone" not in configurations
    # Only tenant A's devices are documented: B has no Intune, C lacks the permission.
    assert {r["tenant_id"] for r in configurations.values()} == {a.id}
    notes = {r["tenant_id"]: r["message"] for r in table_rows(engine, schema.sync_log,
                                                              schema.sync_log.c.action == "tenant_note")
             if "devices were not read" in r["message"]}
    assert "no active Intune licence" in notes[b.id]
    assert PERMISSION in notes[c.id] and "re-consent" in notes[c.id]
    statuses = {r["tenant_id"]: r["status"] for r in table_rows(engine, schema.sync_results)}
    assert statuses == {a.id: "synced", b.id: "synced", c.id: "synced"}, "users sync whatever the devices"
    log = table_rows(engine, schema.sync_log, schema.sync_log.c.tenant_id == a.id)
    unsynced = next(r for r in log if r["action"] == "configuration_created" and r["device_id"] == _id("LT-LEFT"))
    assert unsynced["configuration_id"] == configurations["LT-LEFT"]["id"]
    assert any(r["action"] == "devices_skipped" and "personal" in r["message"] for r in log)

    # A re-run writes nothing new: no second configuration, no change.
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(schema.configurations)).scalar_one()
    again = summarize(engine, [r.run_id for r in run_sync(instance)])
    assert again.failed == 0
    assert _by_device(engine) == configurations
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.configurations)).scalar_one() == before


def test_a_device_gone_from_intune_keeps_its_configuration(synced) -> None:
    world, engine, instance, sandbox = synced
    a = world.tenants[0]
    changed = sandbox.world.model_copy(deep=True)
    tenant = next(t for t in changed.tenants if t.id == a.id)
    tenant.devices = [d for d in tenant.devices if d.deviceName != "KIOSK-1"]
    sandbox.set_world(changed)
    assert all(r.success for r in run_sync(instance, [a.id]))
    kiosk = _by_device(engine)["KIOSK-1"]
    assert kiosk["status"] == "removed"
    assert any(r["action"] == "device_removed" and r["configuration_id"] == kiosk["id"]
               for r in table_rows(engine, schema.sync_log, schema.sync_log.c.tenant_id == a.id))


def test_an_ambiguous_device_is_held_and_an_analyst_links_it(tmp_path, sandbox_state, monkeypatch) -> None:
    """Two documented configurations carry one serial: the device is held (never guessed), the
    check no_ambiguous_devices names it, and `glue-pipeline match link-device` settles it."""
    from glue_pipeline.demo import sandbox_env
    from glue_pipeline.sandbox.server import SandboxConfig
    from glue_pipeline_tests.served import clock_env

    world = device_world()
    a = world.tenants[0]
    org = next(o for o in world.store.organizations if o.name == a.display_name)
    org.configurations += [StoreConfiguration(id=9101, name="Spare A", serial_number="5CG9999ABC"),
                           StoreConfiguration(id=9102, name="Spare B", serial_number="5cg9999abc")]
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        for key, value in {**sandbox_env(sandbox, world), **clock_env(world), "GLUE_STORE_URL": url,
                           "DAGSTER_HOME": str(tmp_path / "dagster_home"),
                           "GLUE_DATA_DIR": str(tmp_path / "tables"), "GLUE_VAR_DIR": str(tmp_path / "var")}.items():
            monkeypatch.setenv(key, value)
        engine = make_engine(url)
        seed_store(engine, world.store)
        instance = get_instance()
        try:
            assert run_discovery(instance).success
            run_sync(instance, [a.id])
            held = table_rows(engine, schema.held_devices)
            assert [h["device_id"] for h in held] == [_id("LT-LEFT")]
            assert "9101" in held[0]["reason"] and "9102" in held[0]["reason"]
            runner = CliRunner()
            listed = runner.invoke(main, ["match", "held"])
            assert listed.exit_code == 0 and "LT-LEFT" in listed.output
            linked = runner.invoke(main, ["match", "link-device", a.id, _id("LT-LEFT").upper(), "9102", "--by", "ann"])
            assert linked.exit_code == 0, linked.output
            assert "linked to configuration Spare B (id 9102)" in linked.output
            refused = runner.invoke(main, ["match", "link-device", a.id, _id("LT-LEFT"), "1"])
            assert refused.exit_code != 0 and "not a configuration of organization" in refused.output
            run_sync(instance, [a.id])
            assert _by_device(engine)["LT-LEFT"]["id"] == 9102
            assert table_rows(engine, schema.held_devices) == []
            decisions = table_rows(engine, schema.match_decisions, schema.match_decisions.c.action == "link_device")
            assert [(d["device_id"], d["configuration_id"], d["decided_by"]) for d in decisions] == \
                [(_id("LT-LEFT"), 9102, "ann")]
        finally:
            instance.dispose()
