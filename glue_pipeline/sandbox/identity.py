"""The Microsoft identity platform: OpenID configuration, the client credentials token endpoint
with the platform's error format, and the access tokens it issues and Graph checks."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .odata import GraphError, Ids, origin_of
from .state import SandboxState
from .world import Tenant

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPES = {f"{GRAPH_RESOURCE}/.default", f"{GRAPH_RESOURCE}//.default", f"{GRAPH_APP_ID}/.default"}
RESERVED_SCOPES = {"openid", "profile", "offline_access"}


class IdentityError(Exception):
    def __init__(self, status: int, error: str, aadsts: int, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.aadsts, self.message = status, error, aadsts, message


def identity_error_response(err: IdentityError, ids: Ids, origin: str) -> JSONResponse:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (f"AADSTS{err.aadsts}: {err.message} Trace ID: {ids.request_id} "
                   f"Correlation ID: {ids.client_request_id} Timestamp: {stamp}")
    body = {"error": err.error, "error_description": description, "error_codes": [err.aadsts],
            "timestamp": stamp, "trace_id": ids.request_id, "correlation_id": ids.client_request_id,
            "error_uri": f"{origin}/error?code={err.aadsts}"}
    return JSONResponse(body, status_code=err.status)


def _token_expired() -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")


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


class Tokens:
    """Access tokens: issued by the token endpoint (HS256, with a key only the sandbox holds) and
    checked on every Graph request."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._key = secrets.token_bytes(32)
        self._retired_keys: list[bytes] = []
        # Token serial numbers: tokens numbered below a cutoff are refused (expire_tokens_after_requests).
        self._serial = 0
        self._refused_below: dict[str, int] = {}  # tenant id, or "*" for every tenant -> cutoff

    def issue(self, tenant: Tenant, client_id: str, roles: list[str], lifetime_s: int) -> str:
        now = int(time.time())
        issuer = f"https://sts.windows.net/{tenant.id}/"
        service_principal = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.id}/{client_id}"))
        self._serial += 1
        claims = {"aud": GRAPH_RESOURCE, "iss": issuer, "iat": now, "nbf": now, "exp": now + lifetime_s,
                  "appid": client_id, "appidacr": "1", "idp": issuer, "idtyp": "app", "oid": service_principal,
                  "sub": service_principal, "roles": roles, "tid": tenant.id, "uti": secrets.token_urlsafe(16),
                  "ver": "1.0", "xms_sandbox_serial": self._serial}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def expire(self) -> None:
        """Retire the signing key: every token issued so far is refused as expired."""
        self._retired_keys.append(self._key)
        self._key = secrets.token_bytes(32)

    def authenticate(self, request: Request) -> dict[str, Any]:
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

    def count_down_to_expiry(self, tenant_id: str) -> None:
        """expire_tokens_after_requests: count this request; when none are left, refuse every token
        issued so far (for the targeted tenants, or all)."""
        faults = self.state.faults
        left = faults.expire_tokens_after_requests
        if left is None or not faults.targets(tenant_id):
            return
        if left > 0:
            faults.expire_tokens_after_requests = left - 1
            return
        faults.expire_tokens_after_requests = None
        for scope in (faults.fault_tenants or {"*"}):
            self._refused_below[scope] = self._serial + 1

    def refuse_expired_serial(self, claims: dict[str, Any]) -> None:
        cutoff = max(self._refused_below.get("*", 0), self._refused_below.get(str(claims["tid"]), 0))
        if int(claims.get("xms_sandbox_serial", 0)) < cutoff:
            self.state.stats.tokens_refused += 1
            raise _token_expired()


class IdentityRoutes:
    """The identity platform's endpoints: OpenID configuration, signing keys and tokens."""

    def __init__(self, state: SandboxState, tokens: Tokens) -> None:
        self.state = state
        self.tokens = tokens

    def _identity_tenant(self, request: Request) -> Tenant:
        key = request.path_params["tenant"]
        tenant = self.state.existing_tenant(key)
        if tenant is None:
            raise IdentityError(400, "invalid_tenant", 90002,
                                f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and "
                                "are signing into the correct cloud. Check with your subscription administrator, "
                                "this may happen if there are no active subscriptions for the tenant.")
        return tenant

    async def openid(self, request: Request) -> Response:
        tenant = self._identity_tenant(request)
        return JSONResponse(_openid_configuration(origin_of(request), tenant.id))

    async def keys(self, request: Request) -> Response:
        self._identity_tenant(request)
        return JSONResponse({"keys": []})  # tokens are HS256 with a key only the sandbox holds

    async def token(self, request: Request) -> Response:
        tenant = self._identity_tenant(request)
        form = _form(await request.body())
        basic_id, basic_secret = _basic_credentials(request.headers.get("authorization", ""))
        client_id = form.get("client_id") or basic_id
        secret = form.get("client_secret") or basic_secret
        self._check_grant(form.get("grant_type"))
        roles = self._check_client(tenant, client_id, secret)
        self._check_scope(tenant, form.get("scope"))
        lifetime = int(self.state.faults.token_lifetime_s)
        token = self.tokens.issue(tenant, client_id or "", roles, lifetime)
        self.state.stats.tokens_issued += 1
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
        partner_app = self.state.config.world.app
        direct = self.state.directory.direct_apps.get(client_id.lower())
        if client_id.lower() == partner_app.client_id.lower():
            expected = partner_app.client_secret
            is_partner = tenant is self.state.directory.partner
            installed = is_partner or (tenant.relationship != "none" and tenant.consent != "revoked"
                                       and tenant.id not in self.state.faults.revoked)
            roles = list(tenant.roles)
        elif direct is not None and direct.tenant_id == tenant.id:
            expected, installed = direct.client_secret, True
            roles = [] if tenant.id in self.state.faults.revoked_direct else list(
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
        if tenant.id in self.state.faults.missing_service_principal:
            raise IdentityError(401, "invalid_client", 7000229,
                                f"The client application {client_id} is missing service principal in the tenant "
                                f"{tenant.id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119")
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

