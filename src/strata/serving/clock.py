"""Time as the resilience policies see it: injectable, so their tests step it instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns monotonic seconds."""

MONOTONIC: Clock = time.monotonic
