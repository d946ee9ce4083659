"""The sandbox at scale, over real HTTPS: one tenant of 50,000 users, and 1,000 tenants with a
long-tailed spread of users. Timings are printed by `python -m glue_pipeline.sandbox.bench`,
never asserted here."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import msal
import pytest
import requests

from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig

SCOPE = "https://graph.microsoft.com/.default"
SELECT = "id,userPrincipalName,displayName,givenName,surname,mail,jobTitle,accountEnabled,assignedLicenses"


# Talk to the sandbox trusting only its CA, as the pipeline does (conftest).
pytestmark = pytest.mark.usefixtures("only_the_ca_we_pass")


def _session(sandbox: Sandbox, token: str | None = None, pool: int = 10) -> requests.Session:
    session = requests.Session()
    session.verify = str(sandbox.ca_file)
    session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=pool))
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def _msal_token(sandbox: Sandbox, tenant_id: str) -> str:
    app = msal.ConfidentialClientApplication(
        sandbox.world.app.client_id, client_credential=sandbox.world.app.client_secret,
        authority=sandbox.authority(tenant_id), instance_discovery=False, azure_region=False,
        verify=str(sandbox.ca_file))
    return app.acquire_token_for_client(scopes=[SCOPE])["access_token"]


def _walk(session: requests.Session, url: str, headers: dict[str, str] | None = None) -> tuple[list[dict], int, str]:
    items, pages = [], 0
    while True:
        body = session.get(url, headers=headers, timeout=60).json()
        items += body["value"]
        pages += 1
        if "@odata.nextLink" not in body:
            return items, pages, body.get("@odata.deltaLink", "")
        url = body["@odata.nextLink"]


def test_one_tenant_of_50000_users(sandbox_state: Path) -> None:
    world = generate_world(seed=5, tenants=1, users=50_000, revoked=0)
    tenant = world.tenants[0]
    assert len(tenant.users) == 50_000 and len({u.userPrincipalName.lower() for u in tenant.users}) == 50_000
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        session = _session(sandbox, _msal_token(sandbox, tenant.id))
        users, pages, _ = _walk(session, f"{sandbox.graph_url}/users?$top=999&$select={SELECT}")
        assert pages == 51 and len({u["id"] for u in users}) == 50_000
        assert list(users[0]) == SELECT.split(",")

        delta = f"{sandbox.graph_url}/users/delta?$select=id,jobTitle,mobilePhone"
        users, pages, delta_link = _walk(session, delta, {"Prefer": "odata.maxpagesize=999"})
        assert pages == 51 and len({u["id"] for u in users}) == 50_000 and delta_link
        changed = sandbox.change_users(tenant.id, fraction=0.01, seed=1, fields=("jobTitle",))
        items, _, _ = _walk(session, delta_link)
        assert sorted(i["id"] for i in items) == sorted(changed) and len(changed) == 500


def test_a_thousand_tenants_with_a_long_tail(sandbox_state: Path) -> None:
    world = generate_world(seed=8, tenants=1000, users=100_000, spread="longtail")
    sizes = sorted((len(t.users) for t in world.tenants), reverse=True)
    assert sum(sizes) == 100_000 and sizes[-1] >= 1
    assert sizes[len(sizes) // 2] < 60 and sum(s > 2000 for s in sizes) >= 2  # many small, a few giants
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        anonymous = _session(sandbox, pool=4)
        form = {"client_id": world.app.client_id, "client_secret": world.app.client_secret,
                "grant_type": "client_credentials", "scope": SCOPE}

        def token(tenant_id: str) -> str:
            response = anonymous.post(f"{sandbox.base_url}/{tenant_id}/oauth2/v2.0/token", data=form, timeout=30)
            return response.json().get("access_token", response.text)

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            tokens = dict(zip([t.id for t in world.tenants], pool.map(token, [t.id for t in world.tenants]),
                              strict=True))
        revoked = {t.id for t in world.tenants if t.consent == "revoked"}
        assert all(tokens[t].count(".") == 2 for t in tokens if t not in revoked)
        assert sandbox.stats.tokens_issued == 1000 - len(revoked)
        assert sandbox.stats.peak_in_flight > 1  # token requests overlapped

        partner = _session(sandbox, _msal_token(sandbox, world.partner.tenant_id))
        contracts, pages, _ = _walk(partner, f"{sandbox.graph_url}/contracts?$top=999")
        assert pages == 1 + (len(contracts) > 999)
        assert {c["customerId"] for c in contracts} == {t.id for t in world.tenants
                                                         if t.relationship in ("dap", "both")}
        gdap, _, _ = _walk(partner, f"{sandbox.graph_url}/tenantRelationships/delegatedAdminCustomers?$top=300")
        assert len(gdap) == sum(t.relationship in ("gdap", "both") for t in world.tenants)

        giants = [t for t in world.tenants if len(t.users) > 2000 and t.id not in revoked]

        def users_of(tenant_id: str) -> int:
            items, _, _ = _walk(_session(sandbox, tokens[tenant_id]),
                                f"{sandbox.graph_url}/users?$top=999&$select={SELECT}")
            return len(items)

        sample = [t for t in world.tenants[:100] if t.id not in revoked] + giants
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            counts = list(pool.map(users_of, [t.id for t in sample]))
        assert counts == [len(t.users) for t in sample]
