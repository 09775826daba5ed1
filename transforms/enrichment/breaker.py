"""A thread-safe circuit breaker (no Beam) and the per-process registry that lets every DoFn
instance and thread of a worker process share one breaker per service."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED = "CLOSED"
OPEN = "OPEN"
HALF_OPEN = "HALF_OPEN"


class CircuitBreaker:
    """Stops calling a service that keeps failing.

    CLOSED: calls go through; ``failure_threshold`` consecutive failures open it. OPEN: calls are
    refused until ``cooldown_s`` have passed, then it is HALF_OPEN: exactly one trial call goes
    through (others are refused while it runs); its success closes the circuit, its failure opens
    it for another cool-down. Methods return the state transition they caused (or None) so the
    caller can count it on its own thread.
    """

    def __init__(
        self,
        failure_threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if cooldown_s <= 0:
            raise ValueError(f"cooldown_s must be > 0, got {cooldown_s}")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def allow(self) -> tuple[bool, str | None]:
        """Whether a call may go now, and the transition this caused (OPEN → HALF_OPEN)."""
        with self._lock:
            if self._state == CLOSED:
                return True, None
            if self._state == OPEN:
                if self._clock() - self._opened_at < self.cooldown_s:
                    return False, None
                self._state = HALF_OPEN
                self._trial_in_flight = True
                return True, HALF_OPEN
            # HALF_OPEN: only the one trial call.
            if self._trial_in_flight:
                return False, None
            self._trial_in_flight = True
            return True, None

    def record_success(self) -> str | None:
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            if self._state != CLOSED:
                self._state = CLOSED
                return CLOSED
            return None

    def record_failure(self) -> str | None:
        with self._lock:
            self._trial_in_flight = False
            self._failures += 1
            if self._state == HALF_OPEN or (
                self._state == CLOSED and self._failures >= self.failure_threshold
            ):
                self._state = OPEN
                self._opened_at = self._clock()
                return OPEN
            return None


_BREAKERS: dict[tuple[str, int, float], CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def circuit_breaker(circuit_id: str, failure_threshold: int, cooldown_s: float) -> CircuitBreaker:
    """The process-wide breaker of ``circuit_id``: every DoFn instance (and thread) of a worker
    process shares it, so one dead service opens the circuit for all of them."""
    key = (circuit_id, failure_threshold, cooldown_s)
    with _BREAKERS_LOCK:
        if key not in _BREAKERS:
            _BREAKERS[key] = CircuitBreaker(failure_threshold, cooldown_s)
        return _BREAKERS[key]
