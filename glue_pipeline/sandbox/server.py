"""The sandbox HTTPS server: the Microsoft identity platform (OpenID configuration, client
credentials token endpoint) and the part of Graph v1.0 the pipeline reads, over a World.

One host serves both roles, so a client points its authority host and its Graph base URL at
the same https://127.0.0.1:PORT and trusts the sandbox CA.

Identity: the partner's multi-tenant app gets tokens for the partner tenant and for every
customer tenant that has consented and has a partner relationship; a direct-login app
(World.direct_apps) gets tokens for its own tenant only (elsewhere: AADSTS700016).

Graph: contracts, delegatedAdminCustomers, organization, domains, users (signInActivity needs
AuditLog.Read.All and Entra ID P1/P2, and caps $top at 500), users/delta (with a per-tenant
change log: Sandbox.change_users / add_user / remove_user / mutate change the world while it
runs), subscribedSkus, the mailbox usage report (302 to a tokenless CSV download) and
admin/reportSettings.

Faults (Sandbox.faults, changeable while it runs, counted in Sandbox.stats): latency, 429 with
Retry-After, 5xx, dropped connections, slow answers, token lifetime and forced token expiry
after N requests, endless or looping @odata.nextLink, spoiled report CSVs, revoked consent and
vanished tenants. `fault_tenants` narrows the per-request faults to some tenants.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import gc
import hashlib
import io
import json
import math
import random
import re
import secrets
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from .changes import TenantLog
from .generate import REFERENCE_DATE, changed_user, new_users
from .tls import SandboxTLS, ensure_ca
from .world import DirectApp, Domain, Tenant, User, World

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPES = {f"{GRAPH_RESOURCE}/.default", f"{GRAPH_RESOURCE}//.default", f"{GRAPH_APP_ID}/.default"}
RESERVED_SCOPES = {"openid", "profile", "offline_access"}
PARTNER_ROLES = ["Directory.Read.All", "DelegatedAdminRelationship.Read.All"]
# SKUs that include Entra ID P1 or P2, which signInActivity needs.
ENTRA_PREMIUM_SKUS = frozenset({"SPB", "SPE_E3", "SPE_E5", "AAD_PREMIUM", "AAD_PREMIUM_P2", "EMS",
                                "EMSPREMIUM", "SPE_F1", "M365_F1", "IDENTITY_THREAT_PROTECTION"})
REPORT_PERIODS = {"D7": 7, "D30": 30, "D90": 90, "D180": 180}
REPORT_LINK_LIFETIME_S = 600
MAX_TOP = 999  # $top on /users and /contracts
SIGN_IN_MAX_TOP = 500  # pages of /users that select signInActivity hold at most this many
DELTA_PAGE_SIZE = 200  # users per /users/delta page unless Prefer: odata.maxpagesize=N asks otherwise
DELTA_TOKEN_LIFETIME_S = 7 * 24 * 3600  # directory delta tokens live seven days
REPORT_CSV_FAULTS = ("truncated", "malformed", "empty", "no_bom")
# Key under which the HTTP protocol hands each request's connection to the app (see _HTTPProtocol).
TRANSPORT_SCOPE_KEY = "glue_sandbox.transport"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
SERVER_ERRORS = {
    500: ("InternalServerError", "An internal server error occurred while processing the request."),
    502: ("BadGateway", "The gateway received an invalid response from the upstream service."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Retry the request after a delay."),
    504: ("GatewayTimeout", "The gateway did not receive a response from the upstream service in time."),
}
MAILBOX_REPORT_HEADER = [
    "Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date",
    "Created Date", "Last Activity Date", "Item Count", "Storage Used (Byte)",
    "Issue Warning Quota (Byte)", "Prohibit Send Quota (Byte)", "Prohibit Send/Receive Quota (Byte)",
    "Deleted Item Count", "Deleted Item Size (Byte)", "Deleted Item Quota (Byte)", "Has Archive",
    "Recipient Type", "Report Period",
]


# --------------------------------------------------------------------------- configuration


@dataclass
class SandboxConfig:
    world: World
    latency_ms: float = 0
    rate_429: float = 0  # fraction of Graph requests answered 429
    retry_after_s: float = 1
    rate_5xx: float = 0  # fraction of Graph requests answered 500/502/503/504
    revoked: set[str] = field(default_factory=set)  # tenant ids, on top of consent="revoked"
    fault_seed: int = 0
    token_lifetime_s: int = 3599  # initial value of Faults.token_lifetime_s
    delta_page_size: int = DELTA_PAGE_SIZE  # users per /users/delta page without a Prefer header


@dataclass
class Faults:
    """Faults applied from the next request on; tests change these attributes at run time.

    Per-request faults, drawn for each Graph request (not for the identity platform or the
    report download), in this order from one roll: `rate_429` (429 TooManyRequests with
    Retry-After), `rate_5xx` (500/502/503/504 with a Graph error body), `reset_rate` (the
    connection is dropped without any response: the client sees a ConnectionError); and, from a
    second roll, `slow_rate` (the answer waits `slow_s` seconds, to outlast client timeouts).
    `latency_ms` delays every request.

    `fault_tenants`: when non-empty, the per-request faults and `expire_tokens_after_requests`
    only hit requests whose token belongs to one of these tenant ids.

    Tokens: `token_lifetime_s` is the lifetime of tokens issued from now on (expires_in; note
    that msal treats a token with under 5 minutes left as expired). `expire_tokens_after_requests`
    = N: after N more (targeted) Graph requests, every token issued so far (for the targeted
    tenants) is refused with 401 InvalidAuthenticationToken; fresh tokens work. It fires once
    and goes back to None.

    Per tenant: `revoked` (the partner app's consent is gone: AADSTS700016), `revoked_direct`
    (the direct-login app's admin consent is gone: its tokens carry no roles, so Graph answers
    403), `removed` (the tenant no longer exists: AADSTS90002, 401 for its tokens, gone from
    contracts and GDAP lists), `next_link_loop` (/users and /users/delta paging returns the same
    @odata.nextLink forever), `next_link_endless` (paging never ends: past the last user come
    fresh skiptokens with pages that alternate empty and a repeat of the last page; delta
    rounds never reach their deltaLink), `repeated_users` (each /users page after the first
    starts again with the last user of the page before, so a full read lists users twice),
    `report_csv` (tenant id -> "truncated" cut mid-row
    without a final newline, "malformed" rows with a wrong column count, a garbage line and a
    non-number, "empty" header only, or "no_bom" without the UTF-8 BOM).
    """

    latency_ms: float = 0
    rate_429: float = 0
    retry_after_s: float = 1
    rate_5xx: float = 0
    reset_rate: float = 0
    slow_rate: float = 0
    slow_s: float = 5
    fault_tenants: set[str] = field(default_factory=set)
    token_lifetime_s: int = 3599
    expire_tokens_after_requests: int | None = None
    revoked: set[str] = field(default_factory=set)
    revoked_direct: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    next_link_loop: set[str] = field(default_factory=set)
    next_link_endless: set[str] = field(default_factory=set)
    repeated_users: set[str] = field(default_factory=set)
    report_csv: dict[str, str] = field(default_factory=dict)
    delta_token_lifetime_s: float = DELTA_TOKEN_LIFETIME_S
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _default_token_lifetime_s: int = field(init=False, repr=False, default=3599)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._default_token_lifetime_s = self.token_lifetime_s

    @classmethod
    def from_config(cls, config: SandboxConfig) -> Faults:
        return cls(latency_ms=config.latency_ms, rate_429=config.rate_429, retry_after_s=config.retry_after_s,
                   rate_5xx=config.rate_5xx, revoked=set(config.revoked), seed=config.fault_seed,
                   token_lifetime_s=config.token_lifetime_s)

    def clear(self) -> None:
        """No injected faults (retry_after_s and slow_s stay; world tenants with consent="revoked"
        stay revoked; token_lifetime_s goes back to the configured value)."""
        self.latency_ms = self.rate_429 = self.rate_5xx = self.reset_rate = self.slow_rate = 0
        self.token_lifetime_s = self._default_token_lifetime_s
        self.expire_tokens_after_requests = None
        self.delta_token_lifetime_s = DELTA_TOKEN_LIFETIME_S
        for tenant_ids in (self.fault_tenants, self.revoked, self.revoked_direct, self.removed,
                           self.next_link_loop, self.next_link_endless, self.repeated_users):
            tenant_ids.clear()
        self.report_csv.clear()

    def targets(self, tenant_id: str) -> bool:
        """Whether the per-request faults apply to a request for this tenant."""
        return not self.fault_tenants or tenant_id in self.fault_tenants

    def draw(self, tenant_id: str | None = None) -> int | str | None:
        """The fault to inject into this Graph request: an HTTP status, "reset", or None."""
        if tenant_id is not None and not self.targets(tenant_id):
            return None
        with self._lock:
            roll = self._rng.random()
            if roll < self.rate_429:
                return 429
            if roll < self.rate_429 + self.rate_5xx:
                return self._rng.choice(sorted(SERVER_ERRORS))
            if roll < self.rate_429 + self.rate_5xx + self.reset_rate:
                return "reset"
        return None

    def slow_for(self, tenant_id: str) -> float:
        """Seconds this Graph request waits before it is answered (0: not slowed)."""
        if self.slow_rate <= 0 or not self.targets(tenant_id):
            return 0
        with self._lock:
            return self.slow_s if self._rng.random() < self.slow_rate else 0

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


@dataclass
class SandboxStats:
    """What the sandbox served and which faults it injected; `snapshot()` gives them as a dict.

    Injected faults: throttled (429s), server_errors (5xx), resets (dropped connections),
    slowed (slow answers), tokens_refused (401s for tokens caught by
    expire_tokens_after_requests), paging_faults (pages served by next_link_loop or
    next_link_endless), report_faults (spoiled report downloads); faults_injected sums them.
    """

    requests: Counter[str] = field(default_factory=Counter)  # openid, token, graph, report-download, other
    graph: Counter[str] = field(default_factory=Counter)  # Graph requests by endpoint
    throttled: int = 0  # 429s sent
    server_errors: int = 0  # injected 5xx sent
    resets: int = 0  # connections dropped without a response
    slowed: int = 0  # answers held back by slow_s
    tokens_refused: int = 0  # 401s for tokens expired by expire_tokens_after_requests
    paging_faults: int = 0  # looping or endless /users and /users/delta pages served
    report_faults: int = 0  # truncated, malformed, empty or BOM-less report downloads
    delta_requests: int = 0  # GET /users/delta requests (initial, nextLink and deltaLink)
    tokens_issued: int = 0
    identity_errors: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0  # most requests handled at the same time

    @property
    def faults_injected(self) -> int:
        return (self.throttled + self.server_errors + self.resets + self.slowed + self.tokens_refused
                + self.paging_faults + self.report_faults)

    def snapshot(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "graph": dict(self.graph), "throttled": self.throttled,
                "server_errors": self.server_errors, "resets": self.resets, "slowed": self.slowed,
                "tokens_refused": self.tokens_refused, "paging_faults": self.paging_faults,
                "report_faults": self.report_faults, "faults_injected": self.faults_injected,
                "delta_requests": self.delta_requests, "tokens_issued": self.tokens_issued,
                "identity_errors": self.identity_errors, "peak_in_flight": self.peak_in_flight}

    def reset(self) -> None:
        self.requests.clear()
        self.graph.clear()
        self.throttled = self.server_errors = self.tokens_issued = self.identity_errors = 0
        self.resets = self.slowed = self.tokens_refused = self.paging_faults = self.report_faults = 0
        self.delta_requests = 0
        self.peak_in_flight = self.in_flight


@dataclass
class TenantChanges:
    """What Sandbox.mutate changed in one tenant (user ids)."""

    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SandboxInfo:
    """What a client needs to reach a running sandbox."""

    base_url: str
    authority_host: str
    graph_url: str
    ca_file: Path
    partner_tenant_id: str
    client_id: str
    tenants: int
    users: int


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class _Ids:
    request_id: str
    client_request_id: str

    @classmethod
    def of(cls, request: Request) -> _Ids:
        request_id = str(uuid.uuid4())
        return cls(request_id, request.headers.get("client-request-id") or request_id)


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


MAX_BATCH_REQUESTS = 20  # Graph's limit for one JSON batch


class _DropConnection(Exception):
    """Abort the request's connection without sending anything."""


class IdentityError(Exception):
    def __init__(self, status: int, error: str, aadsts: int, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.aadsts, self.message = status, error, aadsts, message


def _insufficient_privileges() -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _graph_error_response(err: GraphError, ids: _Ids) -> JSONResponse:
    inner = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
             "request-id": ids.request_id, "client-request-id": ids.client_request_id}
    body = {"error": {"code": err.code, "message": err.message, "innerError": inner}}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def _identity_error_response(err: IdentityError, ids: _Ids, origin: str) -> JSONResponse:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (f"AADSTS{err.aadsts}: {err.message} Trace ID: {ids.request_id} "
                   f"Correlation ID: {ids.client_request_id} Timestamp: {stamp}")
    body = {"error": err.error, "error_description": description, "error_codes": [err.aadsts],
            "timestamp": stamp, "trace_id": ids.request_id, "correlation_id": ids.client_request_id,
            "error_uri": f"{origin}/error?code={err.aadsts}"}
    return JSONResponse(body, status_code=err.status)


def _origin(request: Request) -> str:
    return f"https://{request.url.netloc}"


# --------------------------------------------------------------------------- directory


class _Directory:
    """Tenants by id or by any of their domain names, the partner's own tenant included, and
    the direct-login apps by client id."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.direct_apps: dict[str, DirectApp] = {a.client_id.lower(): a for a in world.direct_apps}
        domain = world.partner.default_domain
        self.partner = Tenant(id=world.partner.tenant_id, display_name=world.partner.display_name,
                              domains=[Domain(name=domain, is_default=True, is_initial=True)],
                              roles=list(PARTNER_ROLES))
        self._by_key: dict[str, Tenant] = {}
        for tenant in [self.partner, *world.tenants]:
            for key in [tenant.id, *(d.name for d in tenant.domains)]:
                other = self._by_key.setdefault(key.lower(), tenant)
                if other is not tenant:
                    raise ValueError(f"'{key}' belongs to tenants {other.id} and {tenant.id}; tenant ids and "
                                     "domain names are unique across Microsoft, so give one of them another")

    def find(self, key: str) -> Tenant | None:
        return self._by_key.get(key.strip().lower())


def _has_entra_premium(tenant: Tenant) -> bool:
    return any(s.skuPartNumber in ENTRA_PREMIUM_SKUS and s.enabled + s.warning > 0 for s in tenant.skus)


def _openid_configuration(origin: str, tenant_id: str) -> dict[str, Any]:
    base = f"{origin}/{tenant_id}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{origin}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "tid", "ver", "oid"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": origin.removeprefix("https://"),
        "rbac_url": "https://pas.windows.net",
    }


# --------------------------------------------------------------------------- Graph resources


@dataclass(frozen=True)
class _EntitySet:
    """A Graph collection: its name in @odata.context, its type, and which properties exist."""

    name: str
    type_name: str
    fields: tuple[str, ...]
    default: tuple[str, ...]

    def parse_select(self, raw: str | None) -> tuple[str, ...] | None:
        if raw is None:
            return None
        known = {f.lower(): f for f in self.fields}
        chosen: list[str] = []
        for part in (p.strip() for p in raw.split(",")):
            if not part:
                continue
            if part.lower() not in known:
                raise GraphError(400, "BadRequest", f"Could not find a property named '{part}' on type '{self.type_name}'.")
            chosen.append(known[part.lower()])
        return tuple(dict.fromkeys(chosen)) or None


_USER_DEFAULT = ("businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
                 "officeLocation", "preferredLanguage", "surname", "userPrincipalName")
_USER_NULLS = {"department": None, "companyName": None, "employeeId": None, "usageLocation": None,
               "onPremisesSyncEnabled": None, "onPremisesImmutableId": None, "otherMails": []}
USERS = _EntitySet("users", "microsoft.graph.user",
                   _USER_DEFAULT + ("accountEnabled", "userType", "proxyAddresses", "assignedLicenses",
                                    "createdDateTime", "lastPasswordChangeDateTime", "signInActivity",
                                    *_USER_NULLS),
                   _USER_DEFAULT)
_CONTRACT_FIELDS = ("id", "contractType", "customerId", "defaultDomainName", "displayName")
CONTRACTS = _EntitySet("contracts", "microsoft.graph.contract", _CONTRACT_FIELDS, _CONTRACT_FIELDS)
_GDAP_FIELDS = ("id", "tenantId", "displayName")
GDAP_CUSTOMERS = _EntitySet("tenantRelationships/delegatedAdminCustomers",
                            "microsoft.graph.delegatedAdminCustomer", _GDAP_FIELDS, _GDAP_FIELDS)
_ORG_FIELDS = ("id", "displayName", "tenantType", "verifiedDomains", "countryLetterCode", "city", "state",
               "postalCode", "street", "businessPhones")
ORGANIZATION = _EntitySet("organization", "microsoft.graph.organization", _ORG_FIELDS, _ORG_FIELDS)
_DOMAIN_FIELDS = ("id", "authenticationType", "isAdminManaged", "isDefault", "isInitial", "isRoot",
                  "isVerified", "supportedServices")
DOMAINS = _EntitySet("domains", "microsoft.graph.domain", _DOMAIN_FIELDS, _DOMAIN_FIELDS)
_SKU_FIELDS = ("id", "accountId", "appliesTo", "capabilityStatus", "consumedUnits", "prepaidUnits",
               "servicePlans", "skuId", "skuPartNumber")
SUBSCRIBED_SKUS = _EntitySet("subscribedSkus", "microsoft.graph.subscribedSku", _SKU_FIELDS, _SKU_FIELDS)


def _user_resource(user: User) -> dict[str, Any]:
    return {**_USER_NULLS, **user.model_dump(mode="json", exclude={"mailbox"})}


def _json_bytes(value: Any) -> bytes:
    """JSON as starlette's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def _encode_user(user: User, fields: tuple[str, ...]) -> bytes:
    row = _user_resource(user)
    return _json_bytes({f: row.get(f) for f in fields})


def _collection_body(context: str, items: Iterable[bytes], links: dict[str, str] | None = None) -> bytes:
    """A Graph collection from already encoded items: context, then links, then value."""
    parts = [b'{"@odata.context":', _json_bytes(context)]
    for name, url in (links or {}).items():
        parts += [b",", _json_bytes(name), b":", _json_bytes(url)]
    parts += [b',"value":[', b",".join(items), b"]}"]
    return b"".join(parts)


def _json_response(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/json", headers=headers)


def _contract(tenant: Tenant) -> dict[str, Any]:
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"contract/{tenant.id}")), "contractType": "ResellerPartner",
            "customerId": tenant.id, "defaultDomainName": tenant.default_domain, "displayName": tenant.display_name}


