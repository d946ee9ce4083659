"""Microsoft's own Python clients, unmodified, against the live sandbox: msal, azure-identity and
msgraph-sdk (async, on httpx), alongside the project's GraphClient.

Each is pointed at the sandbox as at a national cloud: the authority host and Graph base URL
are the sandbox's, and the sandbox's CA is the only one trusted. msal and azure-identity need
instance discovery turned off: left on, they ask login.microsoftonline.com to vouch for an
authority it does not know.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import msal
import pytest
import requests
import trustme
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from cryptography import x509
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User as GraphUser
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory
from msgraph_core.tasks.page_iterator import PageIterator

from glue_pipeline.graph.client import GraphClient
from glue_pipeline.graph.errors import ConsentRevokedError, PermissionDeniedError, failure_cause
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.odata import GRAPH_JSON
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.tls import DOWNLOAD_HOST, SERVER_HOSTS, ensure_ca
from glue_pipeline.sandbox.world import Tenant, User, World
from glue_pipeline.settings import GraphSettings, Secret

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
MAILBOX_REPORT = "reports/getMailboxUsageDetail(period='D7')"
# What a customer tenant may send: bidi overrides, control characters, markup, a huge string.
HOSTILE_NAME = "\u202eevil\u202c \x1b[31m<script>alert(1)</script> **bold** | a\x00b\r\nInjected: yes"
HOSTILE_TITLE = "x" * 100_000
HOSTILE_UPN = "o'brien+\u00fcn\u00ef_hotmail.com#EXT#@hostile.onmicrosoft.com"


def _not_found(key: str) -> str:
    return f"Resource '{key}' does not exist or one of its queried reference-property objects are not present."


@pytest.fixture(scope="module")
def world() -> World:
    """Three tenants (one revoked), the largest granted one with a hostile user."""
    world = generate_world(seed=23, tenants=3, users=60, revoked=1)
    _granted(world).users.append(User(id=str(uuid.uuid4()), userPrincipalName=HOSTILE_UPN,
                                      displayName=HOSTILE_NAME, jobTitle=HOSTILE_TITLE))
    return world


@pytest.fixture(scope="module")
def sandbox(world: World, sandbox_state: Path, only_the_ca_we_pass: None) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as server:
        yield server


@pytest.fixture(autouse=True)
def no_faults_left(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.faults.clear()


def _granted(world: World) -> Tenant:
    """The partner app's largest customer tenant: several pages of users."""
    return max((t for t in world.tenants if t.consent == "granted" and t.relationship != "none"),
               key=lambda t: len(t.users))


def _revoked(world: World) -> Tenant:
    return next(t for t in world.tenants if t.consent == "revoked")


def _msal_app(sandbox: Sandbox, tenant_id: str) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        sandbox.world.app.client_id, client_credential=sandbox.world.app.client_secret,
        authority=sandbox.authority(tenant_id), verify=str(sandbox.ca_file), instance_discovery=False)


def _credential(sandbox: Sandbox, tenant_id: str) -> ClientSecretCredential:
    return ClientSecretCredential(tenant_id, sandbox.world.app.client_id, sandbox.world.app.client_secret,
                                  authority=sandbox.authority_host, connection_verify=str(sandbox.ca_file),
                                  disable_instance_discovery=True)


def _settings(sandbox: Sandbox) -> GraphSettings:
    world = sandbox.world
    return GraphSettings(partner_tenant_id=world.partner.tenant_id, client_id=world.app.client_id,
                         client_secret=Secret(world.app.client_secret), authority_host=sandbox.authority_host,
                         graph_url=sandbox.graph_url, ca_file=str(sandbox.ca_file), max_retries=1,
                         max_retry_wait_s=0.01)


def _session(sandbox: Sandbox, tenant_id: str) -> requests.Session:
    session = requests.Session()
    session.verify = str(sandbox.ca_file)
    token = _msal_app(sandbox, tenant_id).acquire_token_for_client(scopes=GRAPH_SCOPE)["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


@asynccontextmanager
async def graph_service(sandbox: Sandbox, tenant_id: str) -> AsyncIterator[GraphServiceClient]:
    """msgraph-sdk's client on the sandbox: azure-identity for tokens, httpx trusting the sandbox CA."""
    credential = _credential(sandbox, tenant_id)
    auth = AzureIdentityAuthenticationProvider(credential, scopes=GRAPH_SCOPE,
                                               allowed_hosts=[urlsplit(sandbox.graph_url).hostname or ""])
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(sandbox.ca_file))) as http:
        adapter = GraphRequestAdapter(auth, client=GraphClientFactory.create_with_default_middleware(client=http))
        adapter.base_url = sandbox.graph_url
        yield GraphServiceClient(request_adapter=adapter)
    credential.close()


