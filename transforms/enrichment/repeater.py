"""``ResilientRepeater``: a RequestResponseIO ``Repeater`` that retries transient failures, consults
a per-process circuit breaker before every attempt, and turns a final failure into the caller's
fallback response instead of raising.

Beam's ``Enrichment`` and ``RequestResponseIO`` have no failure output (an exception out of the
repeater fails the bundle), so degrading has to happen here. The repeater is generic: it knows
the failures only by RequestResponseIO's exception classes, the retry filter ``is_transient`` and
the ``is_health_neutral`` test (a failure that says nothing about the service's health), and the
caller's fallback only through the ``FallbackCaller`` protocol.

``repeat`` runs on the DoFn's thread while each attempt runs in a fresh executor thread (see
``call_with_timeout``); metric updates made on that executor thread would be lost, so every
counter is incremented here, between attempts.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from apache_beam.io.requestresponse import (
    Caller,
    Repeater,
    UserCodeExecutionException,
    UserCodeTimeoutException,
)
from apache_beam.metrics import Metrics
from apache_beam.utils import retry

from transforms.enrichment.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, circuit_breaker
from transforms.enrichment.errors import (
    CircuitOpenError,
    MarketDataRateLimited,
    is_health_neutral,
    is_transient,
)
from transforms.enrichment.rules import COUNTER_NAMESPACE

_LOGGER = logging.getLogger(__name__)


@runtime_checkable
class FallbackCaller(Protocol):
    """A caller that can say what stands in for a call of ``request`` that failed for good."""

    def fallback_response(self, request: Any, reason: str, exc: BaseException) -> Any: ...


def call_with_timeout(caller: Caller, request: Any, timeout_s: float) -> Any:
    """``caller(request)`` on a fresh thread, ``UserCodeTimeoutException`` if it has not answered
    within ``timeout_s`` (a ``RuntimeError`` becomes ``UserCodeExecutionException``).

    As in Beam's own repeaters the executor is shut down waiting, so a call that overran still
    finishes (its own HTTP timeout bounds it) before the next attempt starts: the caller's client
    is never used by two attempts at once.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        future = executor.submit(caller, request)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError as exc:
            raise UserCodeTimeoutException(f"no answer within {timeout_s} s") from exc
        except RuntimeError as exc:  # as Beam's repeaters: a failed call, not a failed bundle
            raise UserCodeExecutionException(f"could not complete request: {exc}") from exc


@dataclass(frozen=True)
class ResiliencePolicy:
    """Retries, backoff and circuit breaking of the market-data calls."""

    max_retries: int = 2
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    failure_threshold: int = 5
    cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError(
                "need 0 <= initial_backoff_s <= max_backoff_s, got "
                f"{self.initial_backoff_s} and {self.max_backoff_s}"
            )
        # Validates failure_threshold and cooldown_s with the breaker's own messages.
        CircuitBreaker(self.failure_threshold, self.cooldown_s)


class _Counters:
    """The repeater's counters: ``calls`` (attempts made), ``call_failures`` (attempts that
    failed, 404 included), ``retries``, ``retry_after_wait_ms`` (time waited honouring
    Retry-After), ``circuit_rejected`` (attempts refused by an open circuit),
    ``circuit_opened``/``circuit_half_opened``/``circuit_closed``."""

    def __init__(self) -> None:
        counter = Metrics.counter
        self.calls = counter(COUNTER_NAMESPACE, "calls")
        self.call_failures = counter(COUNTER_NAMESPACE, "call_failures")
        self.retries = counter(COUNTER_NAMESPACE, "retries")
        self.circuit_rejected = counter(COUNTER_NAMESPACE, "circuit_rejected")
        self.retry_after_wait_ms = counter(COUNTER_NAMESPACE, "retry_after_wait_ms")
        self.transitions = {
            OPEN: counter(COUNTER_NAMESPACE, "circuit_opened"),
            HALF_OPEN: counter(COUNTER_NAMESPACE, "circuit_half_opened"),
            CLOSED: counter(COUNTER_NAMESPACE, "circuit_closed"),
        }

    def transition(self, new_state: str | None) -> None:
        if new_state is not None:
            self.transitions[new_state].inc()
            _LOGGER.info("market-data circuit is now %s", new_state)


class ResilientRepeater(Repeater):
    """Breaker check, retried attempts (Beam's ``retry.with_exponential_backoff``, transient
    failures only, Retry-After honoured up to ``max_backoff_s``), fallback instead of raising.

    A caller that is not a ``FallbackCaller`` gets its final failure raised, as with Beam's own
    repeaters. ``circuit_id`` names the process-wide breaker (transforms with the same id share
    one).
    """

    def __init__(self, circuit_id: str, policy: ResiliencePolicy) -> None:
        self.circuit_id = circuit_id
        self.policy = policy
        self._counters: _Counters | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_counters": None}

    def repeat(
        self, caller: Caller, request: Any, timeout: float, metrics_collector: Any = None
    ) -> Any:
        if self._counters is None:
            self._counters = _Counters()
        counters = self._counters
        policy = self.policy
        breaker = circuit_breaker(self.circuit_id, policy.failure_threshold, policy.cooldown_s)
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            allowed, transition = breaker.allow()
            counters.transition(transition)
            if not allowed:
                counters.circuit_rejected.inc()
                raise CircuitOpenError("circuit open: market-data service failing, call skipped")
            if attempts:
                counters.retries.inc()
            attempts += 1
            counters.calls.inc()
            try:
                response = call_with_timeout(caller, request, timeout)
            except Exception as exc:
                counters.call_failures.inc()
                if is_health_neutral(exc):
                    counters.transition(breaker.record_success())
                    raise
                counters.transition(breaker.record_failure())
                retry_left = attempts <= policy.max_retries
                if isinstance(exc, MarketDataRateLimited) and exc.retry_after_s and retry_left:
                    # Honour Retry-After (capped) on top of the backoff that follows.
                    wait_s = min(exc.retry_after_s, policy.max_backoff_s)
                    counters.retry_after_wait_ms.inc(round(wait_s * 1000))
                    time.sleep(wait_s)
                raise
            counters.transition(breaker.record_success())
            return response

        retried = retry.with_exponential_backoff(
            num_retries=policy.max_retries,
            initial_delay_secs=policy.initial_backoff_s,
            max_delay_secs=policy.max_backoff_s,
            retry_filter=is_transient,
            logger=_LOGGER.debug,
        )(attempt)
        try:
            return retried()
        except UserCodeExecutionException as exc:
            if not isinstance(caller, FallbackCaller):
                raise
            reason = f"{type(exc).__name__}: {exc}"
            if attempts > 1:
                reason += f" (after {attempts} attempts)"
            return caller.fallback_response(request, reason, exc)