def _gdap_customer(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "tenantId": tenant.id, "displayName": tenant.display_name}


def _organization(tenant: Tenant) -> dict[str, Any]:
    verified = [{"name": d.name, "isDefault": d.is_default, "isInitial": d.is_initial, "type": "Managed",
                 "capabilities": "Email, OfficeCommunicationsOnline"} for d in tenant.domains if d.is_verified]
    return {"id": tenant.id, "displayName": tenant.display_name, "tenantType": "AAD", "verifiedDomains": verified,
            "countryLetterCode": tenant.country_letter_code, "city": tenant.city, "state": tenant.state,
            "postalCode": tenant.postal_code, "street": tenant.street,
            "businessPhones": [tenant.phone] if tenant.phone else []}


def _domain(d: Domain) -> dict[str, Any]:
    return {"id": d.name, "authenticationType": "Managed", "isAdminManaged": True, "isDefault": d.is_default,
            "isInitial": d.is_initial, "isRoot": True, "isVerified": d.is_verified, "supportedServices": ["Email"]}


def _subscribed_skus(tenant: Tenant) -> list[dict[str, Any]]:
    consumed = Counter(lic.skuId for u in tenant.users for lic in u.assignedLicenses)
    return [{"id": f"{tenant.id}_{s.skuId}", "accountId": tenant.id, "appliesTo": s.appliesTo,
             "capabilityStatus": s.capabilityStatus, "consumedUnits": consumed[s.skuId],
             "prepaidUnits": {"enabled": s.enabled, "suspended": s.suspended, "warning": s.warning,
                              "lockedOut": s.lockedOut},
             "servicePlans": [], "skuId": s.skuId, "skuPartNumber": s.skuPartNumber} for s in tenant.skus]


