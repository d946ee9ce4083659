"""The Graph client against the sandbox over real HTTPS, with the real msal and requests."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from glue_pipeline.columns import USER_COLUMNS
from glue_pipeline.extract import USER_FIELDS, discover_tenants, extract_tenant
from glue_pipeline.graph.client import BatchCall, GraphClient
from glue_pipeline.graph.errors import (
    ConsentRevokedError,
    GraphError,
    IdentityError,
    PermissionDeniedError,
    TransientGraphError,
)
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.settings import GraphSettings, Secret
from glue_pipeline.snapshot import TenantSnapshot


def settings_for(sandbox: Sandbox, world: World, **overrides: object) -> GraphSettings:
    values = dict(partner_tenant_id=world.partner.tenant_id, client_id=world.app.client_id,
                  client_secret=Secret(world.app.client_secret), authority_host=sandbox.authority_host,
                  graph_url=sandbox.graph_url, ca_file=str(sandbox.ca_file), max_retries=3)
    values.update(overrides)
    return GraphSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def big_world() -> World:
    """One tenant with 1,100 users: more than one page at $top=999."""
    return generate_world(seed=3, tenants=1, users=1100, revoked=0)


@pytest.fixture
def big_sandbox(big_world: World, sandbox_state: Path) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(world=big_world), state_dir=sandbox_state) as server:
        yield server


def test_token_for_a_customer_tenant_carries_its_id_and_roles(sandbox: Sandbox, small_world: World) -> None:
    tenant = next(t for t in small_world.tenants if t.consent == "granted")
    client = GraphClient(settings_for(sandbox, small_world))
    claims = jwt.decode(client.token(tenant.id), options={"verify_signature": False})
    assert claims["tid"] == tenant.id
    assert "User.Read.All" in claims["roles"]
    assert client.token(tenant.id) == client.token(tenant.id), "msal reuses the token until it expires"


def test_wrong_secret_names_the_code_and_the_fix(sandbox: Sandbox, small_world: World) -> None:
    client = GraphClient(settings_for(sandbox, small_world, client_secret=Secret("not-the-secret")))
    with pytest.raises(IdentityError) as caught:
        client.token(small_world.tenants[0].id)
    message = str(caught.value)
    assert "AADSTS7000215" in message and "GLUE_CLIENT_SECRET" in message
    assert "not-the-secret" not in message and small_world.app.client_secret not in message


def test_revoked_consent_is_a_typed_error(sandbox: Sandbox, small_world: World) -> None:
    revoked = next(t for t in small_world.tenants if t.consent == "revoked")
    client = GraphClient(settings_for(sandbox, small_world))
    with pytest.raises(ConsentRevokedError) as caught:
        extract_tenant(client, revoked.id)
    assert caught.value.tenant_id == revoked.id and caught.value.code == "AADSTS700016"


def test_discovery_merges_dap_and_gdap_customers(sandbox: Sandbox, small_world: World) -> None:
    frame = discover_tenants(GraphClient(settings_for(sandbox, small_world)))
    assert sorted(frame["tenant_id"]) == sorted(t.id for t in small_world.tenants)
    expected = {t.id: t.relationship for t in small_world.tenants}
    assert dict(zip(frame["tenant_id"], frame["relationship"])) == expected


def test_paging_reads_every_user_once_across_pages(big_sandbox: Sandbox, big_world: World) -> None:
    tenant = big_world.tenants[0]
    client = GraphClient(settings_for(big_sandbox, big_world))
    users = list(client.get_collection(tenant.id, "users", select=USER_FIELDS, top=999))
    assert len(users) == 1100
    assert sorted(u["id"] for u in users) == sorted(u.id for u in tenant.users)
    assert set(users[-1]) - {"@odata.type"} <= set(USER_FIELDS), "only the selected fields travel"


def test_extract_reads_users_licenses_and_the_mailbox_report(sandbox: Sandbox, small_world: World) -> None:
    tenant = max((t for t in small_world.tenants if t.consent == "granted" and not t.reports_concealed),
                 key=lambda t: len(t.users))
    extract = extract_tenant(GraphClient(settings_for(sandbox, small_world)), tenant.id)
    assert isinstance(extract, TenantSnapshot)  # eager: no cache, so every user was read
    assert len(extract.users) == len(tenant.users)
    # Graph's names end at the extract: the snapshot speaks snake_case, with licences as SKU ids.
    assert set(USER_COLUMNS) <= set(extract.users.columns)
    assert not [c for c in extract.users.columns if c != c.lower()]
    by_id = extract.users.set_index("id")
    for user in tenant.users:
        assert by_id.at[user.id, "user_principal_name"] == user.userPrincipalName
        assert by_id.at[user.id, "sku_ids"] == [lic.skuId for lic in user.assignedLicenses]
    assert sorted(extract.licenses["sku_id"]) == sorted(s.skuId for s in tenant.skus)
    with_mailbox = {u.userPrincipalName.lower() for u in tenant.users if u.mailbox}
    assert set(extract.mailboxes["user_principal_name"]) == with_mailbox
    assert extract.organization.initial_domain == tenant.initial_domain


def test_429_is_retried_after_its_retry_after(sandbox: Sandbox, small_world: World,
                                              caplog: pytest.LogCaptureFixture) -> None:
    tenant = next(t for t in small_world.tenants if t.consent == "granted")
    client = GraphClient(settings_for(sandbox, small_world, max_retries=20))
    client.token(tenant.id)
    sandbox.faults.retry_after_s = 1
    sandbox.faults.rate_429 = 0.5
    caplog.set_level(logging.INFO, logger="glue_pipeline.graph.client")
    try:
        organizations = [client.get_json(tenant.id, "organization") for _ in range(10)]
        domains = list(client.get_collection(tenant.id, "domains"))
    finally:
        sandbox.faults.rate_429 = 0
    assert all(o["value"][0]["id"] == tenant.id for o in organizations)
    assert len(domains) == len(tenant.domains)
    waits = [float(m) for m in re.findall(r"TooManyRequests, retry \d+ in ([\d.]+)s", caplog.text)]
    assert waits, "the sandbox answered 429 at least once"
    assert all(w == 1.0 for w in waits), "the client waits what Retry-After says"


def test_a_batch_answers_each_request_and_sends_again_only_the_throttled(
        sandbox: Sandbox, small_world: World, caplog: pytest.LogCaptureFixture) -> None:
    """Graph throttles a batch's requests one by one (a 429 inside a 200): those alone are sent
    again, after their Retry-After; other errors come back as the request's error."""
    tenant = next(t for t in small_world.tenants if t.consent == "granted")
    client = GraphClient(settings_for(sandbox, small_world, max_retries=20))
    client.token(tenant.id)
    calls = {f"organization-{i}": BatchCall("organization", {"$select": "id,displayName"}) for i in range(8)}
    calls["licenses"] = BatchCall("subscribedSkus", {"$select": "skuId"})
    calls["missing"] = BatchCall("no/such/resource")
    sandbox.stats.reset()
    sandbox.faults.retry_after_s = 1
    sandbox.faults.rate_429 = 0.5
    caplog.set_level(logging.INFO, logger="glue_pipeline.graph.client")
    try:
        answers = client.batch(tenant.id, calls)
    finally:
        sandbox.faults.rate_429 = 0
    assert all(answers[f"organization-{i}"]["value"] == [{"id": tenant.id, "displayName": tenant.display_name}]
               for i in range(8))
    assert {s["skuId"] for s in answers["licenses"]["value"]} == {s.skuId for s in tenant.skus}
    missing = answers["missing"]
    assert isinstance(missing, GraphError) and missing.status == 404 and "/no/such/resource" in str(missing)
    waits = [float(m) for m in re.findall(r"of a batch's requests answered .*, retry \d+ in ([\d.]+)s", caplog.text)]
    assert sandbox.stats.throttled > 0 and waits, "the sandbox throttled some of the batch's requests"
    assert all(w == 1.0 for w in waits), "the client waits what Retry-After says"
    assert sandbox.stats.snapshot()["requests"]["graph"] == 1 + len(waits), "one request per round"
    with pytest.raises(ValueError, match="at most 20"):
        client.batch(tenant.id, {str(i): BatchCall("organization") for i in range(21)})
    with pytest.raises(GraphError) as refused:  # the sandbox refuses it too
        client.request(tenant.id, "$batch", method="POST", json_body={"requests": [
            {"id": str(i), "method": "GET", "url": "/organization"} for i in range(21)]})
    assert refused.value.status == 400


