"""Fault injection: the knobs a running sandbox reads on every request (Faults) and the count of
what it served and injected (SandboxStats)."""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .config import RETRY_AFTER_S, TOKEN_LIFETIME_S, SandboxConfig

DELTA_TOKEN_LIFETIME_S = 7 * 24 * 3600  # directory delta tokens live seven days
SERVER_ERRORS = {
    500: ("InternalServerError", "An internal server error occurred while processing the request."),
    502: ("BadGateway", "The gateway received an invalid response from the upstream service."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Retry the request after a delay."),
    504: ("GatewayTimeout", "The gateway did not receive a response from the upstream service in time."),
}


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

    Per tenant: `revoked` (the partner app's consent is gone: AADSTS700016, as Entra answers for
    an app it does not find in the directory), `missing_service_principal` (the app's service
    principal was removed from the tenant: 401 invalid_client AADSTS7000229, as Entra answers
    today for a removed enterprise app; it wins over `revoked`), `revoked_direct`
    (the direct-login app's admin consent is gone: its tokens carry no roles, so Graph answers
    403), `removed` (the tenant no longer exists: AADSTS90002, 401 for its tokens, gone from
    contracts and GDAP lists), `next_link_loop` (/users and /users/delta paging returns the same
    @odata.nextLink forever), `next_link_endless` (paging never ends: past the last user come
    fresh skiptokens with pages that alternate empty and a repeat of the last page; delta
    rounds never reach their deltaLink), `repeated_users` (each /users page after the first
    starts again with the last user of the page before, so a full read lists users twice),
    `report_csv` (tenant id -> "truncated" cut mid-row
    without a final newline, "malformed" rows with a wrong column count, a garbage line and a
    non-number, "empty" header only, or "no_bom" without the UTF-8 BOM), `failing_downloads`
    (tenant id -> how many of its next report downloads answer 503 before one succeeds).
    `report_layout` (tenant id -> "no_recipient_type" without the Recipient Type column, or
    "reordered" with the columns in another order) is no fault: the report stays well formed and
    is not counted in report_faults.
    """

    latency_ms: float = 0
    rate_429: float = 0
    retry_after_s: float = RETRY_AFTER_S
    rate_5xx: float = 0
    reset_rate: float = 0
    slow_rate: float = 0
    slow_s: float = 5
    fault_tenants: set[str] = field(default_factory=set)
    token_lifetime_s: int = TOKEN_LIFETIME_S
    expire_tokens_after_requests: int | None = None
    revoked: set[str] = field(default_factory=set)
    missing_service_principal: set[str] = field(default_factory=set)
    revoked_direct: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    next_link_loop: set[str] = field(default_factory=set)
    next_link_endless: set[str] = field(default_factory=set)
    repeated_users: set[str] = field(default_factory=set)
    report_csv: dict[str, str] = field(default_factory=dict)
    failing_downloads: dict[str, int] = field(default_factory=dict)
    report_layout: dict[str, str] = field(default_factory=dict)
    delta_token_lifetime_s: float = DELTA_TOKEN_LIFETIME_S
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _default_token_lifetime_s: int = field(init=False, repr=False, default=TOKEN_LIFETIME_S)

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
        for tenant_ids in (self.fault_tenants, self.revoked, self.missing_service_principal, self.revoked_direct,
                           self.removed,
                           self.next_link_loop, self.next_link_endless, self.repeated_users):
            tenant_ids.clear()
        self.report_csv.clear()
        self.report_layout.clear()

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
    # Properties named in a Graph request's $select, as "endpoint:property" (batched requests too).
    selected: Counter[str] = field(default_factory=Counter)
    throttled: int = 0  # 429s sent
    server_errors: int = 0  # injected 5xx sent
    resets: int = 0  # connections dropped without a response
    slowed: int = 0  # answers held back by slow_s
    tokens_refused: int = 0  # 401s for tokens expired by expire_tokens_after_requests
    paging_faults: int = 0  # looping or endless /users and /users/delta pages served
    report_faults: int = 0  # truncated, malformed, empty or BOM-less report downloads
    download_tokens_refused: int = 0  # report downloads refused for carrying an Authorization header
    delta_requests: int = 0  # GET /users/delta requests (initial, nextLink and deltaLink)
    tokens_issued: int = 0
    identity_errors: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0  # most requests handled at the same time

    def count_graph(self, endpoint: str, select: str | None) -> None:
        """A Graph request for an endpoint, with the properties its $select names."""
        self.graph[endpoint] += 1
        for name in (select or "").split(","):
            if name.strip():
                self.selected[f"{endpoint}:{name.strip()}"] += 1

    @property
    def faults_injected(self) -> int:
        return (self.throttled + self.server_errors + self.resets + self.slowed + self.tokens_refused
                + self.paging_faults + self.report_faults)

    def snapshot(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "graph": dict(self.graph), "selected": dict(self.selected),
                "throttled": self.throttled,
                "server_errors": self.server_errors, "resets": self.resets, "slowed": self.slowed,
                "tokens_refused": self.tokens_refused, "paging_faults": self.paging_faults,
                "report_faults": self.report_faults, "faults_injected": self.faults_injected,
                "delta_requests": self.delta_requests, "download_tokens_refused": self.download_tokens_refused,
                "tokens_issued": self.tokens_issued,
                "identity_errors": self.identity_errors, "peak_in_flight": self.peak_in_flight}

    def reset(self) -> None:
        self.requests.clear()
        self.graph.clear()
        self.selected.clear()
        self.throttled = self.server_errors = self.tokens_issued = self.identity_errors = 0
        self.resets = self.slowed = self.tokens_refused = self.paging_faults = self.report_faults = 0
        self.delta_requests = self.download_tokens_refused = 0
        self.peak_in_flight = self.in_flight
