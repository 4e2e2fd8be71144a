"""A request's deadline, honoured end to end: admission waits, every try and every fallback fit
inside it. Clients set it with the ``x-strata-deadline-ms`` header (milliseconds from arrival)."""

from __future__ import annotations

from dataclasses import dataclass

from strata.errors import DeadlineExceeded
from strata.serving.clock import MONOTONIC, Clock

TOLERANCE_S = 0.001


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float | None  # monotonic seconds; None: no deadline
    clock: Clock = MONOTONIC

    @classmethod
    def after_ms(cls, ms: float | None, *, clock: Clock = MONOTONIC) -> Deadline:
        return cls(None if ms is None else clock() + ms / 1000.0, clock)

    def remaining_s(self) -> float | None:
        return None if self.at is None else self.at - self.clock()

    def timeout_s(self, cap_s: float | None) -> float | None:
        """The time one step may take: the smaller of ``cap_s`` and what is left. Raises when nothing is."""
        remaining = self.remaining_s()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("The request's deadline passed before it could be served.")
        if remaining is None:
            return cap_s
        return remaining if cap_s is None else min(cap_s, remaining)

    def expired(self) -> bool:
        remaining = self.remaining_s()
        # The event loop's timers may fire a hair early by this clock: within 1 ms counts as passed.
        return remaining is not None and remaining <= TOLERANCE_S


NO_DEADLINE = Deadline(None)
