"""Typed Graph and identity errors. Each names the tenant, the endpoint, the error code and the
fix, in one message an operator can act on."""

from __future__ import annotations

import json
import re

from glue_pipeline.graph import JsonObject
from glue_pipeline.vocabulary import FailureCause

# Identity platform codes (AADSTS...) and what the operator should do about them.
IDENTITY_FIXES = {
    "AADSTS700016": "the app is not installed in this tenant or its consent was revoked: have a "
                    "Global Administrator of the customer tenant grant admin consent to the partner app "
                    "(or re-establish the GDAP relationship), then re-run this tenant",
    "AADSTS7000229": "the app has no service principal in this tenant (consent was never given or was "
                     "removed): have a customer Global Administrator grant admin consent, then re-run",
    "AADSTS7000215": "the client secret is wrong: set {secret_variable} to the secret's Value (not its "
                     "Secret ID) from the app registration's Certificates & secrets page",
    "AADSTS7000222": "the client secret has expired: create a new secret on the app registration and "
                     "update {secret_variable}",
    "AADSTS90002": "the tenant does not exist or is no longer reachable: check the tenant id; the "
                   "customer may have left the partner relationship",
}

# The identity codes that say the app is not let into the tenant, that the tenant is gone, and
# that the app's own secret was refused (for every tenant at once).
CONSENT_CODES = ("AADSTS700016", "AADSTS7000229")
TENANT_GONE_CODES = ("AADSTS90002",)
CREDENTIAL_CODES = ("AADSTS7000215", "AADSTS7000222")

# Graph error codes and the fix.
GRAPH_FIXES = {
    "Authorization_RequestDenied": "grant the app the application permission this endpoint needs "
                                   "(see README 'Permissions') and have the customer re-consent",
    "InvalidAuthenticationToken": "the access token was refused even after a fresh one was obtained: "
                                  "check the app's consent in the tenant and the system clock",
    "TooManyRequests": "Graph kept throttling after every retry: lower GLUE_GRAPH_CONCURRENCY or "
                       "sync fewer tenants per run",
    "Authentication_RequestFromNonPremiumTenantOrB2CTenant": "the tenant has no Entra ID P1/P2 licence, "
                                                             "so sign-in activity cannot be read",
    "S2SUnauthorized": "grant the app the application permission the report needs (Reports.Read.All; "
                       "ReportSettings.ReadWrite.All for report settings) and have the customer re-consent",
}


class GraphError(Exception):
    """A failed call to Graph or the identity platform for one tenant."""

    def __init__(self, tenant_id: str, endpoint: str, code: str, message: str, fix: str,
                 status: int | None = None) -> None:
        self.tenant_id = tenant_id
        self.endpoint = endpoint
        self.code = code
        self.status = status
        self.message = message
        self.fix = fix
        status_text = f" (HTTP {status})" if status else ""
        super().__init__(f"tenant {tenant_id}: {endpoint} failed with {code}{status_text}: {message} "
                         f"Fix: {fix}")


class IdentityError(GraphError):
    """No access token: credentials, consent or tenant problems."""


class ConsentRevokedError(IdentityError):
    """The customer tenant no longer lets the app in."""


class PermissionDeniedError(GraphError):
    """A token was issued but lacks the application permission the endpoint needs."""


class TransientGraphError(GraphError):
    """Throttling or server errors that outlasted every retry."""


class PagingError(GraphError):
    """A collection whose @odata.nextLink repeats or never ends."""


class CertificateError(GraphError):
    """The server's TLS certificate does not verify against the trusted CAs: a setting to fix,
    not a fault that passes, so it is never retried."""


def certificate_error(tenant_id: str, endpoint: str, reason: str, ca_file: str | None) -> CertificateError:
    """The error for a certificate that failed verification; `reason` is OpenSSL's (e.g. "unable
    to get local issuer certificate")."""
    if "Hostname mismatch" in reason or "doesn't match" in reason:
        message = "the server's certificate is not issued for the host name in the URL"
        fix = ("set GLUE_AUTHORITY_HOST and GLUE_GRAPH_URL to the host names the certificate names "
               "(TLS stays verified)")
    elif ca_file:
        message = f"the server's certificate is not signed by the CA in GLUE_CA_FILE={ca_file}"
        fix = ("point GLUE_CA_FILE at the CA that signed the server's certificate (the sandbox prints "
               "its path), or unset it to trust the system CAs, which include Microsoft's public CAs")
    else:
        message = "the server's certificate is not signed by a CA this system trusts"
        fix = ("set GLUE_CA_FILE to the CA that signed it (e.g. the sandbox's ca.pem, or a TLS-inspecting "
               "proxy's CA); Microsoft's own endpoints verify against the system CAs")
    return CertificateError(tenant_id, endpoint, "SSLError",
                            f"{message} (CERTIFICATE_VERIFY_FAILED: {reason}).", fix)


