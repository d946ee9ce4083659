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
import yaml
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
from glue_pipeline_tests.served import served_world
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


def _by_device(engine: Engine) -> dict[str | None, dict]:
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


def _ambiguous_world() -> World:
    """device_world with two documented configurations carrying LT-LEFT's serial."""
    world = device_world()
    a = world.tenants[0]
    org = next(o for o in world.store.organizations if o.name == a.display_name)
    org.configurations += [StoreConfiguration(id=9101, name="Spare A", serial_number="5CG9999ABC"),
                           StoreConfiguration(id=9102, name="Spare B", serial_number="5cg9999abc")]
    return world


def test_an_ambiguous_device_is_held_and_an_analyst_links_it(tmp_path, sandbox_state, monkeypatch) -> None:
    """Two documented configurations carry one serial: the device is held (never guessed) with both
    named, `glue-pipeline match held` lists it and `match link-device` settles it."""
    world = _ambiguous_world()
    a = world.tenants[0]
    with served_world(world, tmp_path, sandbox_state, monkeypatch) as served:
        engine, instance = served.engine, served.instance
        run_sync(instance, [a.id])
        held = table_rows(engine, schema.held_devices)
        assert [h["device_id"] for h in held] == [_id("LT-LEFT")]
        assert "9101" in held[0]["reason"] and "9102" in held[0]["reason"]
        runner = CliRunner()
        listed = runner.invoke(main, ["match", "held-devices"])
        assert listed.exit_code == 0 and "LT-LEFT" in listed.output
        linked = runner.invoke(main, ["match", "link-device", a.id, _id("LT-LEFT").upper(), "9102", "--by", "ann"])
        assert linked.exit_code == 0, linked.output
        assert "linked to configuration Spare B (id 9102)" in linked.output
        refused = runner.invoke(main, ["match", "link-device", a.id, _id("LT-LEFT"), "1"])
        assert refused.exit_code != 0 and "not a configuration of organization" in refused.output
        unknown = runner.invoke(main, ["match", "approve-device", a.id, "\x1b[2Jforged"])
        assert unknown.exit_code != 0 and "neither held nor linked" in unknown.output
        assert "\x1b" not in unknown.output
        run_sync(instance, [a.id])
        assert _by_device(engine)["LT-LEFT"]["id"] == 9102
        assert table_rows(engine, schema.held_devices) == []
        decisions = table_rows(engine, schema.match_decisions, schema.match_decisions.c.action == "link_device")
        assert [(d["device_id"], d["configuration_id"], d["decided_by"]) for d in decisions] == \
            [(_id("LT-LEFT"), 9102, "ann")]


def test_an_approved_device_gets_a_configuration_of_its_own(tmp_path, sandbox_state, monkeypatch) -> None:
    world = _ambiguous_world()
    a = world.tenants[0]
    with served_world(world, tmp_path, sandbox_state, monkeypatch) as served:
        run_sync(served.instance, [a.id])
        approved = CliRunner().invoke(main, ["match", "approve-device", a.id, _id("LT-LEFT")])
        assert approved.exit_code == 0 and "approved for a new configuration" in approved.output
        run_sync(served.instance, [a.id])
        created = _by_device(served.engine)["LT-LEFT"]
        assert created["created_by"] == "microsoft" and created["id"] not in (9101, 9102)
        spares = table_rows(served.engine, schema.configurations, schema.configurations.c.id.in_([9101, 9102]))
        assert sorted(r["name"] for r in spares) == ["Spare A", "Spare B"], "the documented ones are left alone"

        # Approving a new configuration for a linked device moves its link there; the old one stays.
        assert _by_device(served.engine)["LT-ANNA"]["id"] == 9001
        assert CliRunner().invoke(main, ["match", "approve-device", a.id, _id("LT-ANNA")]).exit_code == 0
        assert all(r.success for r in run_sync(served.instance, [a.id]))
        moved = _by_device(served.engine)["LT-ANNA"]
        assert moved["id"] != 9001 and moved["created_by"] == "microsoft"
        kept = table_rows(served.engine, schema.configurations, schema.configurations.c.id == 9001)
        assert kept and not table_rows(served.engine, schema.configuration_microsoft,
                                       schema.configuration_microsoft.c.configuration_id == 9001)


def _sync_log(engine: Engine, run_ids: list[str], action: str) -> set[str]:
    return {r["tenant_id"] for r in table_rows(engine, schema.sync_log, schema.sync_log.c.run_id.in_(run_ids),
                                               schema.sync_log.c.action == action)}


