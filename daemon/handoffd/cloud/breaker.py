"""A circuit breaker per cloud target: stop calling a target that keeps failing.

    closed ──N failures in a row──▶ open ──open_for_s passes──▶ half_open
      ▲                              ▲                              │ one probe call
      └────────── probe succeeds ────┼──────── probe fails ─────────┘

While open every call fails fast; in half_open exactly one call (the probe) goes through and the
others fail fast until it ends. A call that ends without a verdict (the caller's deadline ran
out, the caller went away) releases the probe slot without changing the state.

The breaker is plain state driven from the event loop (no locks needed); the clock is
injectable so that tests can step time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        failures_to_open: int,
        open_for_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_to_open < 1:
            raise ValueError(f"failures_to_open must be at least 1, got {failures_to_open}")
        self._failures_to_open = failures_to_open
        self._open_for_s = open_for_s
        self._clock = clock
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probe_in_flight or self._clock() >= self._opened_at + self._open_for_s:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    def retry_in_s(self) -> float:
        """Seconds until the next probe may go (0 when calls may go now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._open_for_s - self._clock())

    def try_acquire(self) -> Permit | None:
        """May a call go now? ``None``: fail fast. A permit must end with exactly one of
        :meth:`record_success`, :meth:`record_failure` or :meth:`release`."""
        state = self.state
        if state == "closed":
            return Permit(probe=False)
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return Permit(probe=True)
        return None

    def record_success(self, permit: Permit) -> bool:
        """The target answered. Returns True when this closed an open breaker."""
        was_open = self._opened_at is not None
        self._consecutive_failures = 0
        self._opened_at = None
        if permit.probe or was_open:
            self._probe_in_flight = False
        return was_open

    def record_failure(self, permit: Permit) -> bool:
        """The target failed. Returns True when this opened (or re-opened) the breaker."""
        self._consecutive_failures += 1
        if permit.probe:
            self._probe_in_flight = False
            self._opened_at = self._clock()
            return True
        if self._opened_at is None and self._consecutive_failures >= self._failures_to_open:
            self._opened_at = self._clock()
            return True
        return False

    def release(self, permit: Permit) -> None:
        """The call ended without telling whether the target works."""
        if permit.probe:
            self._probe_in_flight = False


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call; ``probe`` is True for the half-open trial call."""

    probe: bool