def _concealed(value: str) -> str:
    return hashlib.md5(value.encode("utf-8")).hexdigest().upper()


def _mailbox_usage_csv(tenant: Tenant, period_days: int) -> bytes:
    refresh = (REFERENCE_DATE - timedelta(days=1)).date().isoformat()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(MAILBOX_REPORT_HEADER)
    for user in tenant.users:
        box = user.mailbox
        if box is None:
            continue
        upn, name = user.userPrincipalName, user.displayName or ""
        if tenant.reports_concealed:
            upn = name = _concealed(user.userPrincipalName)
        created = box.created_date or (user.createdDateTime or "")[:10]
        writer.writerow([
            refresh, upn, name, "False", "", created, box.last_activity_date or "", box.item_count,
            box.storage_used_bytes, box.issue_warning_quota_bytes, box.prohibit_send_quota_bytes,
            box.prohibit_send_receive_quota_bytes, box.deleted_item_count, box.deleted_item_size_bytes,
            box.deleted_item_quota_bytes, str(box.has_archive), box.recipient_type, period_days,
        ])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# --------------------------------------------------------------------------- paging


@dataclass(frozen=True)
class _Page:
    offset: int
    top: int
    select: tuple[str, ...] | None  # explicit $select, None for the default set


def _page_size_error(top: int | str, max_top: int) -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery",
                      f"Invalid page size specified: '{top}'. Must be between 1 and {max_top} inclusive.")


def _parse_top(raw: str | None, default: int, max_top: int) -> int:
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        raise _page_size_error(raw, max_top) from None
    if not 1 <= top <= max_top:
        raise _page_size_error(top, max_top)
    return top


def _encode_skiptoken(entity: _EntitySet, tenant: Tenant, page: _Page) -> str:
    state = {"e": entity.name, "t": tenant.id, "o": page.offset, "n": page.top, "s": page.select}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_skiptoken(token: str, entity: _EntitySet, tenant: Tenant) -> _Page:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if state["e"] != entity.name or state["t"] != tenant.id:
            raise ValueError("token of another collection")
        return _Page(int(state["o"]), int(state["n"]), tuple(state["s"]) if state["s"] else None)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise GraphError(400, "BadRequest", "The $skiptoken value is not valid for this request.") from None


