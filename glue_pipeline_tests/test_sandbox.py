"""The sandbox over real HTTPS: the real msal library and requests against it, and the
world generator it serves."""

from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import msal
import pytest
import requests

from glue_pipeline.demo import demo_world
from glue_pipeline.sandbox.generate import generate_world, generation_day
from glue_pipeline.sandbox.server import (
    ENTRA_PREMIUM_SKUS,
    MAILBOX_REPORT_HEADER,
    Faults,
    Sandbox,
    SandboxConfig,
)
from glue_pipeline.sandbox.tls import ensure_ca
from glue_pipeline.sandbox.world import Sku, Tenant, World, redated, save_world

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
USER_FIELDS = ["id", "displayName", "userPrincipalName"]
# Where the cast's times count back from: neither today nor the date worlds used to count from.
REFERENCE = datetime(2026, 6, 15, tzinfo=UTC)


@dataclass(frozen=True)
class Cast:
    """The tenants each test plays with."""

    world: World
    plain: Tenant  # consented, every role, no Entra premium, report names visible
    limited: Tenant  # consented, only Organization.Read.All
    revoked: Tenant
    big: Tenant  # 1,100 users, Entra premium, concealed report names


def _cast() -> Cast:
    small = generate_world(seed=11, tenants=4, users=60, revoked=1, reference_date=REFERENCE)
    big = generate_world(seed=16, tenants=1, users=1100, revoked=0, reference_date=REFERENCE).tenants[0]
    if not any(s.skuPartNumber in ENTRA_PREMIUM_SKUS for s in big.skus):
        big.skus.append(Sku(skuId="078d2b04-f1bd-4111-bbd4-b4b1b354cef4", skuPartNumber="AAD_PREMIUM", enabled=5))
    big.reports_concealed = True
    granted = [t for t in small.tenants if t.consent == "granted"]
    plain = next(t for t in granted if not t.reports_concealed
                 and not any(s.skuPartNumber in ENTRA_PREMIUM_SKUS for s in t.skus))
    limited = next(t for t in granted if t is not plain)
    limited.roles = ["Organization.Read.All"]
    revoked = next(t for t in small.tenants if t.consent == "revoked")
    world = World(seed=11, reference_date=REFERENCE, partner=small.partner, app=small.app,
                  tenants=[*small.tenants, big], store=small.store)
    return Cast(world, plain, limited, revoked, big)


# Talk to the sandbox trusting only its CA, as the pipeline does (conftest).
pytestmark = pytest.mark.usefixtures("only_the_ca_we_pass")


@pytest.fixture(scope="module")
def cast() -> Cast:
    return _cast()


