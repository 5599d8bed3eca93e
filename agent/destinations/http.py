"""HTTP error classification and retries shared by HTTP transports (tus).

The one place where ``requests`` exceptions and status codes become the agent's
errors: connection problems, timeouts, 408, 429 and 5xx are transient (retried here
with exponential backoff and jitter, honouring Retry-After, then the destination is
paused); 401/403 mean the credentials were rejected; other 4xx concern one item.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import requests
from tenacity import RetryCallState, retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from agent.destinations.moving import login_hint
from agent.errors import AuthError, ItemError, TransientError

T = TypeVar("T")
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
ATTEMPTS = 4
MAX_RETRY_AFTER_SECONDS = 120.0


class RetryableHTTPError(TransientError):
    def __init__(self, message: str, retry_after_seconds: float | None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


def http_date(value: str | None) -> float | None:
    """Seconds since the epoch for an HTTP date (Date, Retry-After); None if absent or malformed."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def retry_after(response: requests.Response) -> float | None:
    return retry_after_value(response.headers.get("Retry-After"))


def retry_after_value(value: str | None) -> float | None:
    """Seconds a Retry-After value (seconds or an HTTP date) asks to wait, capped; None if absent."""
    if not value:
        return None
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        moment = http_date(value)
        return None if moment is None else min(max(moment - time.time(), 0.0), MAX_RETRY_AFTER_SECONDS)


def check_response(response: requests.Response, destination: str, credential: str | None, what: str) -> None:
    """Raise the agent's error for an unsuccessful *response*; return if it succeeded."""
    status = response.status_code
    if status < 400:
        return
    if status in (401, 403):
        hint = login_hint(credential)
        raise AuthError(f"credentials rejected for {destination} (HTTP {status}): {hint}")
    if status in TRANSIENT_STATUS:
        raise RetryableHTTPError(f"{destination}: {what}: HTTP {status}", retry_after(response))
    raise ItemError(f"{destination}: {what}: HTTP {status} {response.reason}")


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RetryableHTTPError) and error.retry_after_seconds is not None:
        return error.retry_after_seconds
    return float(wait_random_exponential(multiplier=0.5, max=10)(state))


def with_retries(
    function: Callable[[], T], destination: str, what: str, on_retry: Callable[[str | None], None] | None = None
) -> T:
    """Call *function*; retry transient failures a few times before giving up as transient.

    *on_retry* hears each retry ("HEAD: ReadTimeout, attempt 2") and None on success.
    """
    report = on_retry or (lambda note: None)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        report(f"{what}: {error}, attempt {state.attempt_number + 1} of {ATTEMPTS}")

    @retry(
        retry=retry_if_exception_type(TransientError),
        wait=_wait,
        stop=stop_after_attempt(ATTEMPTS),
        reraise=True,
        before_sleep=before_sleep,
    )
    def attempt() -> T:
        try:
            return function()
        except (requests.ConnectionError, requests.Timeout) as error:
            raise TransientError(f"{destination}: {what}: {type(error).__name__}") from None
        except requests.exceptions.ChunkedEncodingError:
            raise TransientError(f"{destination}: {what}: connection broken mid-response") from None
        except requests.RequestException as error:  # garbled headers, undecodable body, ...
            raise TransientError(f"{destination}: {what}: bad reply ({type(error).__name__})") from None

    result = attempt()
    report(None)
    return result
