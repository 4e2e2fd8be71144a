"""Progressive rollout of a canary version: pure analysis over an injectable clock.

Each step sets the canary's weight (e.g. 5 → 25 → 50 → 100 %). On every evaluation:
1. once the canary has ``min_requests`` in the window, compare it with stable: an error rate
   higher by more than ``max_error_rate_increase``, or a p99 above stable's x ``max_p99_ratio``
   (and by more than ``p99_slack_ms``), rolls back at once - no need to wait for the window end;
2. when a step's window has passed with enough canary requests and no regression, advance
   (if ``auto_promote``); reaching 100 % completes the rollout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from strata.serving.clock import MONOTONIC, Clock
from strata.serving.outcomes import WindowStats
from strata.spec.resilience import RolloutSpec


class RolloutPhase(StrEnum):
    RUNNING = "running"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


@dataclass(slots=True)
class RolloutEvent:
    at: float
    what: str


@dataclass
class Rollout:
    stable: str
    canary: str
    spec: RolloutSpec
    clock: Clock = MONOTONIC
    phase: RolloutPhase = RolloutPhase.RUNNING
    step: int = 0
    reason: str = ""
    started_at: float = 0.0
    step_started_at: float = 0.0
    ended_at: float | None = None
    events: list[RolloutEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started_at = self.step_started_at = self.clock()
        self._log(f"started: canary '{self.canary}' at {self.canary_weight:g}%")

    @property
    def canary_weight(self) -> float:
        if self.phase is RolloutPhase.ROLLED_BACK:
            return 0.0
        if self.phase is RolloutPhase.PROMOTED:
            return 100.0
        return self.spec.steps[self.step]

    def weights(self) -> dict[str, float]:
        return {self.stable: 100.0 - self.canary_weight, self.canary: self.canary_weight}

    def evaluate(self, stable: WindowStats, canary: WindowStats) -> bool:
        """Judge the current windows; True when the weights changed."""
        if self.phase is not RolloutPhase.RUNNING:
            return False
        regression = self._regression(stable, canary)
        if regression:
            self.roll_back(regression)
            return True
        window_done = self.clock() - self.step_started_at >= self.spec.window_s
        if window_done and self.spec.auto_promote and canary.requests >= self.spec.min_requests:
            self.promote(f"healthy for {self.spec.window_s:g} s ({canary.requests} canary requests)")
            return True
        return False

    def promote(self, why: str = "promoted by an operator") -> None:
        if self.phase is not RolloutPhase.RUNNING:
            raise ValueError(f"the rollout is {self.phase.value}")
        self.step += 1
        self.step_started_at = self.clock()
        if self.step >= len(self.spec.steps) or self.spec.steps[self.step] >= 100:
            self.step = len(self.spec.steps) - 1
            self.phase = RolloutPhase.PROMOTED
            self.ended_at = self.clock()
            self._log(f"promoted: canary '{self.canary}' at 100% ({why})")
        else:
            self._log(f"advanced to {self.canary_weight:g}% ({why})")

    def roll_back(self, reason: str) -> None:
        if self.phase is not RolloutPhase.RUNNING:
            raise ValueError(f"the rollout is {self.phase.value}")
        self.phase = RolloutPhase.ROLLED_BACK
        self.reason = reason
        self.ended_at = self.clock()
        self._log(f"rolled back: {reason}")

    def _regression(self, stable: WindowStats, canary: WindowStats) -> str:
        if canary.requests < self.spec.min_requests:
            return ""
        if canary.error_rate > stable.error_rate + self.spec.max_error_rate_increase:
            return f"canary error rate {canary.error_rate:.1%} vs stable {stable.error_rate:.1%}"
        if canary.p99_s is not None and stable.p99_s is not None:
            too_slow = canary.p99_s > stable.p99_s * self.spec.max_p99_ratio
            if too_slow and (canary.p99_s - stable.p99_s) * 1000 > self.spec.p99_slack_ms:
                return f"canary p99 {canary.p99_s * 1000:.0f} ms vs stable {stable.p99_s * 1000:.0f} ms"
        return ""

    def _log(self, what: str) -> None:
        self.events.append(RolloutEvent(self.clock(), what))

    def status(self) -> dict[str, object]:
        return {
            "stable": self.stable,
            "canary": self.canary,
            "phase": self.phase.value,
            "canary_weight": self.canary_weight,
            "step": self.step,
            "steps": self.spec.steps,
            "window_s": self.spec.window_s,
            "reason": self.reason,
            "elapsed_s": round((self.ended_at or self.clock()) - self.started_at, 3),
            "events": [{"after_s": round(e.at - self.started_at, 3), "what": e.what} for e in self.events],
        }