@pytest.fixture(scope="module")
def sandbox(cast: Cast, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    config = SandboxConfig(world=cast.world, retry_after_s=2, fault_seed=3)
    with Sandbox(config, state_dir=tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture
def faults(sandbox: Sandbox) -> Iterator[Faults]:
    yield sandbox.faults
    sandbox.faults.clear()


def msal_app(sandbox: Sandbox, tenant: str, secret: str | None = None) -> msal.ConfidentialClientApplication:
    app = sandbox.world.app
    return msal.ConfidentialClientApplication(
        app.client_id, client_credential=secret or app.client_secret, authority=sandbox.authority(tenant),
        instance_discovery=False, azure_region=False, verify=str(sandbox.ca_file))


def token_for(sandbox: Sandbox, tenant: str) -> str:
    result = msal_app(sandbox, tenant).acquire_token_for_client(scopes=GRAPH_SCOPES)
    assert "access_token" in result, result
    return result["access_token"]


def graph_session(sandbox: Sandbox, token: str) -> requests.Session:
    session = requests.Session()
    session.verify = str(sandbox.ca_file)
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def graph_error(response: requests.Response) -> dict:
    error = response.json()["error"]
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    return error


# --------------------------------------------------------------------------- world generation


def test_generate_world_is_deterministic_and_sized() -> None:
    world = generate_world(seed=7, reference_date=REFERENCE)
    assert world.model_dump_json() == generate_world(seed=7, reference_date=REFERENCE).model_dump_json()
    assert world.model_dump_json() != generate_world(seed=8, reference_date=REFERENCE).model_dump_json()
    assert len(world.tenants) == 24 and world.user_count == 1500
    assert all(t.users for t in world.tenants)
    assert len({len(t.users) for t in world.tenants}) > 5  # a spread, not an even split
    users = [u for t in world.tenants for u in t.users]
    assert any(u.userType == "Guest" and "#EXT#@" in u.userPrincipalName and not u.assignedLicenses for u in users)
    assert any(not u.accountEnabled for u in users)
    assert any(u.userType == "Member" and not u.assignedLicenses for u in users)
    assert any(any(ord(c) > 127 for c in (u.displayName or "")) for u in users)
    assert len({u.id for u in users}) == 1500
    assert len({u.userPrincipalName.lower() for u in users}) == 1500
    assert all(u.userPrincipalName.isascii() for u in users)
    revoked = [i for i, t in enumerate(world.tenants) if t.consent == "revoked"]
    assert len(revoked) == 1 and revoked[0] != 0


def test_generated_licenses_and_mailboxes_are_consistent() -> None:
    world = generate_world(seed=7)
    for tenant in world.tenants:
        assigned = [lic.skuId for u in tenant.users for lic in u.assignedLicenses]
        for sku in tenant.skus:
            assert sku.enabled >= assigned.count(sku.skuId)
        assert set(assigned) <= {s.skuId for s in tenant.skus}
        assert sum(d.is_initial for d in tenant.domains) == 1 and tenant.initial_domain.endswith(".onmicrosoft.com")
        assert tenant.street and tenant.city and tenant.country_letter_code and tenant.phone
    licensed_boxes = [u for t in world.tenants for u in t.users if u.assignedLicenses and u.mailbox]
    assert licensed_boxes and all(p.startswith(("SMTP:", "smtp:")) for u in licensed_boxes for p in u.proxyAddresses)


def test_generated_store_seed_matches_most_tenants() -> None:
    world = generate_world(seed=7)
    store = world.store
    normalized = {" ".join(o.name.split()).lower(): o for o in store.organizations}
    matched = [t for t in world.tenants if " ".join(t.display_name.split()).lower() in normalized]
    assert 0.7 * len(world.tenants) <= len(matched) < len(world.tenants)
    assert any(o.name != " ".join(o.name.split()) or o.name.isupper() for o in store.organizations)
    assert len(store.organizations) - len(matched) == 5
    assert [o.id for o in store.organizations] == list(range(1, len(store.organizations) + 1))
    assert [c.id for c in store.contacts] == list(range(1, len(store.contacts) + 1))
    upns = {u.userPrincipalName.lower() for t in world.tenants for u in t.users}
    primary = [next(e.value for e in c.emails if e.primary).lower() for c in store.contacts]
    assert sum(p in upns for p in primary) > 0.6 * len(primary)
    assert any(p not in upns and not p.split("@")[0].endswith(".old") for p in primary)  # another format


def _last_sign_ins(world: World) -> list[datetime]:
    return [datetime.fromisoformat(u.signInActivity.lastSignInDateTime.replace("Z", "+00:00"))
            for t in world.tenants for u in t.users if u.signInActivity and u.signInActivity.lastSignInDateTime]


def test_a_world_generated_now_has_recent_and_old_sign_ins() -> None:
    world = generate_world(seed=5, tenants=3, users=300, revoked=0)
    reference = world.reference_date
    assert reference == reference.replace(hour=0, minute=0, second=0, microsecond=0), "the start of a day"
    assert timedelta(0) <= datetime.now(UTC) - reference < timedelta(days=1), "today's"
    ages = [reference - moment for moment in _last_sign_ins(world)]
    assert len(ages) > 250 and min(ages) >= timedelta(0), "nobody signs in after the reference date"
    recent = sum(age <= timedelta(days=30) for age in ages)
    assert recent > len(ages) / 2, "most users signed in within the last 30 days"
    assert len(ages) - recent > len(ages) / 10, "and some long before"


# A generated world's dates and times (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ).
_DATE_OR_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}Z)?")


def _shifted(text: str, by: timedelta) -> str:
    """text with every date and time in it moved by `by`."""
    def shift(found: re.Match[str]) -> str:
        value = found.group()
        if "T" not in value:
            return (datetime.fromisoformat(value) + by).date().isoformat()
        return (datetime.fromisoformat(value.replace("Z", "+00:00")) + by).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _DATE_OR_TIME.sub(shift, text)