def _eventual(query: Any = None) -> RequestConfiguration[Any]:
    config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
    config.headers.add("ConsistencyLevel", "eventual")
    return config


def _without(tenant: Tenant, role: str) -> list[str]:
    """Take a role from the tenant's app (tokens issued from now on lack it); returns the roles before."""
    before = list(tenant.roles)
    tenant.roles = [r for r in before if r != role]
    return before


# --------------------------------------------------------------------------- tokens


def test_msal_gets_a_token_for_the_tenant(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)
    result = _msal_app(sandbox, tenant.id).acquire_token_for_client(scopes=GRAPH_SCOPE)
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert result["token_type"] == "Bearer" and claims["tid"] == tenant.id
    assert claims["aud"] == "https://graph.microsoft.com" and set(claims["roles"]) == set(tenant.roles)


def test_azure_identity_token_reads_graph(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)
    credential = _credential(sandbox, tenant.id)
    token = credential.get_token(*GRAPH_SCOPE).token
    organization = requests.get(f"{sandbox.graph_url}/organization", headers={"Authorization": f"Bearer {token}"},
                                verify=str(sandbox.ca_file), timeout=10)
    assert organization.json()["value"][0]["id"] == tenant.id
    credential.close()


# --------------------------------------------------------------------------- users through msgraph-sdk


def test_sdk_pages_through_every_user(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)
    before = sandbox.stats.graph["users"]

    async def read() -> list[GraphUser]:
        async with graph_service(sandbox, tenant.id) as client:
            query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                top=7, select=["id", "displayName", "userPrincipalName", "jobTitle"])
            first = await client.users.get(RequestConfiguration(query_parameters=query))
            users: list[GraphUser] = []
            pages = PageIterator(first, client.request_adapter)
            await pages.iterate(lambda user: users.append(user) or True)
            return users

    users = asyncio.run(read())
    assert [u.id for u in users] == [u.id for u in tenant.users]
    assert sandbox.stats.graph["users"] - before == -(-len(tenant.users) // 7), "one request per page of 7"
    hostile = users[-1]
    assert (hostile.display_name, hostile.job_title, hostile.user_principal_name) == (
        HOSTILE_NAME, HOSTILE_TITLE, HOSTILE_UPN), "hostile values come back exactly, as data"


def test_sdk_gets_one_user_by_id_or_user_principal_name(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)
    hostile = tenant.users[-1]
    query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=["id", "displayName"])

    async def read() -> list[GraphUser | None]:
        async with graph_service(sandbox, tenant.id) as client:
            return [await client.users.by_user_id(key).get(RequestConfiguration(query_parameters=query))
                    for key in (hostile.id, hostile.id.upper(), HOSTILE_UPN, HOSTILE_UPN.upper())]

    for user in asyncio.run(read()):
        assert user is not None and (user.id, user.display_name) == (hostile.id, HOSTILE_NAME)
        assert user.job_title is None and user.user_principal_name is None, "only what $select names"
    body = _session(sandbox, tenant.id).get(f"{sandbox.graph_url}/users/{tenant.users[0].id}").json()
    assert body["@odata.context"] == f"{sandbox.base_url}/v1.0/$metadata#users/$entity"
    assert body["id"] == tenant.users[0].id and "accountEnabled" not in body, "Graph's default properties"


@pytest.mark.parametrize("key", ["00000000-0000-0000-0000-000000000000", "nobody@example.com",
                                 "\u202e<b>x<b>\x1b[2J'; DROP TABLE users;--%00", "k" * 3000])
def test_sdk_raises_odata_error_for_an_unknown_user(sandbox: Sandbox, world: World, key: str) -> None:
    async def read() -> None:
        async with graph_service(sandbox, _granted(world).id) as client:
            await client.users.by_user_id(key).get()

    with pytest.raises(ODataError) as caught:
        asyncio.run(read())
    assert caught.value.response_status_code == 404 and caught.value.error is not None
    assert (caught.value.error.code, caught.value.error.message) == ("Request_ResourceNotFound", _not_found(key))


