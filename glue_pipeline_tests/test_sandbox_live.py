"""The sandbox changing while it runs, over real HTTPS with msal and requests: users/delta and
the change log behind it, direct-login apps, and the fault knobs."""

from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import msal
import pytest
import requests

from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import MAILBOX_REPORT_HEADER, Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import FIRST_REFERENCE_DATE, Tenant, User, World

SCOPES = ["https://graph.microsoft.com/.default"]
DELTA_SELECT = "id,displayName,jobTitle,mobilePhone,accountEnabled"


# Talk to the sandbox trusting only its CA, as the pipeline does (conftest).
pytestmark = pytest.mark.usefixtures("only_the_ca_we_pass")


@pytest.fixture(scope="module")
def base_world() -> World:
    """Four tenants, 640 users (the largest over 200), two of them with direct-login apps."""
    return generate_world(seed=21, tenants=4, users=640, revoked=0, direct=2)


@pytest.fixture(scope="module")
def running(base_world: World, sandbox_state: Path) -> Iterator[Sandbox]:
    config = SandboxConfig(world=base_world.model_copy(deep=True), retry_after_s=1, fault_seed=5)
    with Sandbox(config, state_dir=sandbox_state) as server:
        yield server


@pytest.fixture
def sandbox(running: Sandbox, base_world: World) -> Sandbox:
    """The running sandbox with a fresh copy of the world, no faults and zeroed stats: tests change them."""
    running.set_world(base_world.model_copy(deep=True))
    running.faults.clear()
    running.stats.reset()
    return running


def largest(world: World) -> Tenant:
    return max((t for t in world.tenants if t.relationship != "none"), key=lambda t: len(t.users))


def token(sandbox: Sandbox, tenant_id: str, client_id: str | None = None, secret: str | None = None) -> dict:
    app = msal.ConfidentialClientApplication(
        client_id or sandbox.world.app.client_id, client_credential=secret or sandbox.world.app.client_secret,
        authority=sandbox.authority(tenant_id), instance_discovery=False, azure_region=False,
        verify=str(sandbox.ca_file))
    return app.acquire_token_for_client(scopes=SCOPES)


def session_for(sandbox: Sandbox, tenant_id: str, **credentials: str) -> requests.Session:
    result = token(sandbox, tenant_id, **credentials)
    assert "access_token" in result, result
    session = requests.Session()
    session.verify = str(sandbox.ca_file)
    session.headers["Authorization"] = f"Bearer {result['access_token']}"
    return session