def test_another_reference_date_moves_every_time_and_nothing_else() -> None:
    first = generate_world(seed=5, tenants=3, users=120, revoked=0, reference_date=REFERENCE)
    later = generate_world(seed=5, tenants=3, users=120, revoked=0, reference_date=REFERENCE + timedelta(days=10))
    assert later.reference_date == datetime(2026, 6, 25, tzinfo=UTC)
    assert first.model_dump_json() != later.model_dump_json()
    assert _shifted(first.model_dump_json(), timedelta(days=10)) == later.model_dump_json()


def test_a_redated_world_is_the_world_generated_at_its_new_reference_date() -> None:
    first = generate_world(seed=5, tenants=3, users=120, revoked=0, reference_date=REFERENCE)
    kept = first.model_dump_json()
    for moved_to in (datetime(2027, 1, 3, tzinfo=UTC), REFERENCE - timedelta(days=40)):  # over a year's end; back
        assert redated(first, moved_to) == generate_world(seed=5, tenants=3, users=120, revoked=0,
                                                          reference_date=moved_to)
    assert first.model_dump_json() == kept, "the world itself is left as it was"
    with pytest.raises(ValueError, match="is not a whole number of days"):
        redated(first, REFERENCE + timedelta(days=1, hours=5))


def test_the_demo_serves_its_saved_world_redated_to_today(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "world.json"
    save_world(generate_world(seed=5, tenants=2, users=30, revoked=0, reference_date=REFERENCE), path)
    saved = path.read_bytes()
    today = generation_day()
    served = demo_world(tmp_path, seed=5, tenants=2, users=30)
    assert served.reference_date in {today, generation_day()}, "the start of today (UTC)"
    assert served == generate_world(seed=5, tenants=2, users=30, revoked=0, reference_date=served.reference_date), \
        "the saved world, every time moved to count back from today"
    assert path.read_bytes() == saved, "the file is left as it was"


# --------------------------------------------------------------------------- TLS and identity


def test_ensure_ca_reuses_existing_files(tmp_path: Path) -> None:
    first = ensure_ca(tmp_path)
    pem = first.ca_file.read_bytes()
    assert ensure_ca(tmp_path) == first and first.ca_file.read_bytes() == pem
    assert first.key_file.stat().st_mode & 0o077 == 0


def test_real_tls_is_refused_without_the_sandbox_ca(sandbox: Sandbox, cast: Cast) -> None:
    url = f"{sandbox.base_url}/{cast.plain.id}/v2.0/.well-known/openid-configuration"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, timeout=10)
    assert requests.get(url, verify=str(sandbox.ca_file), timeout=10).status_code == 200


def test_sandbox_runs_until_stopped(cast: Cast) -> None:
    sandbox = Sandbox(cast.world).start()
    try:
        sandbox.wait(timeout_s=0.1)  # still serving: returns on the timeout
        assert requests.get(f"{sandbox.base_url}/{cast.plain.id}/v2.0/.well-known/openid-configuration",
                            verify=str(sandbox.ca_file), timeout=10).status_code == 200
    finally:
        sandbox.stop()
    sandbox.wait()  # stopped: returns at once
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.base_url


def test_openid_configuration(sandbox: Sandbox, cast: Cast) -> None:
    doc = requests.get(f"{sandbox.base_url}/{cast.plain.default_domain}/v2.0/.well-known/openid-configuration",
                       verify=str(sandbox.ca_file), timeout=10).json()
    assert doc["issuer"] == f"{sandbox.base_url}/{cast.plain.id}/v2.0"
    assert doc["token_endpoint"] == f"{sandbox.base_url}/{cast.plain.id}/oauth2/v2.0/token"
    unknown = requests.get(f"{sandbox.base_url}/nowhere.example/v2.0/.well-known/openid-configuration",
                           verify=str(sandbox.ca_file), timeout=10)
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_tenant"
    assert unknown.json()["error_codes"] == [90002]


def test_msal_gets_a_token_with_tenant_and_roles(sandbox: Sandbox, cast: Cast) -> None:
    for authority in (cast.plain.id, cast.plain.default_domain):
        claims = jwt.decode(token_for(sandbox, authority), options={"verify_signature": False})
        assert claims["tid"] == cast.plain.id
        assert claims["aud"] == "https://graph.microsoft.com"
        assert claims["iss"] == f"https://sts.windows.net/{cast.plain.id}/"
        assert claims["appid"] == sandbox.world.app.client_id
        assert set(claims["roles"]) == set(cast.plain.roles)
    partner = jwt.decode(token_for(sandbox, sandbox.world.partner.tenant_id), options={"verify_signature": False})
    assert set(partner["roles"]) == {"Directory.Read.All", "DelegatedAdminRelationship.Read.All"}