def test_sdk_counts_users_in_advanced_queries_only(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(count=True, top=5)

    async def read() -> tuple[Any, ...]:
        async with graph_service(sandbox, tenant.id) as client:
            counted = await client.users.get(_eventual(query))
            second = await client.users.with_url(counted.odata_next_link).get(_eventual())
            ignored = await client.users.get(RequestConfiguration(query_parameters=query))
            total = await client.users.count.get(_eventual())
            try:
                await client.users.count.get()
            except ODataError as refused:
                return counted, second, ignored, total, refused
            raise AssertionError("users/$count without ConsistencyLevel was answered")

    counted, second, ignored, total, refused = asyncio.run(read())
    assert counted.odata_count == len(tenant.users) == total and len(counted.value) == 5, "the total, not the page"
    assert second.odata_count == len(tenant.users), "the nextLink keeps $count=true"
    assert ignored.odata_count is None and len(ignored.value) == 5, "without the header, $count is ignored"
    assert refused.response_status_code == 400 and refused.error is not None
    assert (refused.error.code, refused.error.message) == ("Request_BadRequest", "$count is not currently supported.")


# --------------------------------------------------------------------------- reports


def test_sdk_follows_the_report_redirect_without_its_token(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)

    async def read() -> bytes | None:
        async with graph_service(sandbox, tenant.id) as client:
            return await client.reports.get_mailbox_usage_detail_with_period("D7").get()

    report = asyncio.run(read())
    assert report is not None and report.startswith(b"\xef\xbb\xbfReport Refresh Date,User Principal Name")
    assert sandbox.stats.download_tokens_refused == 0


def test_graph_client_sends_no_token_to_the_download_host(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)
    session = _session(sandbox, tenant.id)
    location = session.get(f"{sandbox.graph_url}/{MAILBOX_REPORT}", allow_redirects=False).headers["Location"]
    assert urlsplit(location).hostname == DOWNLOAD_HOST != urlsplit(sandbox.graph_url).hostname
    leaked = requests.get(location, headers={"Authorization": session.headers["Authorization"]},
                          verify=str(sandbox.ca_file), timeout=10)
    assert leaked.status_code == 400 and leaked.json()["error"]["code"] == "BadRequest"
    assert sandbox.stats.download_tokens_refused == 1, "a download that carries a token is refused"
    assert requests.get(location, verify=str(sandbox.ca_file), timeout=10).status_code == 200

    client = GraphClient(_settings(sandbox))
    client.session.headers["Authorization"] = "Bearer session-wide"  # must not ride along either
    report = client.get_report_csv(tenant.id, MAILBOX_REPORT)
    assert report.startswith("Report Refresh Date,User Principal Name")
    assert sandbox.stats.download_tokens_refused == 1, "the project's client sent no token to the download"


def test_report_without_permission_answers_graphs_403(sandbox: Sandbox, world: World) -> None:
    served = sandbox.world.tenant(_granted(world).id)
    assert served is not None
    roles = _without(served, "Reports.Read.All")
    try:
        answer = _session(sandbox, served.id).get(f"{sandbox.graph_url}/{MAILBOX_REPORT}", allow_redirects=False)
        with pytest.raises(PermissionDeniedError) as caught:
            GraphClient(_settings(sandbox)).get_report_csv(served.id, MAILBOX_REPORT)

        async def read() -> None:
            async with graph_service(sandbox, served.id) as client:
                await client.reports.get_mailbox_usage_detail_with_period("D7").get()

        with pytest.raises(ODataError) as sdk:
            asyncio.run(read())
    finally:
        served.roles = roles
    error = answer.json()["error"]
    assert answer.status_code == 403 and error["code"] == "UnknownError"
    assert json.loads(error["message"]) == {"error": {"code": "S2SUnauthorized", "message": "Invalid permission."}}
    assert (caught.value.code, caught.value.message) == ("S2SUnauthorized", "Invalid permission.")
    assert "Reports.Read.All" in caught.value.fix and failure_cause(caught.value) == "permission_missing"
    assert sdk.value.response_status_code == 403 and sdk.value.error is not None
    assert sdk.value.error.code == "UnknownError"


# --------------------------------------------------------------------------- a removed app


def test_removed_service_principal_through_msal_and_azure_identity(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)
    sandbox.faults.missing_service_principal.add(tenant.id)
    result = _msal_app(sandbox, tenant.id).acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000229]
    assert result["error_description"].startswith(
        f"AADSTS7000229: The client application {world.app.client_id} is missing service principal in the "
        f"tenant {tenant.id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119")
    raw = requests.post(f"{sandbox.authority(tenant.id)}/oauth2/v2.0/token", verify=str(sandbox.ca_file), timeout=10,
                        data={"grant_type": "client_credentials", "client_id": world.app.client_id,
                              "client_secret": world.app.client_secret, "scope": GRAPH_SCOPE[0]})
    assert raw.status_code == 401

    credential = _credential(sandbox, tenant.id)
    with pytest.raises(ClientAuthenticationError) as caught:
        credential.get_token(*GRAPH_SCOPE)
    credential.close()
    assert "AADSTS7000229" in str(caught.value) and "missing service principal" in str(caught.value)