def delta_sync(session: requests.Session, url: str, state: dict[str, dict] | None = None,
               page_size: int | None = None) -> tuple[dict[str, dict], str, list[dict]]:
    """Follow a delta round to its deltaLink, applying it to state; returns the state, the
    deltaLink and the raw items of the round."""
    state = {} if state is None else state
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    items: list[dict] = []
    for _ in range(1000):
        response = session.get(url, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        for item in body["value"]:
            if "@removed" in item:
                state.pop(item["id"], None)
            else:
                state[item["id"]] = item
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return state, body["@odata.deltaLink"], items
        url = body["@odata.nextLink"]
    raise AssertionError("the delta round never reached its deltaLink")


def expected_state(tenant: Tenant, fields: str = DELTA_SELECT) -> dict[str, dict]:
    rows = {}
    for user in tenant.users:
        dumped = user.model_dump(mode="json")
        rows[user.id] = {f: dumped.get(f) for f in fields.split(",")}
    return rows


# --------------------------------------------------------------------------- users/delta


def test_delta_initial_sync_pages_to_a_delta_link(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    assert len(tenant.users) > 200
    session = session_for(sandbox, tenant.id)
    url = f"{sandbox.graph_url}/users/delta?$select={DELTA_SELECT}"
    first = session.get(url).json()
    assert len(first["value"]) == 200 and "$skiptoken=" in first["@odata.nextLink"]
    assert first["@odata.context"].endswith(f"#users({DELTA_SELECT})")
    prefer = session.get(url, headers={"Prefer": "odata.maxpagesize=50"})
    assert len(prefer.json()["value"]) == 50 and prefer.headers["Preference-Applied"] == "odata.maxpagesize=50"
    state, delta_link, items = delta_sync(session, url, page_size=97)
    assert "$deltatoken=" in delta_link and len(items) == len(tenant.users)  # each user exactly once
    assert state == expected_state(tenant)
    assert sandbox.stats.delta_requests >= 2 + -(-len(tenant.users) // 97)

    top = session.get(f"{url}&$top=5")
    assert top.status_code == 400 and top.json()["error"]["code"] == "Request_UnsupportedQuery"
    sign_in = session.get(f"{sandbox.graph_url}/users/delta?$select=id,signInActivity")
    assert sign_in.status_code == 400
    assert "not supported for the following properties: signInActivity" in sign_in.json()["error"]["message"]


def test_delta_round_reports_changed_added_and_removed_users(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    session = session_for(sandbox, tenant.id)
    state, delta_link, _ = delta_sync(session, f"{sandbox.graph_url}/users/delta?$select={DELTA_SELECT}")
    changed = sandbox.change_users(tenant.id, fraction=0.05, seed=1, fields=("jobTitle", "mobilePhone"))
    added = sandbox.add_user(tenant.id, seed=1)
    soft, hard = tenant.users[5].id, tenant.users[6].id
    sandbox.remove_user(tenant.id, soft)  # reason "changed": restorable
    sandbox.remove_user(tenant.id, hard, reason="deleted")
    assert len(changed) == round(0.05 * (len(tenant.users) + 1))

    state, next_link, items = delta_sync(session, delta_link, state, page_size=10)
    assert {i["id"] for i in items} == {*changed, added.id, soft, hard}
    removed = {i["id"]: i["@removed"] for i in items if "@removed" in i}
    assert removed == {soft: {"reason": "changed"}, hard: {"reason": "deleted"}}
    assert all(set(i) == {"id", "@removed"} for i in items if "@removed" in i)
    assert state == expected_state(tenant)  # full objects with the selected fields
    assert added.id in state and state[added.id]["displayName"] == added.displayName

    _, _, nothing = delta_sync(session, next_link, state)
    assert nothing == []
    users = session.get(f"{sandbox.graph_url}/users?$top=999&$select=id").json()["value"]
    assert {u["id"] for u in users} == set(state) == {u.id for u in tenant.users}


def test_delta_tracks_only_selected_fields_and_misses_nothing_mid_sync(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    session = session_for(sandbox, tenant.id)
    url = f"{sandbox.graph_url}/users/delta?$select=id,displayName"
    page = session.get(url, headers={"Prefer": "odata.maxpagesize=100"}).json()
    state = {u["id"]: u for u in page["value"]}
    # Changes while the initial sync is paging: one user not served yet goes, one arrives.
    sandbox.remove_user(tenant.id, tenant.users[-1].id)
    sandbox.add_user(tenant.id, seed=2)
    state, delta_link, _ = delta_sync(session, page["@odata.nextLink"], state, page_size=100)
    state, delta_link, _ = delta_sync(session, delta_link, state)
    assert state == expected_state(tenant, "id,displayName")

    sandbox.change_users(tenant.id, fraction=0.1, seed=3, fields=("mobilePhone",))  # not selected
    state, delta_link, items = delta_sync(session, delta_link, state)
    assert items == []
    married = sandbox.change_users(tenant.id, fraction=0.01, seed=4, fields=("surname",))
    state, delta_link, items = delta_sync(session, delta_link, state)
    assert [i["id"] for i in items] == married and state == expected_state(tenant, "id,displayName")


def test_delta_tokens_expire_with_410_and_latest_starts_from_now(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    session = session_for(sandbox, tenant.id)
    url = f"{sandbox.graph_url}/users/delta?$select={DELTA_SELECT}"
    latest = session.get(f"{url}&$deltatoken=latest").json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest
    changed = sandbox.change_users(tenant.id, fraction=0.02, seed=5, fields=("jobTitle",))
    _, delta_link, items = delta_sync(session, latest["@odata.deltaLink"])
    assert sorted(i["id"] for i in items) == sorted(changed)

    sandbox.expire_delta_tokens()
    gone = session.get(delta_link)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "syncStateNotFound"
    assert gone.headers["Location"] == url  # a full resync with the same $select
    unknown = session.get(f"{sandbox.graph_url}/users/delta?$deltatoken=not-a-token")
    assert unknown.status_code == 410 and unknown.json()["error"]["code"] == "syncStateNotFound"

    _, delta_link, _ = delta_sync(session, gone.headers["Location"])
    sandbox.faults.delta_token_lifetime_s = 0  # older than seven days
    time.sleep(1.1)
    assert session.get(delta_link).status_code == 410
    sandbox.faults.clear()
    assert session.get(delta_link).status_code == 200


def test_mutate_changes_every_tenant_deterministically(base_world: World, sandbox: Sandbox) -> None:
    before = {t.id: len(t.users) for t in sandbox.world.tenants}
    changes = sandbox.mutate(fraction=0.1, seed=9, added=0.05, removed=0.05)
    assert set(changes) == set(before)
    for tenant in sandbox.world.tenants:
        done = changes[tenant.id]
        assert done.changed and done.added and done.removed
        assert len(tenant.users) == before[tenant.id] + len(done.added) - len(done.removed)
        assert tenant.users[0].id not in done.removed  # the admin stays
        assert not set(done.removed) & {u.id for u in tenant.users}
    # New users get seats: no SKU is overcommitted.
    for tenant in sandbox.world.tenants:
        for sku in tenant.skus:
            assert sum(sku.skuId in {lic.skuId for lic in u.assignedLicenses} for u in tenant.users) <= sku.enabled
    sandbox.set_world(base_world.model_copy(deep=True))
    assert sandbox.mutate(fraction=0.1, seed=9, added=0.05, removed=0.05) == changes


def test_mutate_can_change_a_share_of_the_tenants(base_world: World, sandbox: Sandbox) -> None:
    users = {t.id: [u.model_dump() for u in t.users] for t in sandbox.world.tenants}
    changes = sandbox.mutate(fraction=0.2, seed=3, tenants=0.3)
    assert len(changes) == max(1, round(0.3 * len(users))) and all(c.changed for c in changes.values())
    for tenant in sandbox.world.tenants:
        if tenant.id not in changes:
            assert [u.model_dump() for u in tenant.users] == users[tenant.id], "a tenant not drawn is untouched"
    sandbox.set_world(base_world.model_copy(deep=True))
    assert sandbox.mutate(fraction=0.2, seed=3, tenants=0.3) == changes


def test_users_edited_in_place_show_after_refresh(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    session = session_for(sandbox, tenant.id)
    url = f"{sandbox.graph_url}/users?$select=id,jobTitle&$top=1"
    assert session.get(url).json()["value"][0]["jobTitle"] == tenant.users[0].jobTitle
    _, delta_link, _ = delta_sync(session, f"{sandbox.graph_url}/users/delta?$select=id,jobTitle")
    tenant.users[0].jobTitle = "Chief Sandbox Officer"  # behind the sandbox's back
    sandbox.refresh()
    assert session.get(url).json()["value"][0]["jobTitle"] == "Chief Sandbox Officer"
    assert session.get(delta_link).status_code == 410  # the change log could not see it: resync

    tenant.users.pop()  # a list changed by hand is noticed without refresh()
    users = session.get(f"{sandbox.graph_url}/users?$select=id&$top=999").json()["value"]
    assert len(users) == len(tenant.users)


# --------------------------------------------------------------------------- direct login


def test_direct_apps_get_tokens_for_their_own_tenant_only(sandbox: Sandbox) -> None:
    world = sandbox.world
    only_direct = next(t for t in world.tenants if t.relationship == "none")
    both = next(t for t in world.tenants if t.relationship != "none" and world.direct_app(t.id))
    app = world.direct_app(only_direct.id)
    assert app is not None
    claims = jwt.decode(token(sandbox, only_direct.id, client_id=app.client_id, secret=app.client_secret)
                        ["access_token"], options={"verify_signature": False})
    assert claims["tid"] == only_direct.id and claims["appid"] == app.client_id
    assert set(claims["roles"]) == set(only_direct.roles)
    session = session_for(sandbox, only_direct.id, client_id=app.client_id, secret=app.client_secret)
    assert session.get(f"{sandbox.graph_url}/organization").json()["value"][0]["id"] == only_direct.id
    assert len(session.get(f"{sandbox.graph_url}/users?$top=999").json()["value"]) == len(only_direct.users)

    elsewhere = token(sandbox, both.id, client_id=app.client_id, secret=app.client_secret)
    assert elsewhere["error_codes"] == [700016] and elsewhere["error"] == "unauthorized_client"
    wrong = token(sandbox, only_direct.id, client_id=app.client_id, secret="not-the-secret")
    assert wrong["error_codes"] == [7000215]
    partner_app = token(sandbox, only_direct.id)  # the partner's app is not installed there
    assert partner_app["error_codes"] == [700016]
    both_app = world.direct_app(both.id)
    assert "access_token" in token(sandbox, both.id)  # both ways in
    assert "access_token" in token(sandbox, both.id, client_id=both_app.client_id, secret=both_app.client_secret)

    partner = session_for(sandbox, world.partner.tenant_id)
    listed = {c["customerId"] for c in partner.get(f"{sandbox.graph_url}/contracts").json()["value"]}
    listed |= {c["tenantId"] for c in partner.get(
        f"{sandbox.graph_url}/tenantRelationships/delegatedAdminCustomers").json()["value"]}
    assert only_direct.id not in listed and both.id in listed

    sandbox.faults.revoked_direct.add(only_direct.id)  # admin consent withdrawn: no roles, Graph says 403
    revoked = session_for(sandbox, only_direct.id, client_id=app.client_id, secret=app.client_secret)
    assert revoked.get(f"{sandbox.graph_url}/users").status_code == 403


DEVICES_PERMISSION = "DeviceManagementManagedDevices.Read.All"


@pytest.mark.parametrize(("arguments", "digest"), [
    ({"seed": 7}, "97485aa9d7c1cf2a1b00f6152aa4c3485a88a2b12257772174702c6f018ec332"),  # the demo's world
    ({"seed": 11, "tenants": 6, "users": 300, "revoked": 1},
     "b3320b607bdccc5cdb3fa4ea166be1dceb1282aeda84f7223774d377742b4cdd"),
])
def test_default_worlds_stay_the_same(arguments: dict, digest: str) -> None:
    # Digests of the worlds the generator made before direct apps, spreads, its speed-ups,
    # reference dates and devices; saved demo worlds and stores seeded from them depend on a seed
    # (and its reference date) always giving the same world. Devices came later, from a random
    # stream of their own: without them (and the permission they need) the world is as it was.
    world = generate_world(**arguments, reference_date=FIRST_REFERENCE_DATE).model_dump(
        exclude={"direct_apps", "reference_date"})
    for tenant in world["tenants"]:
        del tenant["devices"], tenant["intune"]
        tenant["roles"].remove(DEVICES_PERMISSION)
    for organization in world["store"]["organizations"]:
        del organization["configurations"]
    assert hashlib.sha256(json.dumps(world, sort_keys=True).encode()).hexdigest() == digest


def test_generated_direct_apps_leave_the_default_world_alone() -> None:
    plain = generate_world(seed=7, reference_date=FIRST_REFERENCE_DATE)
    direct = generate_world(seed=7, direct=4, reference_date=FIRST_REFERENCE_DATE)
    assert plain.direct_apps == [] and len(direct.direct_apps) == 4
    assert direct == generate_world(seed=7, direct=4, reference_date=FIRST_REFERENCE_DATE)
    nones = [t.id for t in direct.tenants if t.relationship == "none"]
    assert len(nones) == 2 and set(nones) <= {a.tenant_id for a in direct.direct_apps}
    assert len({a.client_id for a in direct.direct_apps} | {direct.app.client_id}) == 5
    for a, b in zip(plain.tenants, direct.tenants, strict=True):
        assert a.model_dump(exclude={"relationship"}) == b.model_dump(exclude={"relationship"})
    assert plain.store == direct.store and plain.app == direct.app
    with pytest.raises(ValueError, match="direct=5"):
        generate_world(seed=1, tenants=4, users=40, direct=5)
    with pytest.raises(ValueError, match="spread"):
        generate_world(seed=1, tenants=4, users=40, spread="flat")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- faults


def test_reset_drops_the_connection_for_targeted_tenants(sandbox: Sandbox) -> None:
    world = sandbox.world
    target, other = [t for t in world.tenants if t.relationship != "none"][:2]
    hit, spared = session_for(sandbox, target.id), session_for(sandbox, other.id)
    sandbox.faults.reset_rate = 1.0
    sandbox.faults.fault_tenants = {target.id}
    with pytest.raises(requests.ConnectionError):
        hit.get(f"{sandbox.graph_url}/organization", timeout=10)
    assert spared.get(f"{sandbox.graph_url}/organization", timeout=10).status_code == 200
    assert sandbox.stats.resets == 1 and sandbox.stats.faults_injected == 1
    sandbox.faults.clear()
    assert hit.get(f"{sandbox.graph_url}/organization", timeout=10).status_code == 200


def test_slow_answers_outlast_timeouts_without_serialising(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    session = session_for(sandbox, tenant.id)
    sandbox.faults.slow_rate, sandbox.faults.slow_s = 1.0, 1.0
    with pytest.raises(requests.Timeout):
        session.get(f"{sandbox.graph_url}/organization", timeout=0.3)
    headers = dict(session.headers)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: requests.get(f"{sandbox.graph_url}/organization", headers=headers,
                                                        verify=str(sandbox.ca_file), timeout=10).status_code,
                                 range(12)))
    assert statuses == [200] * 12 and time.monotonic() - started < 4  # 12 x 1 s overlapped
    assert sandbox.stats.slowed == 13


def test_token_lifetime_changes_at_run_time(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    sandbox.faults.token_lifetime_s = 600
    result = token(sandbox, tenant.id)
    assert result["expires_in"] == 600
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600
    sandbox.faults.clear()
    assert token(sandbox, tenant.id)["expires_in"] == 3599


def test_tokens_expire_after_n_more_requests_mid_paging(sandbox: Sandbox) -> None:
    tenant, other = [t for t in sandbox.world.tenants if t.relationship != "none"][:2]
    session, bystander = session_for(sandbox, tenant.id), session_for(sandbox, other.id)
    sandbox.faults.fault_tenants = {tenant.id}
    sandbox.faults.expire_tokens_after_requests = 2
    url = f"{sandbox.graph_url}/users?$top=5&$select=id"
    first = session.get(url)
    assert session.get(first.json()["@odata.nextLink"]).status_code == 200
    assert bystander.get(url).status_code == 200  # not targeted: neither counted nor refused
    refused = session.get(first.json()["@odata.nextLink"])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "expired" in refused.json()["error"]["message"]
    assert session.get(url).status_code == 401 and sandbox.stats.tokens_refused == 2
    assert sandbox.faults.expire_tokens_after_requests is None  # fired once
    assert bystander.get(url).status_code == 200
    fresh = session_for(sandbox, tenant.id)  # a new token goes on where the old one stopped
    assert fresh.get(first.json()["@odata.nextLink"]).status_code == 200


def test_next_link_loops_and_never_ends(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    session = session_for(sandbox, tenant.id)
    sandbox.faults.next_link_loop.add(tenant.id)
    links = []
    url = f"{sandbox.graph_url}/users?$top=100&$select=id"
    for _ in range(3):
        body = session.get(url).json()
        links.append(body["@odata.nextLink"])
        url = body["@odata.nextLink"]
    assert links[0] == links[1] == links[2]
    delta = session.get(f"{sandbox.graph_url}/users/delta?$select=id").json()
    assert session.get(delta["@odata.nextLink"]).json()["@odata.nextLink"] == delta["@odata.nextLink"]

    sandbox.faults.clear()
    sandbox.faults.next_link_endless.add(tenant.id)
    pages, seen, url = [], set(), f"{sandbox.graph_url}/users?$top=150&$select=id"
    for _ in range(7):
        body = session.get(url).json()
        pages.append(len(body["value"]))
        seen |= {u["id"] for u in body["value"]}
        assert body["@odata.nextLink"] != url
        url = body["@odata.nextLink"]
    last = len(tenant.users) - 300
    assert 0 < last <= 150 and seen == {u.id for u in tenant.users}
    assert pages == [150, 150, last, 0, last, 0, last]  # then empty and repeated pages, forever
    delta_url = f"{sandbox.graph_url}/users/delta?$select=id"
    for _ in range(6):
        body = session.get(delta_url).json()
        assert "@odata.deltaLink" not in body
        delta_url = body["@odata.nextLink"]
    assert sandbox.stats.paging_faults >= 10


@pytest.mark.parametrize("mode", ["truncated", "malformed", "empty", "no_bom"])
def test_report_csv_faults(sandbox: Sandbox, mode: str) -> None:
    tenant = largest(sandbox.world)
    session = session_for(sandbox, tenant.id)
    sandbox.faults.report_csv[tenant.id] = mode
    raw = session.get(f"{sandbox.graph_url}/reports/getMailboxUsageDetail(period='D7')").content
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    boxes = sum(1 for u in tenant.users if u.mailbox)
    assert rows[0] == MAILBOX_REPORT_HEADER
    if mode == "truncated":
        assert raw.startswith(b"\xef\xbb\xbf") and not raw.endswith(b"\n")
        assert len(rows) == boxes + 1 and len(rows[-1]) < len(MAILBOX_REPORT_HEADER)
    elif mode == "malformed":
        widths = {len(r) for r in rows[1:]}
        assert len(widths) > 1 and any(r[0].startswith("<!--") for r in rows)
        assert any("n/a" in r for r in rows)
    elif mode == "empty":
        assert raw.startswith(b"\xef\xbb\xbf") and rows == [MAILBOX_REPORT_HEADER]
    else:
        assert not raw.startswith(b"\xef\xbb\xbf") and len(rows) == boxes + 1
    assert sandbox.stats.report_faults == 1 and sandbox.stats.faults_injected == 1


def test_removed_tenant_vanishes_and_comes_back(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    session = session_for(sandbox, tenant.id)
    sandbox.remove_tenant(tenant.id)
    assert session.get(f"{sandbox.graph_url}/organization").status_code == 401
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        token(sandbox, tenant.id)  # msal's discovery meets AADSTS90002
    discovery = requests.get(f"{sandbox.base_url}/{tenant.id}/v2.0/.well-known/openid-configuration",
                             verify=str(sandbox.ca_file), timeout=10)
    assert discovery.json()["error_codes"] == [90002]
    sandbox.restore_tenant(tenant.id)
    assert session.get(f"{sandbox.graph_url}/organization").status_code == 200


def test_stats_snapshot_names_every_counter(sandbox: Sandbox) -> None:
    snapshot = sandbox.stats.snapshot()
    assert {"throttled", "server_errors", "resets", "slowed", "tokens_refused", "paging_faults", "report_faults",
            "faults_injected", "delta_requests", "tokens_issued", "identity_errors", "peak_in_flight"} <= set(snapshot)


def test_added_user_must_be_new(sandbox: Sandbox) -> None:
    tenant = largest(sandbox.world)
    with pytest.raises(ValueError, match="already exists"):
        sandbox.add_user(tenant.id, tenant.users[0])
    clone = User(id="00000000-0000-4000-8000-000000000001", userPrincipalName=tenant.users[0].userPrincipalName)
    with pytest.raises(ValueError, match="userPrincipalName"):
        sandbox.add_user(tenant.id, clone)
    with pytest.raises(KeyError):
        sandbox.change_users("not-a-tenant", 0.1)