def test_wrong_secret_is_aadsts7000215(sandbox: Sandbox, cast: Cast) -> None:
    result = msal_app(sandbox, cast.plain.id, secret="not-the-secret").acquire_token_for_client(scopes=GRAPH_SCOPES)
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215:")
    assert result["error_codes"] == [7000215] and result["trace_id"] and result["correlation_id"]


def test_revoked_consent_is_aadsts700016(sandbox: Sandbox, cast: Cast, faults: Faults) -> None:
    result = msal_app(sandbox, cast.revoked.id).acquire_token_for_client(scopes=GRAPH_SCOPES)
    assert result["error"] == "unauthorized_client"
    assert result["error_description"].startswith("AADSTS700016:")
    assert "consented to by any user in the tenant" in result["error_description"]
    faults.revoked.add(cast.plain.id)  # revoked while running
    live = msal_app(sandbox, cast.plain.id).acquire_token_for_client(scopes=GRAPH_SCOPES)
    assert live["error_codes"] == [700016]


def test_removed_tenant_disappears(sandbox: Sandbox, cast: Cast, faults: Faults) -> None:
    faults.removed.add(cast.plain.id)
    discovery = requests.get(f"{sandbox.base_url}/{cast.plain.id}/v2.0/.well-known/openid-configuration",
                             verify=str(sandbox.ca_file), timeout=10)
    assert discovery.status_code == 400 and discovery.json()["error_codes"] == [90002]
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal_app(sandbox, cast.plain.id)
    session = graph_session(sandbox, token_for(sandbox, sandbox.world.partner.tenant_id))
    customers = session.get(f"{sandbox.graph_url}/tenantRelationships/delegatedAdminCustomers").json()["value"]
    assert cast.plain.id not in {c["tenantId"] for c in customers}


def test_bad_grant_and_scope_are_refused(sandbox: Sandbox, cast: Cast) -> None:
    url = f"{sandbox.base_url}/{cast.plain.id}/oauth2/v2.0/token"
    app = sandbox.world.app
    form = {"client_id": app.client_id, "client_secret": app.client_secret, "grant_type": "client_credentials"}
    cases = [({"grant_type": "password"}, "unsupported_grant_type"),
             ({"scope": "User.Read"}, "invalid_scope"),
             ({"client_id": "00000000-0000-0000-0000-000000000001"}, "unauthorized_client")]
    for change, error in cases:
        body = {"scope": GRAPH_SCOPES[0], **form, **change}
        response = requests.post(url, data=body, verify=str(sandbox.ca_file), timeout=10)
        assert response.status_code == 400 and response.json()["error"] == error


# --------------------------------------------------------------------------- Graph


def test_users_page_across_999_with_selected_fields(sandbox: Sandbox, cast: Cast) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.big.id))
    url: str | None = f"{sandbox.graph_url}/users?$top=999&$select={','.join(USER_FIELDS)}"
    seen: list[dict] = []
    pages = 0
    while url:
        body = session.get(url, timeout=30).json()
        assert body["@odata.context"].endswith(f"#users({','.join(USER_FIELDS)})")
        seen += body["value"]
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 2
    assert sorted(u["id"] for u in seen) == sorted(u.id for u in cast.big.users)
    assert all(list(u) == USER_FIELDS for u in seen)


def test_users_default_fields_and_bad_queries(sandbox: Sandbox, cast: Cast) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.plain.id))
    body = session.get(f"{sandbox.graph_url}/users").json()
    assert len(body["value"]) == len(cast.plain.users) and "@odata.nextLink" not in body
    assert "mailbox" not in body["value"][0] and "accountEnabled" not in body["value"][0]
    assert set(body["value"][0]) == {"businessPhones", "displayName", "givenName", "id", "jobTitle", "mail",
                                     "mobilePhone", "officeLocation", "preferredLanguage", "surname",
                                     "userPrincipalName"}
    unknown = session.get(f"{sandbox.graph_url}/users", params={"$select": "id,mailbox"})
    assert unknown.status_code == 400
    assert graph_error(unknown)["message"] == \
        "Could not find a property named 'mailbox' on type 'microsoft.graph.user'."
    too_many = session.get(f"{sandbox.graph_url}/users", params={"$top": "1000"})
    assert too_many.status_code == 400 and graph_error(too_many)["code"] == "Request_UnsupportedQuery"


