"""Intune managed devices in the sandbox: GET /deviceManagement/managedDevices and a single device
over real HTTPS with real msal tokens (paging, $select, Intune's 403 and 400, $batch, faults), the
devices and configurations a generated world holds, and the world file's rules for them."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from click.testing import CliRunner

from glue_pipeline.cli import main
from glue_pipeline.sandbox.generate import PLACEHOLDER_SERIALS, generate_world
from glue_pipeline.sandbox.server import Faults, Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import (
    DEFAULT_ROLES,
    ManagedDevice,
    Tenant,
    World,
    WorldError,
    load_world,
    parse_world,
    save_world,
)

REFERENCE = datetime(2026, 6, 15, tzinfo=UTC)
DEVICES = "deviceManagement/managedDevices"
READ = "DeviceManagementManagedDevices.Read.All"
READ_WRITE = "DeviceManagementManagedDevices.ReadWrite.All"
# Names, serials and makers a tenant may hold: bidi override, NUL and escape codes, markup, a huge string.
HOSTILE_NAME = "\u202eexe.txt\x00\x1b[2J<script>alert(1)</script>|a|b|\n[x](javascript:alert(1))" + "Ω" * 5000
HOSTILE_SERIAL = " 5CG\t1234\u200bXYZ'; DROP TABLE configurations;-- "
HOSTILE_MAKER = "<img src=x onerror=alert(1)> & ` \\ \r\n"


@dataclass(frozen=True)
class Cast:
    world: World
    plain: Tenant  # Intune, the read permission, a hostile device among its own
    denied: Tenant  # Intune, but no device permission
    unlicensed: Tenant  # no Intune licence
    read_write: Tenant  # only DeviceManagementManagedDevices.ReadWrite.All
    big: Tenant  # more than 1,000 devices
    hostile: ManagedDevice


def _cast() -> Cast:
    small = generate_world(seed=11, tenants=4, users=240, revoked=0, reference_date=REFERENCE)
    big = generate_world(seed=3, tenants=1, users=600, revoked=0, reference_date=REFERENCE,
                         devices_per_user=2.0).tenants[0]
    plain, denied, unlicensed, read_write = small.tenants
    denied.roles = [r for r in denied.roles if r != READ]
    unlicensed.intune = False
    read_write.roles = [READ_WRITE]
    hostile = ManagedDevice(id=str(uuid.UUID(int=7, version=4)), deviceName=HOSTILE_NAME, serialNumber=HOSTILE_SERIAL,
                            manufacturer=HOSTILE_MAKER, model=HOSTILE_MAKER, userPrincipalName=HOSTILE_NAME,
                            wiFiMacAddress="<>", ethernetMacAddress=HOSTILE_SERIAL, imei="\x07")
    plain.devices.insert(3, hostile)
    world = World(seed=11, reference_date=REFERENCE, partner=small.partner, app=small.app,
                  tenants=[*small.tenants, big], store=small.store)
    return Cast(world, plain, denied, unlicensed, read_write, big, hostile)


# Talk to the sandbox trusting only its CA, as the pipeline does (conftest).
pytestmark = pytest.mark.usefixtures("only_the_ca_we_pass")


@pytest.fixture(scope="module")
def cast() -> Cast:
    return _cast()


@pytest.fixture(scope="module")
def sandbox(cast: Cast, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(world=cast.world, retry_after_s=2), state_dir=tmp_path_factory.mktemp("sandbox")) as s:
        yield s


@pytest.fixture
def faults(sandbox: Sandbox) -> Iterator[Faults]:
    yield sandbox.faults
    sandbox.faults.clear()


def _graph(sandbox: Sandbox, tenant: Tenant) -> requests.Session:
    """A session carrying a token msal got for the partner app in `tenant`."""
    app = msal.ConfidentialClientApplication(
        sandbox.world.app.client_id, client_credential=sandbox.world.app.client_secret,
        authority=sandbox.authority(tenant.id), instance_discovery=False, azure_region=False,
        verify=str(sandbox.ca_file))
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    assert "access_token" in result, result
    session = requests.Session()
    session.verify = str(sandbox.ca_file)
    session.headers["Authorization"] = f"Bearer {result['access_token']}"
    return session


def _walk(session: requests.Session, url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every item of a paged collection, and the pages."""
    items, pages = [], []
    while url:
        response = session.get(url, timeout=30)
        assert response.status_code == 200, response.text[:500]
        pages.append(response.json())
        items += pages[-1]["value"]
        url = pages[-1].get("@odata.nextLink", "")
    return items, pages