def identity_error(tenant_id: str, endpoint: str, result: JsonObject,
                   secret_variable: str = "GLUE_CLIENT_SECRET") -> IdentityError:
    """Build the error for msal's error dict (error, error_description starting with AADSTS...);
    `secret_variable` is where the operator sets the secret that was used."""
    description = str(result.get("error_description") or "")
    code = description.split(":", 1)[0].strip() if description.startswith("AADSTS") else str(
        result.get("error") or "unknown_error")
    # error_description is "CODE: message" followed by trace ids, on further lines or after "Trace ID:".
    message = re.split(r"\r?\n|\s+Trace ID:", description, maxsplit=1)[0]
    message = message.removeprefix(f"{code}:").strip() or str(result.get("error"))
    fix = IDENTITY_FIXES.get(code, "check the app registration, its secret and its consent in this tenant")
    fix = fix.format(secret_variable=secret_variable)
    cls = ConsentRevokedError if code in CONSENT_CODES else IdentityError
    return cls(tenant_id, endpoint, code, message, fix, status=None)


def graph_error(tenant_id: str, endpoint: str, status: int, body: object) -> GraphError:
    """Build the error for a Graph JSON error body."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or f"HTTP{status}")
    message = str(error.get("message") or "no error body")
    if code == "UnknownError":
        code, message = _service_error(message) or (code, message)
    message = _intune_message(message)
    fix = GRAPH_FIXES.get(code, "see the Graph error code in Microsoft's documentation")
    if status == 403:
        return PermissionDeniedError(tenant_id, endpoint, code, message, fix, status)
    if status == 429 or status >= 500:
        return TransientGraphError(tenant_id, endpoint, code, message, GRAPH_FIXES["TooManyRequests"]
                                   if status == 429 else "Graph is failing; re-run this tenant later",
                                   status)
    return GraphError(tenant_id, endpoint, code, message, fix, status)


def _service_error(message: str) -> tuple[str, str] | None:
    """The code and message of a service's own error that Graph passes on as the message of an
    UnknownError (the reports service's {"error": {"code": "S2SUnauthorized", ...}}), if it is one."""
    try:
        inner = json.loads(message).get("error")
        code, text = inner["code"], inner.get("message") or ""
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
    return (code, str(text)) if isinstance(code, str) and code else None


def _intune_message(message: str) -> str:
    """Intune's own message, when Graph passes on Intune's error object as its message
    ({"_version": 3, "Message": "Request not applicable to target tenant. - Operation ID ...
    - Activity ID ... - Url ..."}): the sentence before its ids; any other message as it is."""
    if not message.startswith("{"):
        return message
    try:
        inner = json.loads(message).get("Message")
    except (ValueError, AttributeError):
        return message
    return inner.split(" - Operation ID", 1)[0].strip() if isinstance(inner, str) and inner.strip() else message


# Why a tenant failed (failure_cause), in words, and what the operator does about it.
CAUSE_TEXT: dict[FailureCause, str] = {
    "consent_revoked": "the partner app's consent was revoked, or the app is missing from the tenant",
    "tenant_gone": "the tenant no longer exists or is no longer reachable",
    "permission_missing": "the app lacks an application permission in the tenant",
    "credentials": "the app's client secret was refused",
    "transient": "Graph or the network kept failing after every retry",
    "certificate": "a server's TLS certificate did not verify",
    "store": "the store could not be used",
    "unexpected": "an unexpected error",
}
CAUSE_FIXES: dict[FailureCause, str] = {
    "consent_revoked": "have a Global Administrator of the customer tenant grant admin consent to the partner "
                       "app (or re-establish the GDAP relationship); the next sync takes the tenant up again",
    "tenant_gone": "check the tenant id; if the customer left the partner relationship, discovery stops "
                   "listing it and it is no longer synced",
    "permission_missing": "grant the app the application permissions README 'Permissions' lists and have the "
                          "customer re-consent (`glue-pipeline doctor` shows what is missing)",
    "credentials": "set the client secret the error names (GLUE_CLIENT_SECRET or a direct-login source's "
                   "variable) to a valid secret's Value",
    "transient": "re-run the tenant later",
    "certificate": "set GLUE_CA_FILE, GLUE_AUTHORITY_HOST and GLUE_GRAPH_URL as the error says",
    "store": "check the store (GLUE_STORE_URL) as the error says, then re-run the tenant",
    "unexpected": "read the error (the run's log holds the traceback), then re-run the tenant",
}


def failure_cause(exc: BaseException, store_failure: bool = False) -> FailureCause:
    """Why a tenant failed with `exc`. `store_failure`: the store could not be reached or refused
    the tenant's writes (only the store layer can tell its own errors)."""
    if store_failure:
        return "store"
    if isinstance(exc, TransientGraphError):
        return "transient"
    if isinstance(exc, CertificateError):
        return "certificate"
    if isinstance(exc, PermissionDeniedError):
        return "permission_missing"
    if isinstance(exc, ConsentRevokedError) or (isinstance(exc, IdentityError) and exc.code in CONSENT_CODES):
        return "consent_revoked"
    if isinstance(exc, IdentityError) and exc.code in TENANT_GONE_CODES:
        return "tenant_gone"
    if isinstance(exc, IdentityError) and exc.code in CREDENTIAL_CODES:
        return "credentials"
    return "unexpected"