def test_sign_in_activity_needs_premium_role_and_small_pages(sandbox: Sandbox, cast: Cast) -> None:
    select = {"$select": "id,signInActivity"}
    big = graph_session(sandbox, token_for(sandbox, cast.big.id))
    page = big.get(f"{sandbox.graph_url}/users", params={**select, "$top": "500"})
    assert page.status_code == 200 and "lastSignInDateTime" in page.json()["value"][0]["signInActivity"]
    # Documented: with signInActivity a $top above 500 gives pages of up to 500 users (not an error).
    capped = big.get(f"{sandbox.graph_url}/users", params={**select, "$top": "999"})
    assert capped.status_code == 200 and len(capped.json()["value"]) == 500
    assert "$top=500" in capped.json()["@odata.nextLink"]
    sizes, url = [], f"{sandbox.graph_url}/users?$select=id,signInActivity&$top=999"
    while url:
        body = big.get(url).json()
        sizes.append(len(body["value"]))
        url = body.get("@odata.nextLink")
    assert sizes == [500, 500, 100]
    assert big.get(f"{sandbox.graph_url}/users", params={**select, "$top": "1000"}).status_code == 400
    plain = graph_session(sandbox, token_for(sandbox, cast.plain.id))
    no_premium = plain.get(f"{sandbox.graph_url}/users", params=select)
    assert no_premium.status_code == 403
    assert graph_error(no_premium)["code"] == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"


def test_missing_role_is_403(sandbox: Sandbox, cast: Cast) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.limited.id))
    for path in ("/users", "/reports/getMailboxUsageDetail(period='D7')", "/domains"):
        response = session.get(f"{sandbox.graph_url}{path}", allow_redirects=False)
        assert response.status_code == 403, path
        expected = ({"code": "UnknownError", "message": '{"error":{"code":"S2SUnauthorized","message":"Invalid '
                     'permission."}}'} if "reports/" in path else  # the reports service's refusal, as Graph wraps it
                    {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the "
                     "operation."})
        assert graph_error(response) | {"innerError": None} == {**expected, "innerError": None}
    assert session.get(f"{sandbox.graph_url}/organization").status_code == 200


def test_partner_lists_contracts_and_gdap_customers_in_pages(sandbox: Sandbox, cast: Cast) -> None:
    session = graph_session(sandbox, token_for(sandbox, sandbox.world.partner.tenant_id))

    def collect(path: str) -> list[dict]:
        rows, url = [], f"{sandbox.graph_url}/{path}?$top=2"
        while url:
            body = session.get(url).json()
            rows += body["value"]
            url = body.get("@odata.nextLink")
        return rows

    contracts = collect("contracts")
    assert [c["customerId"] for c in contracts] == [
        t.id for t in cast.world.tenants if t.relationship in ("dap", "both")]
    assert all(c["contractType"] == "ResellerPartner" and c["defaultDomainName"] for c in contracts)
    gdap = collect("tenantRelationships/delegatedAdminCustomers")
    assert [c["tenantId"] for c in gdap] == [t.id for t in cast.world.tenants if t.relationship in ("gdap", "both")]
    too_many = session.get(f"{sandbox.graph_url}/tenantRelationships/delegatedAdminCustomers?$top=301")
    assert too_many.status_code == 400


def test_organization_domains_and_skus(sandbox: Sandbox, cast: Cast) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.plain.id))
    org = session.get(f"{sandbox.graph_url}/organization").json()["value"][0]
    assert org["id"] == cast.plain.id and org["displayName"] == cast.plain.display_name
    assert {d["name"] for d in org["verifiedDomains"]} == {d.name for d in cast.plain.domains}
    assert org["city"] == cast.plain.city and org["businessPhones"] == [cast.plain.phone]
    domains = session.get(f"{sandbox.graph_url}/domains").json()["value"]
    assert [d["id"] for d in domains if d["isDefault"]] == [cast.plain.default_domain]
    skus = session.get(f"{sandbox.graph_url}/subscribedSkus").json()["value"]
    for sku in skus:
        assigned = sum(sku["skuId"] in {lic.skuId for lic in u.assignedLicenses} for u in cast.plain.users)
        assert sku["consumedUnits"] == assigned <= sku["prepaidUnits"]["enabled"]