def _encode_state(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_state(token: str) -> dict[str, Any] | None:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        return None
    return state if isinstance(state, dict) else None


def _page_window(items: Sequence[Any], offset: int, top: int, endless: bool) -> tuple[Sequence[Any], int | None]:
    """The items of one page and the offset of the next page (None at the end).

    endless: the paging never ends; past the last item, pages alternate between empty and a
    repeat of the last page, each with a fresh skiptoken.
    """
    end = offset + top
    if offset >= len(items) and endless:
        beyond = (offset - len(items)) // top
        last_page = items[(len(items) - 1) // top * top:] if items else []
        return ([] if beyond % 2 == 0 else last_page), end
    if end >= len(items):
        return items[offset:], (end if endless else None)
    return items[offset:end], end


def _prefer_page_size(header: str | None) -> int | None:
    """N from a `Prefer: odata.maxpagesize=N` header (clamped to 1..999), if present."""
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                return min(MAX_TOP, max(1, int(value.strip().strip('"'))))
            except ValueError:
                return None
    return None


def _spoil_report(body: bytes, mode: str) -> bytes:
    """The mailbox usage CSV as a broken report service might hand it out (see Faults.report_csv)."""
    text = body.decode("utf-8-sig")
    lines = text.rstrip("\r\n").split("\r\n")
    header, rows = lines[0], lines[1:]
    if mode == "no_bom":
        return text.encode()
    if mode == "empty":
        return ("\ufeff" + header + "\r\n").encode()
    if mode == "truncated":
        kept = [header, *rows[:-1]]
        last = rows[-1] if rows else header
        cut = last[: max(1, len(last) // 2)]  # cut between characters, mid-row
        return ("\ufeff" + "\r\n".join(kept if rows else []) + ("\r\n" if rows else "") + cut).encode()
    if mode == "malformed":
        spoiled = [header]
        for index, row in enumerate(rows):
            fields = row.split(",")
            if index % 4 == 1:
                row = ",".join(fields[:-3])  # too few columns
            elif index % 4 == 2 and len(fields) > 8:
                fields[8] = "n/a"  # Storage Used (Byte) is not a number
                row = ",".join(fields)
            spoiled.append(row)
            if index == 0:
                spoiled.append("<!-- report service error 0x80004005: partial result -->")
        if not rows:
            spoiled.append("<!-- report service error 0x80004005: partial result -->")
        return ("\ufeff" + "\r\n".join(spoiled) + "\r\n").encode()
    raise ValueError(f"unknown report_csv fault {mode!r}: use one of {', '.join(REPORT_CSV_FAULTS)}")


# --------------------------------------------------------------------------- the application


@dataclass(frozen=True)
class _GraphCall:
    request: Request
    tenant: Tenant
    roles: frozenset[str]
    origin: str
    match: re.Match[str]

    @property
    def query(self) -> Any:
        return self.request.query_params


GraphHandler = Callable[[_GraphCall], Awaitable[Response]]


@dataclass(frozen=True)
class _GraphRoute:
    name: str
    pattern: re.Pattern[str]
    method: str
    roles: tuple[str, ...]  # any one of them grants access
    options: frozenset[str]  # OData query options the endpoint understands
    handler: GraphHandler


@dataclass(frozen=True)
class _Download:
    tenant_id: str
    period_days: int
    expires: float


def _require_any(roles: frozenset[str], needed: Iterable[str]) -> None:
    if roles.isdisjoint(needed):
        raise _insufficient_privileges()


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        client_id, _, secret = base64.b64decode(value).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return unquote(client_id), unquote(secret)


class _SandboxApp:
    """The ASGI application and the state behind it (faults, stats, signing keys, links, and
    the per-tenant change logs)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.faults = Faults.from_config(config)
        self.stats = SandboxStats()
        self.directory = _Directory(config.world)
        self._key = secrets.token_bytes(32)
        self._retired_keys: list[bytes] = []
        self._downloads: dict[str, _Download] = {}
        # Token serial numbers: tokens numbered below a cutoff are refused (expire_tokens_after_requests).
        self._serial = 0
        self._refused_below: dict[str, int] = {}  # tenant id, or "*" for every tenant -> cutoff
        # Users and their change logs; every read or change of users holds the lock.
        self._lock = threading.RLock()
        self._logs: dict[str, TenantLog] = {}
        self._delta_epoch = secrets.token_hex(4)  # part of every delta token: a new one expires them all
        self._graph_routes = self._build_graph_routes()
        self.asgi = Starlette(routes=[
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self._endpoint("openid", self._openid), methods=["GET"]),
            Route("/{tenant}/discovery/v2.0/keys", self._endpoint("openid", self._keys), methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self._endpoint("token", self._token), methods=["POST"]),
            Route("/v1.0/$batch", self._endpoint("graph", self._batch), methods=["POST"]),
            Route("/v1.0/{path:path}", self._endpoint("graph", self._graph), methods=ALL_METHODS),
            Route("/reports-download/{name}", self._endpoint("report-download", self._download), methods=["GET"]),
            Route("/{path:path}", self._endpoint("other", self._not_found), methods=ALL_METHODS),
        ])

    # -- shared plumbing

    def _endpoint(self, kind: str, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            ids = _Ids.of(request)
            stats = self.stats
            stats.requests[kind] += 1
            stats.in_flight += 1
            stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
            try:
                if self.faults.latency_ms > 0:
                    await asyncio.sleep(self.faults.latency_ms / 1000)
                response = await handler(request)
            except GraphError as err:
                response = _graph_error_response(err, ids)
            except IdentityError as err:
                stats.identity_errors += 1
                response = _identity_error_response(err, ids, _origin(request))
            except _DropConnection:
                response = await self._drop(request, ids)
            except asyncio.CancelledError:
                # Only a stopping server cancels a request (one held by latency_ms or slow_s):
                # nobody waits for the answer, and the cancellation is no error worth a traceback.
                response = Response(status_code=503)
            finally:
                stats.in_flight -= 1
            response.headers["request-id"] = ids.request_id
            response.headers["client-request-id"] = ids.client_request_id
            return response

        return endpoint

    @staticmethod
    async def _drop(request: Request, ids: _Ids) -> Response:
        """Abort the connection; what is returned is never sent (uvicorn drops writes to a closed
        connection). Served by another HTTP server, without the transport, answer 503 instead."""
        transport = request.scope.get(TRANSPORT_SCOPE_KEY)
        if transport is None:
            code, message = SERVER_ERRORS[503]
            return _graph_error_response(GraphError(503, code, message), ids)
        transport.abort()
        for _ in range(3):  # let the event loop deliver connection_lost before the app returns
            await asyncio.sleep(0)
        return Response(status_code=503)

    def set_world(self, world: World) -> None:
        with self._lock:
            self.config.world = world
            self.directory = _Directory(world)
            self._logs.clear()
            self._delta_epoch = secrets.token_hex(4)

    def expire_tokens(self) -> None:
        self._retired_keys.append(self._key)
        self._key = secrets.token_bytes(32)

    def expire_delta_tokens(self) -> None:
        with self._lock:
            self._delta_epoch = secrets.token_hex(4)

    def _existing_tenant(self, key: str) -> Tenant | None:
        tenant = self.directory.find(key)
        return None if tenant is None or tenant.id in self.faults.removed else tenant

    def _customers(self, tenant: Tenant, relationships: set[str]) -> list[Tenant]:
        if tenant is not self.directory.partner:
            return []
        return [t for t in self.config.world.tenants
                if t.relationship in relationships and t.id not in self.faults.removed]

    # -- users and their change logs

    def _log(self, tenant: Tenant) -> TenantLog:
        """The tenant's change log (callers hold self._lock)."""
        log = self._logs.get(tenant.id)
        if log is None or log.tenant is not tenant:
            log = self._logs[tenant.id] = TenantLog(tenant, _encode_user)
        elif not log.in_step():
            log.restart()
        return log

    def _world_tenant(self, tenant_id: str) -> Tenant:
        tenant = self.config.world.tenant(tenant_id)
        if tenant is None:
            raise KeyError(f"no tenant {tenant_id} in the sandbox world")
        return tenant

    def refresh(self) -> None:
        with self._lock:
            for log in self._logs.values():
                log.restart()

    def change_users(self, tenant_id: str, fraction: float, seed: int,
                     fields: tuple[str, ...] | None = None) -> list[str]:
        tenant = self._world_tenant(tenant_id)
        with self._lock:
            log = self._log(tenant)
            rng = random.Random(f"{seed}:{tenant_id}:change:{log.version}")
            chosen = rng.sample(tenant.users, _share(len(tenant.users), fraction))
            for user in chosen:
                new, changed = changed_user(rng, tenant, user, fields)
                log.replace(new, changed)
            return [u.id for u in chosen]

    def add_users(self, tenant_id: str, users: list[User] | int, seed: int) -> list[User]:
        """Add the given users, or that many generated ones."""
        tenant = self._world_tenant(tenant_id)
        with self._lock:
            log = self._log(tenant)
            if isinstance(users, int):
                users = new_users(random.Random(f"{seed}:{tenant_id}:add:{log.version}"), tenant, users)
            for user in users:
                log.add(user)
            _cover_licenses(tenant, users)
            return users

    def remove_user(self, tenant_id: str, user_id: str, reason: str) -> User:
        tenant = self._world_tenant(tenant_id)
        with self._lock:
            return self._log(tenant).remove(user_id, reason)

    def mutate(self, fraction: float, seed: int, added: float, removed: float) -> dict[str, TenantChanges]:
        changes: dict[str, TenantChanges] = {}
        for tenant in list(self.config.world.tenants):
            if tenant.id in self.faults.removed:
                continue
            with self._lock:
                done = TenantChanges(changed=self.change_users(tenant.id, fraction, seed))
                done.added = [u.id for u in self.add_users(tenant.id, _share(len(tenant.users), added), seed)]
                rng = random.Random(f"{seed}:{tenant.id}:remove")
                for user in rng.sample(tenant.users[1:], min(len(tenant.users) - 1,
                                                              _share(len(tenant.users), removed))):
                    reason = "deleted" if rng.random() < 0.25 else "changed"
                    done.removed.append(self.remove_user(tenant.id, user.id, reason).id)
            changes[tenant.id] = done
        return changes

    # -- identity platform

    def _identity_tenant(self, request: Request) -> Tenant:
        key = request.path_params["tenant"]
        tenant = self._existing_tenant(key)
        if tenant is None:
            raise IdentityError(400, "invalid_tenant", 90002,
                                f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and "
                                "are signing into the correct cloud. Check with your subscription administrator, "
                                "this may happen if there are no active subscriptions for the tenant.")
        return tenant

    async def _openid(self, request: Request) -> Response:
        tenant = self._identity_tenant(request)
        return JSONResponse(_openid_configuration(_origin(request), tenant.id))

    async def _keys(self, request: Request) -> Response:
        self._identity_tenant(request)
        return JSONResponse({"keys": []})  # tokens are HS256 with a key only the sandbox holds

    async def _token(self, request: Request) -> Response:
        tenant = self._identity_tenant(request)
        form = _form(await request.body())
        basic_id, basic_secret = _basic_credentials(request.headers.get("authorization", ""))
        client_id = form.get("client_id") or basic_id
        secret = form.get("client_secret") or basic_secret
        self._check_grant(form.get("grant_type"))
        roles = self._check_client(tenant, client_id, secret)
        self._check_scope(tenant, form.get("scope"))
        lifetime = int(self.faults.token_lifetime_s)
        token = self._issue(tenant, client_id or "", roles, lifetime)
        self.stats.tokens_issued += 1
        return JSONResponse({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                             "access_token": token}, headers={"Cache-Control": "no-store, no-cache"})

    @staticmethod
    def _missing(parameter: str) -> IdentityError:
        return IdentityError(400, "invalid_request", 900144,
                             f"The request body must contain the following parameter: '{parameter}'.")

    def _check_grant(self, grant_type: str | None) -> None:
        if not grant_type:
            raise self._missing("grant_type")
        if grant_type != "client_credentials":
            raise IdentityError(400, "unsupported_grant_type", 70003,
                                f"The app requested an unsupported grant type '{grant_type}'.")

    def _check_client(self, tenant: Tenant, client_id: str | None, secret: str | None) -> list[str]:
        """Check the app's credentials in this tenant; the application permissions it holds there."""
        if not client_id:
            raise self._missing("client_id")
        not_installed = IdentityError(
            400, "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant.display_name}'. "
            "This can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You may have sent your authentication request to the "
            "wrong tenant.")
        partner_app = self.config.world.app
        direct = self.directory.direct_apps.get(client_id.lower())
        if client_id.lower() == partner_app.client_id.lower():
            expected = partner_app.client_secret
            is_partner = tenant is self.directory.partner
            installed = is_partner or (tenant.relationship != "none" and tenant.consent != "revoked"
                                       and tenant.id not in self.faults.revoked)
            roles = list(tenant.roles)
        elif direct is not None and direct.tenant_id == tenant.id:
            expected, installed = direct.client_secret, True
            roles = [] if tenant.id in self.faults.revoked_direct else list(
                tenant.roles if direct.roles is None else direct.roles)
        else:
            raise not_installed
        if not secret:
            raise IdentityError(401, "invalid_client", 7000218, "The request body must contain the following "
                                "parameter: 'client_assertion' or 'client_secret'.")
        if not secrets.compare_digest(secret.encode(), expected.encode()):
            raise IdentityError(401, "invalid_client", 7000215,
                                "Invalid client secret provided. Ensure the secret being sent in the request is "
                                "the client secret value, not the client secret ID, for a secret added to app "
                                f"'{client_id}'.")
        if not installed:
            raise not_installed
        return roles

    def _check_scope(self, tenant: Tenant, scope: str | None) -> None:
        if not scope:
            raise self._missing("scope")
        requested = set(scope.split()) - RESERVED_SCOPES
        for value in sorted(requested):
            if not value.endswith("/.default"):
                raise IdentityError(400, "invalid_scope", 1002012,
                                    f"The provided value for scope {value} is not valid. Client credential flows "
                                    "must have a scope value with /.default suffixed to the resource identifier "
                                    "(application ID URI).")
            if value not in GRAPH_SCOPES:
                resource = value.removesuffix("/.default")
                raise IdentityError(400, "invalid_resource", 500011,
                                    f"The resource principal named {resource} was not found in the tenant named "
                                    f"{tenant.display_name}. This can happen if the application has not been "
                                    "installed by the administrator of the tenant or consented to by any user in "
                                    "the tenant. You might have sent your authentication request to the wrong tenant.")
        if not requested:
            raise self._missing("scope")

    def _issue(self, tenant: Tenant, client_id: str, roles: list[str], lifetime_s: int) -> str:
        now = int(time.time())
        issuer = f"https://sts.windows.net/{tenant.id}/"
        service_principal = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.id}/{client_id}"))
        self._serial += 1
        claims = {"aud": GRAPH_RESOURCE, "iss": issuer, "iat": now, "nbf": now, "exp": now + lifetime_s,
                  "appid": client_id, "appidacr": "1", "idp": issuer, "idtyp": "app", "oid": service_principal,
                  "sub": service_principal, "roles": roles, "tid": tenant.id, "uti": secrets.token_urlsafe(16),
                  "ver": "1.0", "xms_sandbox_serial": self._serial}
        return jwt.encode(claims, self._key, algorithm="HS256")

    # -- Graph

    def _build_graph_routes(self) -> list[_GraphRoute]:
        paged = frozenset({"$top", "$skiptoken", "$select"})
        select = frozenset({"$select"})
        delta = frozenset({"$select", "$skiptoken", "$skipToken", "$deltatoken", "$deltaToken", "$top"})
        read_dir = ("Directory.Read.All", "Directory.ReadWrite.All")
        read_users = ("User.Read.All", "User.ReadWrite.All", *read_dir)

        def route(name: str, pattern: str, roles: tuple[str, ...], options: frozenset[str],
                  handler: GraphHandler, method: str = "GET") -> _GraphRoute:
            return _GraphRoute(name, re.compile(pattern, re.IGNORECASE), method, roles, options, handler)

        return [
            route("contracts", r"contracts", read_dir, paged, self._contracts),
            route("delegatedAdminCustomers", r"tenantRelationships/delegatedAdminCustomers",
                  ("DelegatedAdminRelationship.Read.All", "DelegatedAdminRelationship.ReadWrite.All"), paged,
                  self._gdap_customers),
            route("organization", r"organization", ("Organization.Read.All", *read_dir), select, self._organization),
            route("domains", r"domains", ("Domain.Read.All", *read_dir), select, self._domains),
            route("users", r"users", read_users, paged, self._users),
            route("users/delta", r"users/(microsoft\.graph\.)?delta(\(\))?", read_users, delta, self._users_delta),
            route("subscribedSkus", r"subscribedSkus", ("Organization.Read.All", "LicenseAssignment.Read.All",
                                                       *read_dir), select, self._subscribed_skus),
            route("getMailboxUsageDetail", r"reports/getMailboxUsageDetail\(period='(?P<period>[^']*)'\)",
                  ("Reports.Read.All",), frozenset(), self._mailbox_usage),
            route("reportSettings", r"admin/reportSettings",
                  ("ReportSettings.Read.All", "ReportSettings.ReadWrite.All"), frozenset(), self._report_settings),
            route("reportSettings", r"admin/reportSettings", ("ReportSettings.ReadWrite.All",), frozenset(),
                  self._update_report_settings, method="PATCH"),
        ]

    def _authenticate(self, request: Request) -> dict[str, Any]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            return jwt.decode(token.strip(), self._key, algorithms=["HS256"], audience=GRAPH_RESOURCE,
                              options={"require": ["exp", "tid"]})
        except jwt.ExpiredSignatureError:
            raise _token_expired() from None
        except jwt.InvalidSignatureError:
            if any(self._signed_with(token.strip(), key) for key in self._retired_keys):
                raise _token_expired() from None
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.") from None
        except jwt.InvalidAudienceError:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token validation failure. Invalid audience.") from None
        except jwt.PyJWTError:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.") from None

    @staticmethod
    def _signed_with(token: str, key: bytes) -> bool:
        try:
            jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False, "verify_aud": False})
        except jwt.PyJWTError:
            return False
        return True

    def _count_down_to_expiry(self, tenant_id: str) -> None:
        """expire_tokens_after_requests: count this request; when none are left, refuse every token
        issued so far (for the targeted tenants, or all)."""
        faults = self.faults
        left = faults.expire_tokens_after_requests
        if left is None or not faults.targets(tenant_id):
            return
        if left > 0:
            faults.expire_tokens_after_requests = left - 1
            return
        faults.expire_tokens_after_requests = None
        for scope in (faults.fault_tenants or {"*"}):
            self._refused_below[scope] = self._serial + 1

    def _refuse_expired_serial(self, claims: dict[str, Any]) -> None:
        cutoff = max(self._refused_below.get("*", 0), self._refused_below.get(str(claims["tid"]), 0))
        if int(claims.get("xms_sandbox_serial", 0)) < cutoff:
            self.stats.tokens_refused += 1
            raise _token_expired()

    def _injected_fault(self, tenant_id: str) -> GraphError | None:
        status = self.faults.draw(tenant_id)
        if status == "reset":
            self.stats.resets += 1
            raise _DropConnection()
        if status == 429:
            self.stats.throttled += 1
            return GraphError(429, "TooManyRequests", "Too many requests. Retry after the number of seconds in "
                              "the Retry-After header.", {"Retry-After": self.faults.retry_after_header})
        if isinstance(status, int):
            self.stats.server_errors += 1
            code, message = SERVER_ERRORS[status]
            headers = {"Retry-After": self.faults.retry_after_header} if status == 503 else {}
            return GraphError(status, code, message, headers)
        return None

    def _graph_route(self, method: str, path: str) -> tuple[_GraphRoute, re.Match[str]]:
        path = path.strip("/")
        matches = [(r, m) for r in self._graph_routes if (m := r.pattern.fullmatch(path))]
        if not matches:
            segment = path.split("/")[0] or "v1.0"
            raise GraphError(404, "Request_ResourceNotFound", f"Resource not found for the segment '{segment}'.")
        for route, match in matches:
            if route.method == method:
                return route, match
        raise GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")

    async def _graph(self, request: Request) -> Response:
        claims = self._authenticate(request)
        tenant_id = str(claims["tid"])
        self._count_down_to_expiry(tenant_id)
        self._refuse_expired_serial(claims)
        tenant = self._existing_tenant(tenant_id)
        if tenant is None:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        fault = self._injected_fault(tenant.id)
        slow_s = self.faults.slow_for(tenant.id)
        if slow_s > 0:
            self.stats.slowed += 1
            await asyncio.sleep(slow_s)
        if fault:
            raise fault
        route, match = self._graph_route(request.method, request.path_params["path"])
        self.stats.graph[route.name] += 1
        roles = frozenset(claims.get("roles") or [])
        _require_any(roles, route.roles)
        unknown = sorted(k for k in request.query_params if k.startswith("$") and k not in route.options)
        if unknown:
            raise GraphError(400, "BadRequest", f"Query option '{unknown[0]}' is not supported on "
                             f"'{route.name}' by the sandbox.")
        return await route.handler(_GraphCall(request, tenant, roles, _origin(request), match))

    async def _batch(self, request: Request) -> Response:
        """JSON batching: up to 20 requests in one; each is answered on its own (authenticated,
        throttled and faulted like a request of its own, so a 429 comes inside a 200)."""
        try:
            body = json.loads(await request.body())
            calls = body["requests"]
            if not isinstance(calls, list) or not all(isinstance(c, dict) and "id" in c and "url" in c
                                                      for c in calls):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise GraphError(400, "BadRequest", "Invalid batch payload format.") from None
        if not calls or len(calls) > MAX_BATCH_REQUESTS:
            raise GraphError(400, "BadRequest", f"The batch holds {len(calls)} requests; it must hold 1 "
                             f"to {MAX_BATCH_REQUESTS}.")
        if len({str(c["id"]) for c in calls}) != len(calls):
            raise GraphError(400, "BadRequest", "Batch request ids must be unique.")
        self._authenticate(request)  # a batch without a valid token is refused as a whole
        answers = [await self._batch_answer(request, call) for call in calls]
        return JSONResponse({"responses": answers})

    async def _batch_answer(self, outer: Request, call: dict[str, Any]) -> dict[str, Any]:
        path, _, query = str(call["url"]).lstrip("/").partition("?")
        headers = {"authorization": outer.headers.get("authorization", ""),
                   **{str(k).lower(): str(v) for k, v in (call.get("headers") or {}).items()}}
        scope = {**outer.scope, "method": str(call.get("method", "GET")).upper(), "path": f"/v1.0/{path}",
                 "raw_path": f"/v1.0/{path}".encode(), "query_string": query.encode(),
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                 "path_params": {"path": path}}
        sub = Request(scope)
        ids = _Ids.of(sub)
        try:
            response = await self._graph(sub)
        except GraphError as err:
            response = _graph_error_response(err, ids)
        kept = {"retry-after": "Retry-After", "location": "Location", "content-type": "Content-Type"}
        answer_headers = {kept[k]: v for k, v in response.headers.items() if k in kept}
        content = bytes(response.body) if getattr(response, "body", None) else b""
        return {"id": str(call["id"]), "status": response.status_code, "headers": answer_headers,
                "body": json.loads(content) if content and answer_headers.get("Content-Type", "")
                .startswith("application/json") else None}

    def _read_page(self, call: _GraphCall, entity: _EntitySet, max_top: int) -> _Page:
        token = call.query.get("$skiptoken")
        if token:
            return _decode_skiptoken(token, entity, call.tenant)
        return _Page(0, _parse_top(call.query.get("$top"), 100, max_top), entity.parse_select(call.query.get("$select")))

    @staticmethod
    def _next_link(call: _GraphCall, entity: _EntitySet, page: _Page) -> str:
        params: dict[str, Any] = {"$top": page.top}
        if page.select:
            params["$select"] = ",".join(page.select)
        params["$skiptoken"] = _encode_skiptoken(entity, call.tenant, page)
        return f"{call.origin}{call.request.url.path}?{urlencode(params, safe='$,')}"

    def _paginate(self, call: _GraphCall, entity: _EntitySet, items: Sequence[Any], page: _Page) -> tuple[Sequence[Any], str | None]:
        rows, next_offset = _page_window(items, page.offset, page.top, endless=False)
        if next_offset is None:
            return rows, None
        return rows, self._next_link(call, entity, _Page(next_offset, page.top, page.select))

    @staticmethod
    def _context(call: _GraphCall, entity: _EntitySet, select: tuple[str, ...] | None) -> str:
        return f"{call.origin}/v1.0/$metadata#{entity.name}" + (f"({','.join(select)})" if select else "")

    @classmethod
    def _collection(cls, call: _GraphCall, entity: _EntitySet, select: tuple[str, ...] | None,
                    rows: Iterable[dict[str, Any]], next_link: str | None = None) -> JSONResponse:
        fields = select or entity.default
        body: dict[str, Any] = {"@odata.context": cls._context(call, entity, select),
                                "value": [{f: row.get(f) for f in fields} for row in rows]}
        if next_link:
            body["@odata.nextLink"] = next_link
        return JSONResponse(body)

    async def _paged_collection(self, call: _GraphCall, entity: _EntitySet, items: Sequence[Any],
                                to_row: Callable[[Any], dict[str, Any]], max_top: int) -> JSONResponse:
        page = self._read_page(call, entity, max_top)
        rows, next_link = self._paginate(call, entity, items, page)
        return self._collection(call, entity, page.select, [to_row(i) for i in rows], next_link)

    async def _contracts(self, call: _GraphCall) -> Response:
        customers = self._customers(call.tenant, {"dap", "both"})
        return await self._paged_collection(call, CONTRACTS, customers, _contract, max_top=MAX_TOP)

    async def _gdap_customers(self, call: _GraphCall) -> Response:
        customers = self._customers(call.tenant, {"gdap", "both"})
        return await self._paged_collection(call, GDAP_CUSTOMERS, customers, _gdap_customer, max_top=300)

    async def _users(self, call: _GraphCall) -> Response:
        page = self._read_page(call, USERS, max_top=MAX_TOP)
        if page.select and "signInActivity" in page.select:
            _require_any(call.roles, ("AuditLog.Read.All",))
            if not _has_entra_premium(call.tenant):
                raise GraphError(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                                 "Neither tenant is B2C or tenant doesn't have premium license")
            # Documented: with signInActivity, a $top above 500 gives pages of up to 500 users.
            page = _Page(page.offset, min(page.top, SIGN_IN_MAX_TOP), page.select)
        tenant_id = call.tenant.id
        with self._lock:
            log = self._log(call.tenant)
            if tenant_id in self.faults.next_link_loop:
                rows, next_offset = _page_window(call.tenant.users, 0, page.top, endless=False)
                next_offset = 0
                self.stats.paging_faults += 1
            else:
                endless = tenant_id in self.faults.next_link_endless
                rows, next_offset = _page_window(call.tenant.users, page.offset, page.top, endless)
                if endless and next_offset is not None and next_offset >= len(call.tenant.users):
                    self.stats.paging_faults += 1
                if tenant_id in self.faults.repeated_users and 0 < page.offset <= len(call.tenant.users):
                    rows = [call.tenant.users[page.offset - 1], *rows]
                    self.stats.paging_faults += 1
            items = log.json(page.select or USERS.default, rows)
        links = {}
        if next_offset is not None:
            links["@odata.nextLink"] = self._next_link(call, USERS, _Page(next_offset, page.top, page.select))
        return _json_response(_collection_body(self._context(call, USERS, page.select), items, links))

    # -- users/delta

    def _delta_link(self, call: _GraphCall, kind: str, state: dict[str, Any]) -> str:
        token = _encode_state({"e": "users/delta", "t": call.tenant.id, **state})
        return f"{call.origin}/v1.0/users/delta?{kind}={token}"

    def _delta_gone(self, call: _GraphCall, select: list[str] | None) -> GraphError:
        query = f"?$select={','.join(select)}" if select else ""
        return GraphError(410, "syncStateNotFound",
                          "The delta token is expired or unknown. Start a full synchronization again from the URL "
                          "in the Location header (a delta request without a token).",
                          {"Location": f"{call.origin}/v1.0/users/delta{query}"})

    def _delta_state(self, call: _GraphCall, log: TenantLog, token: str, deltatoken: bool) -> dict[str, Any]:
        state = _decode_state(token)
        generation = f"{self._delta_epoch}.{log.generation}"
        if (state is None or state.get("e") != "users/delta" or state.get("t") != call.tenant.id
                or state.get("g") != generation):
            raise self._delta_gone(call, state.get("s") if isinstance(state, dict) else None)
        if deltatoken and (time.time() - float(state.get("i", 0)) > self.faults.delta_token_lifetime_s
                           or int(state.get("v", -1)) > log.version):
            raise self._delta_gone(call, state.get("s"))
        return state

    async def _users_delta(self, call: _GraphCall) -> Response:
        self.stats.delta_requests += 1
        query = call.query
        if "$top" in query:
            raise GraphError(400, "Request_UnsupportedQuery", "The query option $top is not supported with delta "
                             "queries; use the header Prefer: odata.maxpagesize=N to choose the page size.")
        skiptoken = query.get("$skiptoken") or query.get("$skipToken")
        deltatoken = query.get("$deltatoken") or query.get("$deltaToken")
        select = USERS.parse_select(query.get("$select")) if not skiptoken else None
        if select and "signInActivity" in select:
            raise GraphError(400, "BadRequest", "Invalid request for delta query: for this entity set, "
                             "$expand/$select is not supported for the following properties: signInActivity")
        preferred = _prefer_page_size(call.request.headers.get("prefer"))
        tenant_id = call.tenant.id
        with self._lock:
            log = self._log(call.tenant)
            generation = f"{self._delta_epoch}.{log.generation}"
            if skiptoken:
                state = self._delta_state(call, log, skiptoken, deltatoken=False)
            elif deltatoken == "latest":
                state = {"k": "latest", "s": list(select) if select else None}
            elif deltatoken:
                state = self._delta_state(call, log, deltatoken, deltatoken=True)
                state = {"k": "round", "v": int(state["v"]), "u": log.version, "o": 0,
                         "s": list(select) if select else state.get("s"), "n": state.get("n")}
            else:
                state = {"k": "initial", "u": log.version, "c": -1, "s": list(select) if select else None}
            chosen = tuple(state["s"]) if state.get("s") else None
            fields = chosen or USERS.default
            if "id" not in fields:
                fields = ("id", *fields)
            size = preferred or int(state.get("n") or self.config.delta_page_size)
            items, next_state = self._delta_page(log, state, fields, size)
            if tenant_id in self.faults.next_link_loop and state["k"] in ("initial", "round"):
                next_state = {**state, "x": 0}  # this very page again, with the same link, forever
                self.stats.paging_faults += 1
            elif next_state is None and tenant_id in self.faults.next_link_endless and state["k"] != "latest":
                next_state = {**state, "k": "beyond", "x": int(state.get("x", 0)) + 1}
                self.stats.paging_faults += 1
            common = {"g": generation, "s": list(chosen) if chosen else None, "n": size}
            if next_state is not None:
                links = {"@odata.nextLink": self._delta_link(call, "$skiptoken", {**next_state, **common})}
            else:
                version = log.version if state["k"] == "latest" else int(state["u"])
                links = {"@odata.deltaLink": self._delta_link(call, "$deltatoken",
                                                             {"v": version, "i": int(time.time()), **common})}
        headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if preferred else None
        return _json_response(_collection_body(self._context(call, USERS, chosen), items, links), headers)

    @staticmethod
    def _delta_page(log: TenantLog, state: dict[str, Any], fields: tuple[str, ...],
                    size: int) -> tuple[list[bytes], dict[str, Any] | None]:
        """One page of a delta round and the state of the next page (None: the round is over)."""
        kind = state["k"]
        if kind == "initial":
            users, cursor = log.after(int(state["c"]), size)
            return log.json(fields, users), (None if cursor is None else {**state, "c": cursor})
        if kind == "round":
            ids = log.round(int(state["v"]), int(state["u"]), frozenset(fields))
            offset = int(state["o"])
            chunk = ids[offset:offset + size]
            present = [log.by_id[i] for i in chunk if i in log.by_id]
            encoded = iter(log.json(fields, present))
            items = [next(encoded) if i in log.by_id else
                     _json_bytes({"id": i, "@removed": {"reason": log.removed.get(i, "deleted")}}) for i in chunk]
            more = offset + size < len(ids)
            return items, ({**state, "o": offset + size} if more else None)
        return [], None  # "latest" (no data, only a deltaLink) and "beyond" (next_link_endless)

    async def _organization(self, call: _GraphCall) -> Response:
        select = ORGANIZATION.parse_select(call.query.get("$select"))
        return self._collection(call, ORGANIZATION, select, [_organization(call.tenant)])

    async def _domains(self, call: _GraphCall) -> Response:
        select = DOMAINS.parse_select(call.query.get("$select"))
        return self._collection(call, DOMAINS, select, [_domain(d) for d in call.tenant.domains])

    async def _subscribed_skus(self, call: _GraphCall) -> Response:
        select = SUBSCRIBED_SKUS.parse_select(call.query.get("$select"))
        with self._lock:
            rows = _subscribed_skus(call.tenant)
        return self._collection(call, SUBSCRIBED_SKUS, select, rows)

    async def _mailbox_usage(self, call: _GraphCall) -> Response:
        period = call.match["period"]
        days = REPORT_PERIODS.get(period.upper())
        if days is None:
            raise GraphError(400, "BadRequest", f"Invalid period '{period}': use one of D7, D30, D90, D180.")
        now = time.monotonic()
        self._downloads = {k: v for k, v in self._downloads.items() if v.expires > now}
        token = secrets.token_urlsafe(24)
        self._downloads[token] = _Download(call.tenant.id, days, now + REPORT_LINK_LIFETIME_S)
        return RedirectResponse(f"{call.origin}/reports-download/{token}.csv", status_code=302)

    async def _report_settings(self, call: _GraphCall) -> Response:
        return JSONResponse({"@odata.context": f"{call.origin}/v1.0/$metadata#admin/reportSettings/$entity",
                             "id": call.tenant.id, "displayConcealedNames": call.tenant.reports_concealed})

    async def _update_report_settings(self, call: _GraphCall) -> Response:
        try:
            body = json.loads(await call.request.body())
            concealed = body["displayConcealedNames"]
        except (ValueError, KeyError, TypeError):
            raise GraphError(400, "BadRequest", "Expected a JSON body like {\"displayConcealedNames\": false}.") from None
        if not isinstance(concealed, bool):
            raise GraphError(400, "BadRequest", "displayConcealedNames must be true or false.")
        call.tenant.reports_concealed = concealed
        return Response(status_code=204)

    # -- report download and the rest

    async def _download(self, request: Request) -> Response:
        token = request.path_params["name"].removesuffix(".csv")
        link = self._downloads.get(token)
        tenant = self._existing_tenant(link.tenant_id) if link and link.expires > time.monotonic() else None
        if tenant is None:
            raise GraphError(404, "Request_ResourceNotFound",
                             "The report download link is unknown or has expired; request the report again.")
        filename = f"MailboxUsageDetail{REFERENCE_DATE:%m_%d_%Y}.csv"
        with self._lock:
            body = _mailbox_usage_csv(tenant, link.period_days)
        spoil = self.faults.report_csv.get(tenant.id)
        if spoil:
            body = _spoil_report(body, spoil)
            self.stats.report_faults += 1
        return Response(body, media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    async def _not_found(self, request: Request) -> Response:
        segment = request.path_params["path"].split("/")[0]
        raise GraphError(404, "Request_ResourceNotFound", f"Resource not found for the segment '{segment}'.")


def _token_expired() -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")


def _share(count: int, fraction: float) -> int:
    """How many of count items a fraction picks: none for 0, at least one otherwise."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction {fraction} must be between 0 and 1")
    return 0 if fraction == 0 or count == 0 else min(count, max(1, round(count * fraction)))


def _cover_licenses(tenant: Tenant, added: list[User]) -> None:
    """Buy seats when new users' licenses would exceed what the tenant has."""
    wanted = {lic.skuId for u in added for lic in u.assignedLicenses}
    if not wanted:
        return
    consumed = Counter(lic.skuId for u in tenant.users for lic in u.assignedLicenses)
    for sku in tenant.skus:
        if sku.skuId in wanted and consumed[sku.skuId] > sku.enabled:
            sku.enabled = consumed[sku.skuId]


class _HTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, handing each request the connection's transport (under
    TRANSPORT_SCOPE_KEY) so that the reset fault can drop the connection without a response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        app = self.app

        async def app_with_transport(scope: Any, receive: Any, send: Any) -> None:
            scope[TRANSPORT_SCOPE_KEY] = transport
            await app(scope, receive, send)

        self.app = app_with_transport


# --------------------------------------------------------------------------- serving


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _uvicorn_server(app: Starlette, tls: SandboxTLS, host: str, port: int) -> uvicorn.Server:
    # Idle connections stay open for minutes, as at Graph's front doors. With uvicorn's default of
    # 5 s, a process stalled that long (a full garbage collection of a 100,000-user world on a busy
    # machine) would close a kept-alive connection under a request already sent on it.
    config = uvicorn.Config(app, host=host, port=port, http=_HTTPProtocol, ssl_certfile=str(tls.cert_file),
                            ssl_keyfile=str(tls.key_file), lifespan="off", log_level="warning", log_config=None,
                            access_log=False, timeout_graceful_shutdown=3, timeout_keep_alive=120, backlog=2048)
    return uvicorn.Server(config)


def _info(app: _SandboxApp, tls: SandboxTLS, host: str, port: int) -> SandboxInfo:
    base = f"https://{host}:{port}"
    world = app.config.world
    return SandboxInfo(base_url=base, authority_host=base, graph_url=f"{base}/v1.0", ca_file=tls.ca_file,
                       partner_tenant_id=world.partner.tenant_id, client_id=world.app.client_id,
                       tenants=len(world.tenants), users=world.user_count)


class Sandbox:
    """The sandbox served from a background thread; use as a context manager or start()/stop().

    `state_dir` keeps the CA between runs; without it a temporary directory is used and removed
    on stop().

    While it runs: `faults` (see Faults) and `stats` (see SandboxStats) are live; the world's
    users change through change_users / add_user / remove_user / mutate, each recorded in the
    tenant's change log that GET /users/delta answers from; remove_tenant / restore_tenant make
    a tenant vanish and come back; expire_tokens / expire_delta_tokens end every access token or
    delta token issued so far. Edit users through these methods: the sandbox caches each user's
    JSON by object identity, so a User edited in place is only seen after refresh().
    """

    def __init__(self, config: SandboxConfig | World, *, state_dir: Path | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config if isinstance(config, SandboxConfig) else SandboxConfig(world=config)
        self._app = _SandboxApp(self.config)
        self._state_dir, self._host, self._port = state_dir, host, port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._info: SandboxInfo | None = None

    def start(self, timeout_s: float = 10) -> Sandbox:
        if self._thread is not None:
            return self
        if self._state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="glue-sandbox-")
        tls = ensure_ca(Path(self._state_dir or self._tmp.name))  # type: ignore[union-attr]
        self._socket = _bind(self._host, self._port)
        port = self._socket.getsockname()[1]
        self._server = _uvicorn_server(self._app.asgi, tls, self._host, port)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"sandbox-{port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox server on {self._host}:{port} did not start; "
                                   "look for uvicorn's error above")
            time.sleep(0.01)
        self._info = _info(self._app, tls, self._host, port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            # Idle keep-alive TLS connections would otherwise hold shutdown for the full grace period.
            self._server.should_exit = self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        self._server = self._thread = self._socket = self._tmp = None
        self._info = None

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until the server stops or timeout_s passes; Ctrl-C interrupts it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._thread is not None and self._thread.is_alive():
            step = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if step <= 0:
                return
            self._thread.join(step)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def info(self) -> SandboxInfo:
        if self._info is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return self._info

    @property
    def base_url(self) -> str:
        return self.info.base_url

    @property
    def authority_host(self) -> str:
        return self.info.authority_host

    @property
    def graph_url(self) -> str:
        return self.info.graph_url

    @property
    def ca_file(self) -> Path:
        return self.info.ca_file

    def authority(self, tenant: str) -> str:
        """The msal authority URL for a tenant id or domain name."""
        return f"{self.authority_host}/{tenant}"

    @property
    def world(self) -> World:
        return self.config.world

    def set_world(self, world: World) -> None:
        """Serve another world from the next request on (tokens already issued stay valid)."""
        self._app.set_world(world)

    @property
    def faults(self) -> Faults:
        return self._app.faults

    @property
    def stats(self) -> SandboxStats:
        return self._app.stats

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (Graph answers 401)."""
        self._app.expire_tokens()

    def expire_delta_tokens(self) -> None:
        """Every delta token and delta skiptoken issued so far is unknown from now on: GET
        /users/delta answers 410 Gone, code syncStateNotFound, with a Location header to restart
        the full synchronization (as for a token older than seven days)."""
        self._app.expire_delta_tokens()

    # -- changing the world while it runs

    def change_users(self, tenant_id: str, fraction: float = 0.1, seed: int = 0,
                     fields: tuple[str, ...] | None = None) -> list[str]:
        """Edit one or two profile fields (jobTitle, mobilePhone, businessPhones, officeLocation,
        accountEnabled; or only `fields`, which may also name "surname") of that fraction of the
        tenant's users (at least one when fraction > 0), chosen from seed; returns their ids."""
        return self._app.change_users(tenant_id, fraction, seed, fields)

    def add_user(self, tenant_id: str, user: User | None = None, seed: int = 0) -> User:
        """Add a user to a tenant (a generated licensed member when user is None); returns it.
        The tenant's SKUs gain seats if the new user's licenses need them."""
        return self._app.add_users(tenant_id, [user] if user is not None else 1, seed)[0]

    def remove_user(self, tenant_id: str, user_id: str, reason: str = "changed") -> User:
        """Delete a user: "changed" (soft-deleted, restorable) or "deleted" (permanently), as
        GET /users/delta reports it in "@removed"; returns the removed user."""
        return self._app.remove_user(tenant_id, user_id, reason)

    def mutate(self, fraction: float = 0.05, seed: int = 0, *, added: float = 0.0,
               removed: float = 0.0) -> dict[str, TenantChanges]:
        """In every tenant still present: change_users(fraction), then add `added` and remove
        `removed` (fractions of its users; the first user, the admin, stays; a quarter of the
        removals are permanent). Returns what changed per tenant id."""
        return self._app.mutate(fraction, seed, added, removed)

    def remove_tenant(self, tenant_id: str) -> None:
        """The tenant vanishes (e.g. right after discovery listed it): gone from contracts and GDAP
        lists, AADSTS90002 from the identity platform, 401 for its tokens."""
        self.faults.removed.add(tenant_id)

    def restore_tenant(self, tenant_id: str) -> None:
        self.faults.removed.discard(tenant_id)

    def refresh(self) -> None:
        """Call after editing the world's objects directly (a User edited in place, a user list
        changed by hand): forgets every cached user JSON and restarts the change logs, so delta
        tokens issued before answer 410 Gone and clients resynchronize, as Graph makes them do
        when it cannot tell what changed."""
        self._app.refresh()


def serve_forever(config: SandboxConfig, state_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                  on_ready: Callable[[SandboxInfo], None] | None = None) -> SandboxStats:
    """Serve in the calling (main) thread until Ctrl-C or SIGTERM; return the request stats.

    on_ready receives the URLs and CA path once the port is bound, before requests are served;
    the caller decides what to print.
    """
    app = _SandboxApp(config)
    # The world lives as long as this process: keep the cyclic collector from ever walking its
    # millions of objects again (a full collection of a 100,000-user world stalls every request).
    gc.freeze()
    tls = ensure_ca(Path(state_dir))
    sock = _bind(host, port)
    server = _uvicorn_server(app.asgi, tls, host, sock.getsockname()[1])
    if on_ready is not None:
        on_ready(_info(app, tls, host, sock.getsockname()[1]))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises Ctrl-C after its clean shutdown
    finally:
        sock.close()
    return app.stats