def _intune_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Intune's own error, the JSON inside Graph's message."""
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert error["code"] == code and set(error["innerError"]) >= {"request-id", "client-request-id"}
    inner = json.loads(error["message"])
    assert inner["_version"] == 3 and "Operation ID (for customer support): " in inner["Message"]
    assert " - Activity ID: " in inner["Message"] and "manage.microsoft.com" in inner["Message"]
    return inner


def _served(device: ManagedDevice, ethernet: bool = False) -> dict[str, Any]:
    expected = device.model_dump(mode="json")
    return expected if ethernet else {**expected, "ethernetMacAddress": None}


# --------------------------------------------------------------------------- over HTTPS


def test_devices_page_over_several_pages_with_selected_fields(sandbox: Sandbox, cast: Cast) -> None:
    session = _graph(sandbox, cast.plain)
    select = "id,deviceName,serialNumber,wiFiMacAddress,ethernetMacAddress,userId"
    items, pages = _walk(session, f"{sandbox.graph_url}/{DEVICES}?$top=20&$select={select}")
    assert len(pages) == -(-len(cast.plain.devices) // 20) > 1
    assert all("$skiptoken=" in p["@odata.nextLink"] and "$top=20" in p["@odata.nextLink"] for p in pages[:-1])
    assert pages[0]["@odata.context"].endswith(f"$metadata#{DEVICES}({select})")
    assert [list(i) for i in items] == [select.split(",")] * len(cast.plain.devices)
    assert [i["id"] for i in items] == [d.id for d in cast.plain.devices]
    assert all(i["ethernetMacAddress"] is None for i in items), "lists never carry the wired MAC"
    assert any(d.ethernetMacAddress for d in cast.plain.devices)
    assert {i["userId"] for i in items if not i["userId"]} == {""}, "no primary user is an empty string"


def test_the_default_page_holds_1000_devices_with_every_field(sandbox: Sandbox, cast: Cast) -> None:
    session = _graph(sandbox, cast.big)
    assert len(cast.big.devices) > 1000
    items, pages = _walk(session, f"{sandbox.graph_url}/{DEVICES}")
    assert [len(p["value"]) for p in pages] == [1000, len(cast.big.devices) - 1000]
    assert items == [_served(d) for d in cast.big.devices]
    assert items[0]["enrolledDateTime"].endswith("Z") and isinstance(items[0]["totalStorageSpaceInBytes"], int)
    whole, _ = _walk(session, f"{sandbox.graph_url}/{DEVICES}?$top=1000&$select=id")
    assert len(whole) == len(cast.big.devices)
    too_many = session.get(f"{sandbox.graph_url}/{DEVICES}?$top=1001")
    assert too_many.status_code == 400 and "between 1 and 1000" in too_many.json()["error"]["message"]
    unknown = session.get(f"{sandbox.graph_url}/{DEVICES}?$select=id,chassisType")
    assert unknown.status_code == 400 and "chassisType" in unknown.json()["error"]["message"]


def test_without_the_permission_intune_answers_403(sandbox: Sandbox, cast: Cast) -> None:
    session = _graph(sandbox, cast.denied)
    device = cast.denied.devices[0]
    for url in (f"{sandbox.graph_url}/{DEVICES}", f"{sandbox.graph_url}/{DEVICES}/{device.id}"):
        inner = _intune_error(session.get(url), 403, "Forbidden")
        assert inner["Message"].startswith("Application is not authorized to perform this operation. Application "
                                           f"must have one of the following scopes: {READ}, {READ_WRITE} - ")
    assert session.get(f"{sandbox.graph_url}/organization").status_code == 200, "the other permissions stay"
    read_write = _graph(sandbox, cast.read_write).get(f"{sandbox.graph_url}/{DEVICES}?$select=id")
    assert read_write.status_code == 200 and len(read_write.json()["value"]) == len(cast.read_write.devices)


def test_a_tenant_without_intune_answers_400(sandbox: Sandbox, cast: Cast) -> None:
    session = _graph(sandbox, cast.unlicensed)
    for url in (f"{sandbox.graph_url}/{DEVICES}?$select=id", f"{sandbox.graph_url}/{DEVICES}/{uuid.uuid4()}"):
        inner = _intune_error(session.get(url), 400, "BadRequest")
        assert inner["Message"].startswith("Request not applicable to target tenant. - Operation ID")


def test_a_single_device_carries_its_wired_mac_only_when_selected(sandbox: Sandbox, cast: Cast) -> None:
    session = _graph(sandbox, cast.plain)
    device = next(d for d in cast.plain.devices if d.ethernetMacAddress and d is not cast.hostile)
    whole = session.get(f"{sandbox.graph_url}/{DEVICES}/{device.id.upper()}")
    assert whole.status_code == 200
    body = whole.json()
    assert body.pop("@odata.context").endswith(f"$metadata#{DEVICES}/$entity")
    assert body == _served(device)
    selected = session.get(f"{sandbox.graph_url}/{DEVICES}/{device.id}?$select=id,ethernetMacAddress,wiFiMacAddress")
    assert selected.json() == {"@odata.context": f"{sandbox.graph_url}/$metadata#{DEVICES}"
                                                 "(id,ethernetMacAddress,wiFiMacAddress)/$entity",
                               "id": device.id, "ethernetMacAddress": device.ethernetMacAddress,
                               "wiFiMacAddress": device.wiFiMacAddress}
    assert re.fullmatch(r"[0-9A-F]{12}", selected.json()["ethernetMacAddress"])
    missing = session.get(f"{sandbox.graph_url}/{DEVICES}/{uuid.uuid4()}")
    assert "An error has occurred" in _intune_error(missing, 404, "ResourceNotFound")["Message"]


def test_managed_devices_answer_inside_a_batch(sandbox: Sandbox, cast: Cast) -> None:
    before = sandbox.stats.graph["managedDevices"]
    requests_ = [{"id": "org", "method": "GET", "url": "/organization?$select=id"},
                 {"id": "skus", "method": "GET", "url": "/subscribedSkus?$select=skuId"},
                 {"id": "devices", "method": "GET", "url": f"/{DEVICES}?$top=5&$select=id,serialNumber"}]
    response = _graph(sandbox, cast.plain).post(f"{sandbox.graph_url}/$batch", json={"requests": requests_})
    assert response.status_code == 200
    answers = {a["id"]: a for a in response.json()["responses"]}
    assert {a["status"] for a in answers.values()} == {200}
    devices = answers["devices"]["body"]
    assert devices["value"] == [{"id": d.id, "serialNumber": d.serialNumber} for d in cast.plain.devices[:5]]
    assert devices["@odata.nextLink"].startswith(f"{sandbox.graph_url}/{DEVICES}?")
    assert answers["org"]["body"]["value"] == [{"id": cast.plain.id}]
    assert sandbox.stats.graph["managedDevices"] == before + 1

    unlicensed = _graph(sandbox, cast.unlicensed).post(f"{sandbox.graph_url}/$batch", json={"requests": requests_})
    answers = {a["id"]: a for a in unlicensed.json()["responses"]}
    assert unlicensed.status_code == 200 and answers["org"]["status"] == 200 and answers["devices"]["status"] == 400
    assert "Request not applicable" in json.loads(answers["devices"]["body"]["error"]["message"])["Message"]


def test_devices_are_throttled_like_every_route(sandbox: Sandbox, cast: Cast, faults: Faults) -> None:
    session = _graph(sandbox, cast.plain)
    faults.rate_429 = 1.0
    throttled = session.get(f"{sandbox.graph_url}/{DEVICES}?$select=id")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert throttled.json()["error"]["code"] == "TooManyRequests"


def test_a_hostile_device_is_served_unchanged(sandbox: Sandbox, cast: Cast) -> None:
    session = _graph(sandbox, cast.plain)
    listed = session.get(f"{sandbox.graph_url}/{DEVICES}?$top=10").json()["value"]
    assert listed[3] == _served(cast.hostile)
    assert listed[3]["deviceName"] == HOSTILE_NAME and listed[3]["serialNumber"] == HOSTILE_SERIAL
    one = session.get(f"{sandbox.graph_url}/{DEVICES}/{cast.hostile.id}?$select=deviceName,manufacturer,"
                      "ethernetMacAddress").json()
    assert (one["deviceName"], one["manufacturer"], one["ethernetMacAddress"]) == (
        HOSTILE_NAME, HOSTILE_MAKER, HOSTILE_SERIAL)
    odd_key = session.get(f"{sandbox.graph_url}/{DEVICES}/%3Cscript%3E?$select=id")
    assert odd_key.status_code == 404


# --------------------------------------------------------------------------- generated worlds

_SERIAL_SHAPES = {
    "Dell Inc.": r"[0-9A-Z]{7}",
    "HP": r"(5CG|5CD|CND|MXL|8CG)\d{4}[0-9A-Z]{3}",
    "LENOVO": r"(PF|PC|R9|MP)[0-9A-Z]{6}",
    "Microsoft Corporation": r"\d{12}|(\d{4}-){6}\d{2}",  # Surface; Hyper-V machines
    "Apple": r"[0-9A-Z]{12}|[0-9A-HJ-NP-Z]{10}",
    "samsung": r"R5[0-9A-Z]{9}",
}


def _plain_serial(serial: str | None) -> str:
    """A serial number without case, spaces and dashes; "" for none or a placeholder."""
    return "" if serial in PLACEHOLDER_SERIALS else re.sub(r"[\s\-]", "", serial or "").upper()


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


@pytest.fixture(scope="module")
def generated() -> World:
    return generate_world(seed=4, tenants=12, users=600, revoked=1, reference_date=REFERENCE)


def test_a_generated_world_holds_about_a_device_per_user(generated: World) -> None:
    without = [t for t in generated.tenants if not t.intune]
    assert len(without) == 1 and without[0].devices == [], "a tenth of the tenants have no Intune"
    licensed = [t for t in generated.tenants if t.intune]
    assert 0.8 < sum(len(t.devices) for t in licensed) / sum(len(t.users) for t in licensed) < 1.2
    assert all(READ in t.roles for t in generated.tenants) and READ in DEFAULT_ROLES
    devices = [d for t in generated.tenants for d in t.devices]
    assert {d.operatingSystem for d in devices} == {"Windows", "macOS", "iOS", "iPadOS", "Android"}
    assert {d.managedDeviceOwnerType for d in devices} >= {"company", "personal"}
    assert len({d.complianceState for d in devices}) >= 4
    assert all(re.fullmatch(r"([0-9A-F]{12})?", d.wiFiMacAddress) for d in devices)
    assert all(d.ethernetMacAddress is None or re.fullmatch(r"[0-9A-F]{12}", d.ethernetMacAddress) for d in devices)
    imeis = [d.imei.replace(" ", "") for d in devices if d.imei]
    assert imeis and all(len(i) == 15 and i.isdigit() and _luhn_valid(i) for i in imeis)
    assert any(" " in d.imei for d in devices if d.operatingSystem == "iOS"), "Intune spaces an iPhone's IMEI"
    assert all(d.lastSyncDateTime and d.enrolledDateTime and d.enrolledDateTime <= d.lastSyncDateTime
               <= REFERENCE.strftime("%Y-%m-%dT%H:%M:%SZ") for d in devices)
    assert all(0 <= d.freeStorageSpaceInBytes <= d.totalStorageSpaceInBytes for d in devices)


def test_generated_devices_are_named_and_numbered_as_in_real_tenants(generated: World) -> None:
    devices = [d for t in generated.tenants for d in t.devices]
    assert sum(bool(re.fullmatch(r"DESKTOP-[0-9A-Z]{7}", d.deviceName)) for d in devices) > 20
    assert any(re.fullmatch(r"[A-Z0-9]{1,7}-(LT|DT)-\d{3}", d.deviceName) for d in devices), "asset numbers"
    for device in devices:
        if device.serialNumber and device.serialNumber not in PLACEHOLDER_SERIALS \
                and device.manufacturer in _SERIAL_SHAPES:
            assert re.fullmatch(_SERIAL_SHAPES[device.manufacturer], device.serialNumber), device
    assert {m for m in _SERIAL_SHAPES if m != "samsung"} <= {d.manufacturer for d in devices}
    placeholders = [d for d in devices if d.operatingSystem == "Windows" and d.serialNumber in PLACEHOLDER_SERIALS]
    assert placeholders and {d.manufacturer for d in placeholders} & {"System manufacturer", "To Be Filled By O.E.M."}
    phones = [d for d in devices if d.operatingSystem in ("iOS", "Android") and d.userPrincipalName]
    after_user = [d for d in phones if (d.userDisplayName.split(" ")[0] in d.deviceName)
                  or d.deviceName.startswith(d.userPrincipalName.split("@")[0] + "_")]
    assert len(after_user) > len(phones) / 2
    assert any(re.fullmatch(r".+_iPhone_\d{1,2}/\d{1,2}/\d{4}_\d{1,2}:\d{2} [AP]M", d.deviceName) for d in phones)
    assert any(re.fullmatch(r".+\u2019s iPhone", d.deviceName) for d in phones)
    personal_android = [d for d in devices if d.operatingSystem == "Android" and d.managedDeviceOwnerType == "personal"]
    assert personal_android and all(d.serialNumber == d.imei == "" for d in personal_android), "work profiles hide them"


def test_generated_devices_include_shared_departed_and_reenrolled_ones(generated: World) -> None:
    for tenant in generated.tenants:
        assert len({d.id for d in tenant.devices}) == len(tenant.devices)
    devices = [(t, d) for t in generated.tenants for d in t.devices]
    assert any(d.userId == d.userPrincipalName == "" for _, d in devices), "shared devices"
    departed = [d for t, d in devices if d.userId and d.userId not in {u.id for u in t.users}]
    assert departed and all(d.userPrincipalName for d in departed), "users who left"
    tenants = {t.id: t for t in generated.tenants}
    reenrolled, both = [], []
    for configuration in (c for o in generated.store.organizations for c in o.configurations if c.microsoft):
        tenant = tenants[configuration.microsoft.tenant_id]
        serial = _plain_serial(configuration.serial_number)
        same_serial = [d for d in tenant.devices if serial and _plain_serial(d.serialNumber) == serial]
        if configuration.microsoft.device_id not in {d.id for d in tenant.devices} and same_serial:
            reenrolled.append(configuration)
        if len(same_serial) == 2 and configuration.microsoft.device_id in {d.id for d in same_serial}:
            stale, current = sorted(same_serial, key=lambda d: d.lastSyncDateTime or "")
            assert stale.id == configuration.microsoft.device_id and stale.lastSyncDateTime < current.enrolledDateTime
            both.append(configuration)
    assert reenrolled, "a configuration still linked to the old id of a device enrolled again"
    assert both, "the old record still listed beside the new one"


def test_the_store_documents_some_devices_messily(generated: World) -> None:
    organizations = generated.store.organizations
    configurations = [c for o in organizations for c in o.configurations]
    assert [c.id for c in configurations] == list(range(1, len(configurations) + 1))
    serials = {_plain_serial(d.serialNumber): d for t in generated.tenants for d in t.devices
               if _plain_serial(d.serialNumber)}
    documented = [(c, serials[_plain_serial(c.serial_number)]) for c in configurations
                  if _plain_serial(c.serial_number) in serials]
    assert len(documented) > 50
    assert any(c.serial_number != d.serialNumber for c, d in documented), "serials typed another way"
    assert any(c.name != d.deviceName for c, d in documented), "devices documented under another name"
    assert any(c.mac_address and re.search(r"[:\-.]", c.mac_address) for c, _ in documented)
    assert any(c.primary_contact_id for c in configurations)
    assert {c.configuration_type for c in configurations} >= {"Laptop", "Workstation", "Mobile Device", "Server"}
    reused = [o for o in organizations for name, count in Counter(
        c.name for c in o.configurations if c.configuration_type in ("Laptop", "Workstation")).items() if count > 1
        and len({c.serial_number for c in o.configurations if c.name == name}) > 1]
    assert reused, "a name reused with another serial"


def test_devices_come_from_their_own_random_stream(generated: World) -> None:
    again = generate_world(seed=4, tenants=12, users=600, revoked=1, reference_date=REFERENCE)
    assert again.model_dump_json() == generated.model_dump_json()
    bare = generate_world(seed=4, tenants=12, users=600, revoked=1, reference_date=REFERENCE, devices_per_user=0)
    assert all(t.devices == [] for t in bare.tenants)
    assert [t.users for t in bare.tenants] == [t.users for t in generated.tenants], "the users are the same"
    with pytest.raises(ValueError, match="devices_per_user"):
        generate_world(seed=4, tenants=2, users=20, devices_per_user=-1)


def test_the_world_command_takes_devices_per_user(tmp_path: Path) -> None:
    counts = {}
    for per_user in ("0", "2"):
        out = tmp_path / f"world-{per_user}.json"
        result = CliRunner().invoke(main, ["sandbox", "world", "--tenants", "2", "--users", "30", "--revoked", "0",
                                           "--devices-per-user", per_user, "--out", str(out)])
        assert result.exit_code == 0, result.output
        counts[per_user] = sum(len(t.devices) for t in load_world(out).tenants)
    assert counts["0"] == 0 and 50 <= counts["2"] <= 70


# --------------------------------------------------------------------------- world files


@pytest.fixture(scope="module")
def small_raw() -> str:
    return generate_world(seed=2, tenants=3, users=40, revoked=0, reference_date=REFERENCE).model_dump_json(
        exclude_none=True)


@pytest.fixture
def raw(small_raw: str) -> dict[str, Any]:
    """A small world file's JSON, each test's own to edit."""
    return json.loads(small_raw)


def test_a_device_id_twice_in_a_tenant_is_refused(raw: dict[str, Any]) -> None:
    tenant = next(i for i, t in enumerate(raw["tenants"]) if len(t["devices"]) >= 3)
    devices = raw["tenants"][tenant]["devices"]
    devices[2]["id"] = devices[0]["id"].upper()
    with pytest.raises(WorldError) as refused:
        parse_world(raw)
    message = str(refused.value)
    assert f"tenants.{tenant}.devices.2.id" in message
    assert f"is already used at 'tenants.{tenant}.devices.0.id'" in message


@pytest.mark.parametrize(("edit", "field", "says"), [
    (lambda d: d.update(userId="jane@contoso.com"), "userId", "is not a GUID"),
    (lambda d: d.update(id="device-1"), "id", "is not a GUID"),
    (lambda d: d.update(managedDeviceOwnerType="corporate"), "managedDeviceOwnerType", "'company'"),
    (lambda d: d.update(complianceState="green"), "complianceState", "'compliant'"),
])
def test_a_device_field_microsoft_could_not_hold_is_refused(raw: dict[str, Any], edit: Any, field: str,
                                                           says: str) -> None:
    tenant = next(i for i, t in enumerate(raw["tenants"]) if t["devices"])
    edit(raw["tenants"][tenant]["devices"][0])
    with pytest.raises(WorldError) as refused:
        parse_world(raw)
    assert f"tenants.{tenant}.devices.0.{field}" in str(refused.value) and says in str(refused.value)


def test_a_device_may_name_a_user_the_tenant_no_longer_has(raw: dict[str, Any]) -> None:
    device = next(t for t in raw["tenants"] if t["devices"])["devices"][0]
    device["userId"] = str(uuid.uuid4())
    assert parse_world(raw).tenants


def test_configurations_keep_the_store_consistent(small_raw: str) -> None:
    first = next(o for o in json.loads(small_raw)["store"]["organizations"] if o["configurations"])
    twice = json.loads(small_raw)
    other = next(o for o in twice["store"]["organizations"] if o["id"] != first["id"])
    other["configurations"].append({**first["configurations"][0], "microsoft": None, "primary_contact_id": None})
    with pytest.raises(WorldError, match=r"configuration id .* is already used at 'store\.organizations"):
        parse_world(twice)
    foreign = json.loads(small_raw)
    contact = next(c for c in foreign["store"]["contacts"] if c["organization_id"] != first["id"])
    next(o for o in foreign["store"]["organizations"] if o["id"] == first["id"])["configurations"][0][
        "primary_contact_id"] = contact["id"]
    with pytest.raises(WorldError, match="not a contact of its organization"):
        parse_world(foreign)
    linked = json.loads(small_raw)
    tenant = linked["tenants"][0]
    link = {"tenant_id": tenant["id"], "device_id": tenant["devices"][0]["id"]}
    rows = next(o for o in linked["store"]["organizations"] if len(o["configurations"]) >= 2)["configurations"]
    rows[0]["microsoft"], rows[1]["microsoft"] = link, dict(link)
    with pytest.raises(WorldError, match="linked device"):
        parse_world(linked)


def test_a_world_written_before_devices_still_loads(small_raw: str, tmp_path: Path) -> None:
    old = json.loads(small_raw)
    for tenant in old["tenants"]:
        del tenant["intune"], tenant["devices"]
        tenant["roles"] = [r for r in tenant["roles"] if r != READ]
    for organization in old["store"]["organizations"]:
        del organization["configurations"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    world = load_world(path)
    assert all(t.intune and t.devices == [] and READ not in t.roles for t in world.tenants)
    assert all(o.configurations == [] for o in world.store.organizations)
    save_world(parse_world(json.loads(small_raw)), tmp_path / "new.json")
    assert load_world(tmp_path / "new.json").model_dump_json(exclude_none=True) == small_raw, \
        "devices and configurations survive a round trip"