@pytest.mark.parametrize("removal", ["service principal removed", "consent revoked"])
def test_a_removed_app_is_consent_revoked_in_the_graph_client(sandbox: Sandbox, world: World, removal: str) -> None:
    if removal == "service principal removed":
        tenant, code = _granted(world), "AADSTS7000229"
        sandbox.faults.missing_service_principal.add(tenant.id)
    else:
        tenant, code = _revoked(world), "AADSTS700016"
    with pytest.raises(ConsentRevokedError) as caught:
        list(GraphClient(_settings(sandbox)).get_collection(tenant.id, "users", select=["id"]))
    assert caught.value.code == code and caught.value.tenant_id == tenant.id
    assert failure_cause(caught.value) == "consent_revoked" and "admin consent" in caught.value.fix


# --------------------------------------------------------------------------- the wire


def test_every_graph_json_answer_has_graphs_content_type(sandbox: Sandbox, world: World) -> None:
    tenant = _granted(world)
    session = _session(sandbox, tenant.id)
    graph = sandbox.graph_url
    answers = {
        "collection": session.get(f"{graph}/users", params={"$top": "2"}),
        "counted": session.get(f"{graph}/users", params={"$count": "true"}, headers={"ConsistencyLevel": "eventual"}),
        "entity": session.get(f"{graph}/users/{tenant.users[0].id}"),
        "organization": session.get(f"{graph}/organization"),
        "delta": session.get(f"{graph}/users/delta", params={"$select": "id"}),
        "batch": session.post(f"{graph}/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/domains"}]}),
        "not found": session.get(f"{graph}/users/{uuid.uuid4()}"),
        "unknown segment": session.get(f"{graph}/no/such/thing"),
        "bad $count": session.get(f"{graph}/users/$count"),
        "no token": requests.get(f"{graph}/users", verify=str(sandbox.ca_file), timeout=10),
    }
    for name, answer in answers.items():
        assert answer.headers["Content-Type"] == GRAPH_JSON, name
        assert isinstance(answer.json(), dict), name
    assert answers["batch"].json()["responses"][0]["headers"]["Content-Type"] == GRAPH_JSON
    assert [a.status_code for a in answers.values()] == [200] * 6 + [404, 404, 400, 401]
    counted = session.get(f"{graph}/users/$count", headers={"ConsistencyLevel": "eventual"})
    assert counted.headers["Content-Type"].startswith("text/plain") and counted.text == str(len(tenant.users))


def test_the_certificate_names_the_download_host(sandbox: Sandbox, tmp_path: Path) -> None:
    names = x509.load_pem_x509_certificate(sandbox.info.ca_file.with_name("server.pem").read_bytes()).extensions
    alternative = names.get_extension_for_class(x509.SubjectAlternativeName).value
    named = {*alternative.get_values_for_type(x509.DNSName), *map(str, alternative.get_values_for_type(x509.IPAddress))}
    assert DOWNLOAD_HOST in SERVER_HOSTS and named >= set(SERVER_HOSTS)

    # A certificate from before the download host had its name is issued again.
    ca = trustme.CA()
    old = ca.issue_cert("127.0.0.1")
    old.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    (tmp_path / "server.pem").write_bytes(b"".join(blob.bytes() for blob in old.cert_chain_pems))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls = ensure_ca(tmp_path)
    renewed = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
    alternative = renewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert DOWNLOAD_HOST in alternative.get_values_for_type(x509.DNSName)
    assert tls.ca_file.read_bytes() != ca.cert_pem.bytes(), "a new CA signed it"
