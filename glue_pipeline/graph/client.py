"""One Graph client for Microsoft and the sandbox alike: msal client-credential tokens per
customer tenant, requests with paging, $select, bounded retries and timeouts.

Only the authority host, the Graph base URL and the trusted CA differ between the two.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import msal
import requests
from requests.adapters import HTTPAdapter

from glue_pipeline.graph import JsonObject
from glue_pipeline.graph.errors import (
    CertificateError,
    GraphError,
    PagingError,
    TransientGraphError,
    certificate_error,
    graph_error,
    identity_error,
)
from glue_pipeline.graph.retry import UNAUTHORIZED, Headers, Retries, RetryPolicy
from glue_pipeline.settings import GraphSettings, Secret

log = logging.getLogger(__name__)

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
MAX_PAGES = 10_000  # 10 million users at $top=999: beyond that a nextLink loop is assumed
MAX_STALLED_PAGES = 20  # pages in a row without a new item: paging that never ends


MAX_BATCH = 20  # requests in one Graph JSON batch
MISSING_ANSWER: JsonObject = {"status": 502, "body": {"error": {
    "code": "BatchAnswerMissing", "message": "the batch answer left this request out"}}}
# Request headers that remove a session-wide Authorization header (requests drops None values).
NO_TOKEN: dict[str, str | None] = {"Authorization": None}
# OpenSSL's reason in a requests SSLError, e.g. "unable to get local issuer certificate".
VERIFY_FAILED = re.compile(r"certificate verify failed: (?P<reason>[^(]+?)\s*(?:\(_ssl|$)")


@dataclass(frozen=True)
class BatchCall:
    """One GET of a JSON batch: a path relative to the Graph version root, with its query."""

    path: str
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None

    def url(self) -> str:
        return f"{self.path}?{urlencode(self.params)}" if self.params else self.path


class _TimeoutSession(requests.Session):
    """A session whose every request has a timeout (msal passes none of its own), verifies
    against the session's CA even when REQUESTS_CA_BUNDLE is set (requests would let that
    variable replace the session's CA), and has at most `in_flight` requests open at once
    (the global Graph concurrency, whatever the number of threads)."""

    def __init__(self, timeout_s: float, in_flight: int) -> None:
        super().__init__()
        self._timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max(1, in_flight))

    def request(  # type: ignore[override]  # requests passes all but method and url as keywords
            self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout_s)
        kwargs.setdefault("verify", self.verify)
        with self._slots:
            return super().request(method, url, **kwargs)


OPENID_CONFIGURATION = "/v2.0/.well-known/openid-configuration"
DISCOVERY_TTL_S = 24 * 3600  # as long as msal itself keeps a discovery


class DiscoveryCache:
    """Each tenant authority's OpenID configuration (public metadata, no secret), kept in a file
    for a day. msal reads it whenever a tenant's app is built, which is once per tenant per run:
    without this cache every hourly run would ask once more per tenant."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, url: str) -> Path:
        return self.root / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.json"

    def get(self, url: str) -> bytes | None:
        try:
            entry = json.loads(self._path(url).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if entry.get("url") != url or time.time() - entry.get("fetched_at", 0) > DISCOVERY_TTL_S:
            return None
        return json.dumps(entry["body"]).encode()

    def put(self, url: str, body: JsonObject) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(url)
        temp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temp.write_text(json.dumps({"url": url, "fetched_at": time.time(), "body": body}), encoding="utf-8")
        temp.replace(path)


class _MsalHttp:
    """The HTTP client msal gets: the session, with OpenID configurations from the cache."""

    def __init__(self, session: requests.Session, discovery: DiscoveryCache | None) -> None:
        self.session, self.discovery = session, discovery

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        if self.discovery is None or not url.endswith(OPENID_CONFIGURATION):
            return self.session.get(url, **kwargs)
        cached = self.discovery.get(url)
        if cached is not None:
            response = requests.Response()
            response.status_code, response._content, response.url = 200, cached, url
            response.headers["Content-Type"] = "application/json"
            return response
        response = self.session.get(url, **kwargs)
        if response.status_code == 200:
            try:
                self.discovery.put(url, response.json())
            except (OSError, ValueError):
                log.warning("could not keep the OpenID configuration of %s", url)
        return response

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.post(url, **kwargs)

    def close(self) -> None:
        """The session belongs to the Graph client, which closes it."""


def build_session(settings: GraphSettings) -> requests.Session:
    """A pooled HTTPS session trusting exactly the configured CA (system CAs when none)."""
    session = _TimeoutSession(settings.timeout_s, settings.concurrency)
    session.verify = settings.ca_file or True
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, settings.concurrency * 2))
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "glue-pipeline"
    return session


