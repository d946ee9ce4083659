"""The Graph client's retry policy on answers built here as real requests Responses (and the
headers of an answer inside a JSON batch): which are retried, how long each waits, how many
retries a call gets. The sandbox sends Retry-After in seconds only, so the HTTP-date form is
checked here; test_graph_client and test_reliability check the policy in use over HTTPS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from glue_pipeline.graph.retry import RetryPolicy, retry_after_s

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def answer(status: int, retry_after: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)  # e.g. "Mon, 02 Mar 2026 09:30:30 GMT"


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_throttling_and_server_faults_are_retried(status: int) -> None:
    assert RetryPolicy(max_retries=3, max_retry_wait_s=60).should_retry(answer(status).status_code)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 501])
def test_other_errors_are_not(status: int) -> None:
    assert not RetryPolicy(max_retries=3, max_retry_wait_s=60).should_retry(answer(status).status_code)


def test_an_answer_that_never_came_is_retried() -> None:
    assert RetryPolicy(max_retries=3, max_retry_wait_s=60).should_retry(None)


def test_retry_after_in_seconds_is_waited_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=3, max_retry_wait_s=60)
    assert policy.get_delay_time(0, answer(429, "7").headers) == 7.0
    assert policy.get_delay_time(4, answer(503, "7").headers) == 7.0, "Retry-After outranks the backoff"
    assert policy.get_delay_time(0, answer(429, "600").headers) == 60.0
    assert policy.get_delay_time(0, answer(429, "0").headers) == 0.0


def test_retry_after_as_an_http_date_is_waited_up_to_the_cap() -> None:
    assert retry_after_s(answer(429, http_date(NOW + timedelta(seconds=30))).headers, now=NOW) == 30.0
    assert retry_after_s(answer(429, http_date(NOW - timedelta(minutes=5))).headers, now=NOW) == 0.0, \
        "a moment already past asks for no wait"
    policy = RetryPolicy(max_retries=3, max_retry_wait_s=60)
    soon = answer(429, http_date(datetime.now(UTC) + timedelta(seconds=30))).headers
    assert 28.5 <= policy.get_delay_time(0, soon) <= 30.0, "the wait runs from now to the date given"
    later = answer(503, http_date(datetime.now(UTC) + timedelta(hours=1))).headers
    assert policy.get_delay_time(0, later) == 60.0


def test_a_batch_answers_retry_after_is_read_whatever_its_case() -> None:
    policy = RetryPolicy(max_retries=3, max_retry_wait_s=60)
    assert policy.get_delay_time(0, {"retry-after": "3"}) == 3.0
    assert policy.get_delay_time(0, {"Retry-After": http_date(datetime.now(UTC) + timedelta(hours=1))}) == 60.0


@pytest.mark.parametrize("retry_after", [None, "", "soon", "nan", "Mon, 99 Foo 2026"])
def test_without_a_readable_retry_after_the_backoff_doubles_with_jitter(retry_after: str | None) -> None:
    policy = RetryPolicy(max_retries=10, max_retry_wait_s=60, backoff_base_s=0.5)
    headers = answer(503, retry_after).headers
    for attempt in range(4):
        backoff = 0.5 * 2 ** attempt
        assert all(backoff <= policy.get_delay_time(attempt, headers) <= 2 * backoff for _ in range(20))
    assert policy.get_delay_time(9, headers) == 60.0, "the backoff is capped too"
    assert 0.5 <= policy.get_delay_time(0, None) <= 1.0, "no answer came: the backoff"


def test_a_call_gets_max_retries_waits_then_none() -> None:
    retries = RetryPolicy(max_retries=3, max_retry_wait_s=60).start()
    waits = [retries.next_wait([answer(429, "2").headers]) for _ in range(4)]
    assert waits == [2.0, 2.0, 2.0, None]
    assert retries.attempt == 3
    assert RetryPolicy(max_retries=0, max_retry_wait_s=60).start().next_wait([None]) is None


def test_answers_retried_together_wait_for_the_longest_retry_after() -> None:
    retries = RetryPolicy(max_retries=3, max_retry_wait_s=60).start()
    throttled = [answer(429, "1").headers, {"Retry-After": "4"}, answer(429, "2").headers]
    assert retries.next_wait(throttled) == 4.0
    assert retries.next_wait([]) == 0.0, "only a refreshed token to wait for: no wait"
    assert retries.attempt == 2


def test_a_401_gets_one_fresh_token_per_call() -> None:
    policy = RetryPolicy(max_retries=3, max_retry_wait_s=60)
    retries = policy.start()
    assert retries.refreshes(401) and not retries.refreshes(403)
    retries.refreshed = True
    assert not retries.refreshes(401)
    assert policy.start().refreshes(401), "the next call may refresh again"