def test_unchanged_devices_cost_no_replan_and_a_changed_one_does(tmp_path, sandbox_state, monkeypatch) -> None:
    """A re-sync reads the devices in the tenant's Graph batch; devices that only checked in leave
    the tenant unchanged, a renamed one plans it again."""
    world = device_world()
    a = world.tenants[0]
    with served_world(world, tmp_path, sandbox_state, monkeypatch) as served:
        engine, instance, sandbox = served.engine, served.instance, served.sandbox
        run_sync(instance)
        read_before = sandbox.stats.snapshot()["graph"]["managedDevices"]
        again = [r.run_id for r in run_sync(instance)]
        assert a.id in _sync_log(engine, again, "tenant_unchanged")
        assert sandbox.stats.snapshot()["graph"]["managedDevices"] > read_before, "read at every sync"

        served_devices = sandbox.world.tenant(a.id).devices  # edited in place: users' delta links stay valid
        for device in served_devices:
            device.lastSyncDateTime = "2026-11-30T23:59:00Z"
            device.freeStorageSpaceInBytes += 1
        after_check_in = [r.run_id for r in run_sync(instance, [a.id])]
        assert a.id in _sync_log(engine, after_check_in, "tenant_unchanged")

        next(d for d in served_devices if d.deviceName == "KIOSK-1").deviceName = "KIOSK-2"
        after_rename = [r.run_id for r in run_sync(instance, [a.id])]
        assert a.id not in _sync_log(engine, after_rename, "tenant_unchanged")
        configurations = _by_device(engine)
        assert "KIOSK-2" in configurations and "KIOSK-1" not in configurations
        overlay = table_rows(engine, schema.configuration_microsoft,
                             schema.configuration_microsoft.c.configuration_id == configurations["KIOSK-2"]["id"])
        assert overlay[0]["last_check_in"] == "2026-11-30T23:59:00Z", "written with the plan the rename made"


@pytest.mark.parametrize(("options", "expected"), [
    ({"devices": False}, set()),
    ({"devices": {"include_personal": True}}, {"LT-ANNA", "WHITEBOX-01", "DESKTOP-7Q2M9XK", "LT-LEFT", "KIOSK-1",
                                               "Anna's iPhone"}),
    ({"devices": {"include_personal": True, "operating_systems": ["ios"]}}, {"Anna's iPhone"}),
    # name: null leaves documented names alone; a new configuration then has none (shown by its serial).
    ({"devices": {"mapping": {"name": None}}}, {"Anna laptop", "To be filled by O.E.M.", "Reception PC",
                                                "5CG9999ABC", "8CC0001XYZ"}),
])
def test_device_options(options: dict, expected: set[str], tmp_path, sandbox_state, monkeypatch) -> None:
    """devices: false reads no device at all; include_personal, the operating-system filter and the
    device mapping, each through glue.yaml."""
    world = device_world()
    a = world.tenants[0]
    config = tmp_path / "glue.yaml"
    config.write_text(yaml.safe_dump({"sync": options}))
    with served_world(world, tmp_path, sandbox_state, monkeypatch, GLUE_CONFIG=str(config)) as served:
        assert all(r.success for r in run_sync(served.instance, [a.id]))
        listed = {d.id for d in a.devices}
        c, m = schema.configurations, schema.configuration_microsoft
        with served.engine.connect() as conn:
            rows = conn.execute(select(c.c.name, c.c.serial_number).join(m, m.c.configuration_id == c.c.id)
                                .where(m.c.device_id.in_(listed))).all()
        assert {r.name or r.serial_number for r in rows} == expected
        read = [k for k in served.sandbox.stats.snapshot()["graph"] if "managedDevices" in k]
        assert bool(read) == (options != {"devices": False}), "devices: false asks Graph for none"


def test_doctor_checks_the_device_permission_and_intune(tmp_path, sandbox_state, monkeypatch) -> None:
    world = device_world()
    a, b, c = world.tenants
    with served_world(world, tmp_path, sandbox_state, monkeypatch):
        result = CliRunner().invoke(main, ["doctor"])
    lines = [line for line in result.output.splitlines() if "managedDevices" in line or PERMISSION in line]
    problems = {tenant.id for tenant in (a, b, c) for line in lines
                if tenant.display_name[:20] in line and "problem" in line}
    assert problems == {b.id, c.id}, result.output
    (no_intune,) = [line for line in lines if b.display_name[:20] in line and "managedDevices" in line]
    assert "Request not applicable to target tenant." in no_intune and "license Intune" in no_intune
    assert "Operation ID" not in no_intune and "_version" not in no_intune, "Intune's own sentence, not its JSON"
    assert any(c.display_name[:20] in line and f"permission {PERMISSION}" in line for line in lines), "C: grant it"
    assert result.exit_code == 1
