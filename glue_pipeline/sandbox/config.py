"""What a sandbox starts from: the world it serves and the fault settings it starts with."""

from __future__ import annotations

from dataclasses import dataclass, field

from .world import World

DELTA_PAGE_SIZE = 200  # users per /users/delta page unless Prefer: odata.maxpagesize=N asks otherwise
RETRY_AFTER_S = 1  # what Retry-After asks of a throttled client, unless configured otherwise
TOKEN_LIFETIME_S = 3599  # expires_in of access tokens, unless configured otherwise


@dataclass
class SandboxConfig:
    world: World
    latency_ms: float = 0
    rate_429: float = 0  # fraction of Graph requests answered 429
    retry_after_s: float = RETRY_AFTER_S
    rate_5xx: float = 0  # fraction of Graph requests answered 500/502/503/504
    revoked: set[str] = field(default_factory=set)  # tenant ids, on top of consent="revoked"
    fault_seed: int = 0
    token_lifetime_s: int = TOKEN_LIFETIME_S  # initial value of Faults.token_lifetime_s
    delta_page_size: int = DELTA_PAGE_SIZE  # users per /users/delta page without a Prefer header