class GraphClient:
    """Thread-safe: tenants may be read concurrently from several threads."""

    def __init__(self, settings: GraphSettings, session: requests.Session | None = None,
                 backoff_base_s: float = 0.5,
                 direct_credentials: dict[str, tuple[str, Secret, str]] | None = None,
                 discovery_cache: DiscoveryCache | None = None) -> None:
        """direct_credentials: tenant id -> (client id, secret, the variable holding the secret)
        of an app registered in that tenant (direct login); other tenants use the partner app.
        discovery_cache: keeps the tenants' OpenID configurations between runs."""
        self.settings = settings
        self.direct_credentials = dict(direct_credentials or {})
        self.session = session or build_session(settings)
        self._msal_http = _MsalHttp(self.session, discovery_cache)
        self.retry_policy = RetryPolicy(settings.max_retries, settings.max_retry_wait_s, backoff_base_s)
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._apps_lock = threading.Lock()
        self._token_locks: dict[str, threading.Lock] = {}
        self.requests_made = 0
        self._count_lock = threading.Lock()

    # --- tokens -----------------------------------------------------------------------------
    def _app(self, tenant_id: str, fresh: bool = False) -> msal.ConfidentialClientApplication:
        with self._apps_lock:
            app = self._apps.get(tenant_id)
        if app is not None and not fresh:
            return app
        authority = f"{self.settings.authority_host}/{tenant_id}"
        client_id, secret, _variable = self._credentials(tenant_id)
        try:
            app = msal.ConfidentialClientApplication(
                client_id,
                client_credential=secret.reveal(),
                authority=authority,
                http_client=self._msal_http,
                # Discovery against login.microsoftonline.com only makes sense for Microsoft itself.
                instance_discovery=self.settings.is_microsoft,
            )
        except ValueError as exc:  # msal raises ValueError when discovery answers an error
            raise self._discovery_error(tenant_id, authority, exc) from None
        except requests.RequestException as exc:
            self._raise_if_certificate(tenant_id, authority, exc)
            raise TransientGraphError(tenant_id, authority, type(exc).__name__, str(exc),
                                      "the identity platform could not be reached; re-run later") from None
        with self._apps_lock:
            self._apps[tenant_id] = app
        return app

    def _discovery_error(self, tenant_id: str, authority: str, exc: ValueError) -> GraphError:
        """msal's discovery error drops the identity platform's answer (e.g. AADSTS90002, tenant
        not found); read it again to name the cause."""
        url = f"{authority}/v2.0/.well-known/openid-configuration"
        try:
            body = self.session.get(url).json()
        except (requests.RequestException, ValueError):
            body = {}
        if not isinstance(body, dict) or "error" not in body:
            body = {"error": "invalid_authority", "error_description": str(exc)}
        return identity_error(tenant_id, url, body)

    def _raise_if_certificate(self, tenant_id: str, endpoint: str, exc: requests.RequestException) -> None:
        """A certificate that does not verify is a setting to fix, not a fault to retry."""
        found = VERIFY_FAILED.search(str(exc)) if isinstance(exc, requests.exceptions.SSLError) else None
        if found:
            error: CertificateError = certificate_error(tenant_id, endpoint, found["reason"].rstrip(". "),
                                                        self.settings.ca_file)
            raise error from exc

    def _credentials(self, tenant_id: str) -> tuple[str, Secret, str]:
        return self.direct_credentials.get(
            tenant_id, (self.settings.client_id, self.settings.client_secret, "GLUE_CLIENT_SECRET"))

    def _tenant_lock(self, tenant_id: str) -> threading.Lock:
        with self._apps_lock:
            return self._token_locks.setdefault(tenant_id, threading.Lock())

    def token(self, tenant_id: str, fresh: bool = False) -> str:
        """An access token for the tenant; msal reuses it until it is about to expire. A
        tenant's reads running side by side wait for one token rather than each asking."""
        with self._tenant_lock(tenant_id):
            return self._acquire(tenant_id, fresh)

    def _acquire(self, tenant_id: str, fresh: bool) -> str:
        app = self._app(tenant_id, fresh=fresh)
        try:
            result = app.acquire_token_for_client(scopes=GRAPH_SCOPE)
        except requests.RequestException as exc:
            self._raise_if_certificate(tenant_id, "token", exc)
            raise TransientGraphError(tenant_id, "token", type(exc).__name__, str(exc),
                                      "the identity platform could not be reached; re-run later") from None
        except msal.exceptions.MsalServiceError as exc:
            raise TransientGraphError(tenant_id, "token", "MsalServiceError", str(exc),
                                      "the identity platform is failing; re-run later") from None
        if "access_token" not in result:
            raise identity_error(tenant_id, "token", result, secret_variable=self._credentials(tenant_id)[2])
        token: str = result["access_token"]
        return token

    # --- requests ---------------------------------------------------------------------------
    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith("https://"):
            return path_or_url
        return f"{self.settings.graph_url}/{path_or_url.lstrip('/')}"

    def _refresh_token(self, tenant_id: str, retries: Retries) -> None:
        """The token expired or was revoked mid-run: get a fresh one (once per call) and go on."""
        retries.refreshed = True
        self.token(tenant_id, fresh=True)

    def request(self, tenant_id: str, path_or_url: str, params: dict[str, Any] | None = None,
                allow_redirects: bool = True, method: str = "GET",
                json_body: JsonObject | None = None, headers: dict[str, str] | None = None) -> requests.Response:
        """A call with a bearer token; the retry policy says which failures are tried again and
        after how long; an expired token is refreshed once."""
        url = self._url(path_or_url)

        def send() -> requests.Response:
            sent = {**(headers or {}), "Authorization": f"Bearer {self.token(tenant_id, fresh=False)}"}
            answer: requests.Response = self.session.request(method, url, params=params, headers=sent,
                                                             allow_redirects=allow_redirects, json=json_body)
            return answer

        return self._retrying(tenant_id, url, send, with_token=True)

    def _retrying(self, tenant_id: str, url: str, send: Callable[[], requests.Response],
                  with_token: bool) -> requests.Response:
        """`send()` until it answers below 400 or the retry policy gives up (then its error,
        naming the tenant and the endpoint); with a token, an expired one is refreshed once."""
        endpoint = urlsplit(url).path
        retries = self.retry_policy.start()
        while True:
            status: int | None = None  # none: no answer came
            answer_headers: Headers = None
            try:
                with self._count_lock:
                    self.requests_made += 1
                response = send()
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._raise_if_certificate(tenant_id, endpoint, exc)
                failure: GraphError = TransientGraphError(
                    tenant_id, endpoint, type(exc).__name__, str(exc).split("(Caused")[0],
                    "Graph could not be reached in time; re-run this tenant later")
            else:
                if response.status_code < 400:
                    return response
                status, answer_headers = response.status_code, response.headers
                failure = graph_error(tenant_id, endpoint, status, _json_or_none(response))
                if with_token and retries.refreshes(status):
                    self._refresh_token(tenant_id, retries)
                    continue
            wait = retries.next_wait([answer_headers]) if self.retry_policy.should_retry(status) else None
            if wait is None:
                raise failure
            log.info("tenant %s: %s answered %s, retry %d in %.1fs", tenant_id, endpoint,
                     failure.code, retries.attempt, wait)
            time.sleep(wait)

    def batch(self, tenant_id: str, calls: dict[str, BatchCall]) -> dict[str, JsonObject | GraphError]:
        """GET requests of one tenant sent together in one JSON batch (POST $batch, at most 20):
        each call's JSON body, or its error. Graph answers and throttles each call on its own
        (a 429 inside a 200): those calls alone are sent again, after the longest Retry-After
        among them, under the same retry policy as a lone request; an expired token is
        refreshed once."""
        if len(calls) > MAX_BATCH:
            raise ValueError(f"a Graph batch holds at most {MAX_BATCH} requests, not {len(calls)}")
        results: dict[str, JsonObject | GraphError] = {}
        pending, retries = dict(calls), self.retry_policy.start()
        while pending:
            answers = self._batch_answers(tenant_id, pending)
            again: dict[str, BatchCall] = {}
            failures: dict[str, GraphError] = {}
            retried_headers: list[Headers] = []
            for key, call in pending.items():
                answer = answers.get(key, MISSING_ANSWER)
                status = int(answer.get("status") or 502)
                if status < 400:
                    results[key] = answer.get("body") or {}
                    continue
                results[key] = failures[key] = graph_error(tenant_id, f"/{call.path}", status, answer.get("body"))
                if self.retry_policy.should_retry(status):
                    again[key] = call
                    retried_headers.append(answer.get("headers"))
                elif retries.refreshes(status):
                    again[key] = call
            wait = retries.next_wait(retried_headers) if again else None
            if wait is None:
                break
            if any(failures[k].status == UNAUTHORIZED for k in again):
                self._refresh_token(tenant_id, retries)
            log.info("tenant %s: %d of a batch's requests answered %s, retry %d in %.1fs", tenant_id,
                     len(again), sorted({failures[k].code for k in again}), retries.attempt, wait)
            time.sleep(wait)
            pending = again
        return results

    def _batch_answers(self, tenant_id: str, calls: dict[str, BatchCall]) -> dict[str, JsonObject]:
        """One POST $batch of the calls: Graph's answer to each, by the call's key."""
        body = {"requests": [{"id": key, "method": "GET", "url": "/" + call.url(),
                              **({"headers": call.headers} if call.headers else {})}
                             for key, call in calls.items()]}
        answered = self.request(tenant_id, "$batch", method="POST", json_body=body).json().get("responses", [])
        return {str(a.get("id")): a for a in answered}

    def get_json(self, tenant_id: str, path: str, params: dict[str, Any] | None = None) -> JsonObject:
        body: JsonObject = self.request(tenant_id, path, params).json()
        return body

    def get_collection(self, tenant_id: str, path: str, select: list[str] | None = None,
                       top: int | None = None) -> Iterator[JsonObject]:
        """Every item of a collection, following @odata.nextLink."""
        params: dict[str, Any] = {}
        if select:
            params["$select"] = ",".join(select)
        if top:
            params["$top"] = top
        for page in self.get_pages(tenant_id, path, params or None):
            yield from page.get("value", [])

    def get_pages(self, tenant_id: str, path: str, params: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> Iterator[JsonObject]:
        """Every page, following @odata.nextLink; a link that repeats, or paging without end, is
        an error rather than a hang."""
        first = self._url(path)
        endpoint = urlsplit(first).path
        url: str | None = first
        seen: set[str] = set()
        ids: set[object] = set()
        stalled = 0  # pages in a row that brought no new item
        while url:
            page = self.request(tenant_id, url, params, headers=headers).json()
            yield page
            url = page.get("@odata.nextLink")
            params = None  # the nextLink carries the query
            new = {item.get("id", i) for i, item in enumerate(page.get("value", []))} - ids
            ids |= new
            stalled = 0 if new else stalled + 1
            if url in seen or len(seen) >= MAX_PAGES or (url and stalled >= MAX_STALLED_PAGES):
                raise PagingError(tenant_id, endpoint, "NextLinkLoop",
                                  "@odata.nextLink repeated, or paging went on without new items "
                                  f"({len(seen) + 1} pages).",
                                  "this is a Graph fault; re-run the tenant later and report it if it "
                                  "persists")
            if url:
                seen.add(url)

    def get_report_csv(self, tenant_id: str, path: str) -> str:
        """A report: Graph answers 302 to a pre-authenticated download on another host, fetched
        without the token under the same retry policy."""
        response = self.request(tenant_id, path, allow_redirects=False)
        if response.is_redirect:
            location = response.headers["Location"]
            # The bearer token is for Graph alone: the download goes out without an Authorization
            # header whatever the session carries. It is a request like any other: retried, and
            # its failure named.
            download = self._retrying(tenant_id, location, lambda: self.session.get(location, headers=NO_TOKEN),
                                      with_token=False)
            return download.content.decode("utf-8-sig")
        return response.content.decode("utf-8-sig")


def _json_or_none(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
