"""The failures of a market-data call, as RequestResponseIO's public exception classes so that any
repeater understands them: quota (429) and timeouts are Beam's own transient kinds; 5xx and
connection errors are ``MarketDataUnavailable``; everything permanent is ``MarketDataError``."""

from __future__ import annotations

from apache_beam.io.requestresponse import (
    UserCodeExecutionException,
    UserCodeQuotaException,
    UserCodeTimeoutException,
)


class MarketDataError(UserCodeExecutionException):
    """A permanent failure for this request: retrying would give the same answer."""


class MarketDataNotFound(MarketDataError):
    """404: the service has no data for that zip code and property type."""


class MalformedMarketData(MarketDataError):
    """The service answered 200 with a body that is not a valid market record."""


class CircuitOpenError(MarketDataError):
    """The circuit breaker is open: the call was not made."""


class MarketDataUnavailable(UserCodeExecutionException):
    """A transient failure (5xx, connection refused/reset): worth retrying."""


class MarketDataTimeout(UserCodeTimeoutException):
    """The call did not complete within the per-call timeout."""


class MarketDataRateLimited(UserCodeQuotaException):
    """429: the service asks us to slow down, ``retry_after_s`` (from Retry-After) if it said."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def is_transient(exc: BaseException) -> bool:
    """The retry filter: timeouts (ours and Beam's), 429, 5xx and connection errors."""
    return isinstance(
        exc, UserCodeTimeoutException | UserCodeQuotaException | MarketDataUnavailable
    )


def is_health_neutral(exc: BaseException) -> bool:
    """A failure that is a correct answer (404), not a sign of ill health for the breaker."""
    return isinstance(exc, MarketDataNotFound)