def test_mailbox_report_redirects_to_a_csv_with_bom(sandbox: Sandbox, cast: Cast) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.plain.id))
    for path in ("reports/getMailboxUsageDetail(period='D7')", "reports/getMailboxUsageDetail(period=%27D7%27)"):
        redirect = session.get(f"{sandbox.graph_url}/{path}", allow_redirects=False)
        assert redirect.status_code == 302
        location = redirect.headers["Location"]
        download_host = sandbox.base_url.replace("127.0.0.1", "localhost")  # Graph's downloads have a host of their own
        assert re.fullmatch(rf"{re.escape(download_host)}/reports-download/[\w-]+\.csv", location)
        download = requests.get(location, verify=str(sandbox.ca_file), timeout=10)  # no Authorization
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert download.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
        assert rows[0] == MAILBOX_REPORT_HEADER
        assert {r[1] for r in rows[1:]} == {u.userPrincipalName for u in cast.plain.users if u.mailbox}
        assert {r[-1] for r in rows[1:]} == {"7"} and {r[15] for r in rows[1:]} <= {"True", "False"}
        assert rows[1][0] == "2026-06-14", "refreshed the day before the world's reference date"
        assert 'filename="MailboxUsageDetail06_15_2026.csv"' in download.headers["content-disposition"]


def test_concealed_report_hashes_names(sandbox: Sandbox, cast: Cast) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.big.id))
    report = session.get(f"{sandbox.graph_url}/reports/getMailboxUsageDetail(period='D7')")
    csv_text = report.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    expected = {hashlib.md5(u.userPrincipalName.encode()).hexdigest().upper() for u in cast.big.users if u.mailbox}
    assert {r["User Principal Name"] for r in rows} == expected
    assert all(re.fullmatch(r"[0-9A-F]{32}", r["Display Name"]) for r in rows)


def test_throttling_answers_429_with_retry_after(sandbox: Sandbox, cast: Cast, faults: Faults) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.plain.id))
    faults.rate_429 = 1.0
    before = sandbox.stats.throttled
    response = session.get(f"{sandbox.graph_url}/users", headers={"client-request-id": "abc-123"})
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    error = graph_error(response)
    assert error["code"] == "TooManyRequests" and error["innerError"]["client-request-id"] == "abc-123"
    assert response.headers["client-request-id"] == "abc-123" and response.headers["request-id"]
    assert sandbox.stats.throttled == before + 1
    assert "access_token" in msal_app(sandbox, cast.plain.id).acquire_token_for_client(scopes=GRAPH_SCOPES)


def test_server_errors_carry_graph_bodies(sandbox: Sandbox, cast: Cast, faults: Faults) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.plain.id))
    faults.rate_5xx = 1.0
    statuses = set()
    for _ in range(12):
        response = session.get(f"{sandbox.graph_url}/organization")
        statuses.add(response.status_code)
        assert graph_error(response)["code"]
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1


def test_expired_and_missing_tokens_are_401(sandbox: Sandbox, cast: Cast) -> None:
    token = token_for(sandbox, cast.plain.id)
    session = graph_session(sandbox, token)
    assert session.get(f"{sandbox.graph_url}/organization").status_code == 200
    sandbox.expire_tokens()
    expired = session.get(f"{sandbox.graph_url}/organization")
    assert expired.status_code == 401 and graph_error(expired)["code"] == "InvalidAuthenticationToken"
    assert "expired" in graph_error(expired)["message"]
    anonymous = requests.get(f"{sandbox.graph_url}/users", verify=str(sandbox.ca_file), timeout=10)
    assert anonymous.status_code == 401
    assert graph_session(sandbox, token_for(sandbox, cast.plain.id)).get(
        f"{sandbox.graph_url}/organization").status_code == 200


def test_unknown_graph_path_is_404(sandbox: Sandbox, cast: Cast) -> None:
    response = graph_session(sandbox, token_for(sandbox, cast.plain.id)).get(f"{sandbox.graph_url}/widgets")
    assert response.status_code == 404 and graph_error(response)["code"] == "Request_ResourceNotFound"


def test_latency_is_served_concurrently(sandbox: Sandbox, cast: Cast, faults: Faults) -> None:
    session = graph_session(sandbox, token_for(sandbox, cast.plain.id))
    faults.latency_ms = 300
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: requests.get(
            f"{sandbox.graph_url}/organization", headers=dict(session.headers),
            verify=str(sandbox.ca_file), timeout=10).status_code, range(32)))
    assert statuses == [200] * 32
    assert sandbox.stats.peak_in_flight >= 8  # requests overlapped inside the server
