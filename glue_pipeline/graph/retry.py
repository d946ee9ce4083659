"""Which Graph answers are tried again, and how long the client waits first: one policy for lone
requests and for the requests inside a JSON batch (after kiota-http's RetryHandler)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from requests.structures import CaseInsensitiveDict

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
UNAUTHORIZED = 401

# An answer's headers: a Response's, or the "headers" object of an answer inside a JSON batch.
Headers = Mapping[str, object] | None


@dataclass(frozen=True)
class RetryPolicy:
    """Throttling (429), server faults (5xx) and answers that never came are retried at most
    `max_retries` times, each after what Retry-After asks or else an exponential backoff with
    jitter, never longer than `max_retry_wait_s`. A 401 gets one fresh token per call."""

    max_retries: int
    max_retry_wait_s: float
    backoff_base_s: float = 0.5

    def should_retry(self, status: int | None) -> bool:
        """status None: no answer came (a dropped connection or a timeout)."""
        return status is None or status in RETRYABLE_STATUS

    def get_delay_time(self, attempt: int, headers: Headers = None) -> float:
        """Seconds to wait before retry `attempt + 1`; headers None: no answer came."""
        asked = retry_after_s(headers)
        if asked is None:
            backoff = self.backoff_base_s * 2 ** attempt
            asked = backoff + random.uniform(0, backoff)
        return min(asked, self.max_retry_wait_s)

    def start(self) -> Retries:
        """The retry count of one call."""
        return Retries(self)


@dataclass
class Retries:
    """One call's retries, counted against its policy's `max_retries`."""

    policy: RetryPolicy
    attempt: int = 0  # retries granted so far
    refreshed: bool = False

    def refreshes(self, status: int) -> bool:
        """Whether this answer is a 401 that still gets the call's one fresh token."""
        return status == UNAUTHORIZED and not self.refreshed

    def next_wait(self, retried_headers: Iterable[Headers] = ()) -> float | None:
        """The wait before the next attempt, the longest any retried answer calls for (their
        headers; none: no wait), counted as one retry; None once every retry is spent."""
        if self.attempt >= self.policy.max_retries:
            return None
        wait = max((self.policy.get_delay_time(self.attempt, h) for h in retried_headers), default=0.0)
        self.attempt += 1
        return wait


def retry_after_s(headers: Headers, now: datetime | None = None) -> float | None:
    """The seconds a Retry-After header asks for, as delay-seconds or as an HTTP-date; None when
    there is none or it cannot be read. A date in the past asks for no wait."""
    value = CaseInsensitiveDict(headers or {}).get("Retry-After")
    if not value:
        return None
    seconds: float | None
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = _seconds_until(str(value), now or datetime.now(UTC))
    if seconds is None or math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": the zone is unknown; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()