def test_missing_permission_is_reported_as_such(sandbox: Sandbox, small_world: World) -> None:
    tenant = next(t for t in small_world.tenants if t.consent == "granted")
    tenant_in_sandbox = sandbox.config.world.tenant(tenant.id)
    tenant_in_sandbox.roles = [r for r in tenant_in_sandbox.roles if r != "Reports.Read.All"]
    client = GraphClient(settings_for(sandbox, small_world))
    with pytest.raises(PermissionDeniedError) as caught:
        client.get_report_csv(tenant.id, "reports/getMailboxUsageDetail(period='D7')")
    assert caught.value.code == "S2SUnauthorized" and caught.value.status == 403  # unwrapped from UnknownError


def test_a_failing_report_download_is_retried_then_named(sandbox: Sandbox, small_world: World) -> None:
    """The report's pre-authenticated download is a request like the others: a 503 there is
    retried under the retry policy, and when retries run out the error names the tenant, the
    download and the fix (a transient failure, so the batch's retry pass takes the tenant again)."""
    tenant = next(t for t in small_world.tenants if t.consent == "granted" and not t.reports_concealed
                  and any(u.mailbox for u in t.users))
    client = GraphClient(settings_for(sandbox, small_world, max_retries=2, max_retry_wait_s=0.01),
                         backoff_base_s=0.001)
    sandbox.faults.failing_downloads[tenant.id] = 2  # two failures, then the download answers
    csv = client.get_report_csv(tenant.id, "reports/getMailboxUsageDetail(period='D7')")
    assert "User Principal Name" in csv and sandbox.faults.failing_downloads[tenant.id] == 0

    sandbox.faults.failing_downloads[tenant.id] = 3  # one more than max_retries allows
    with pytest.raises(TransientGraphError) as failed:
        client.get_report_csv(tenant.id, "reports/getMailboxUsageDetail(period='D7')")
    message = str(failed.value)
    assert message.startswith(f"tenant {tenant.id}: ") and "/reports-download/" in message
    assert "ServiceUnavailable" in message and "Fix: " in message
