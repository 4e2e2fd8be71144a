"""Ray's resource numbers (fractional CPUs, MiB) as Kubernetes quantities."""

from __future__ import annotations

import math


def cpu_quantity(cpus: float) -> str:
    """Whole cores as '2', fractions in millicores ('500m'): both are valid Kubernetes CPU quantities."""
    millicores = math.ceil(cpus * 1000 - 1e-9)
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory_quantity(memory_mb: int) -> str:
    return f"{memory_mb}Mi"


def fits(capacity: float, need: float) -> int:
    """How many ``need``s fit in ``capacity`` (the epsilon keeps 1.0 / 0.1 from counting 9)."""
    return math.floor(capacity / need + 1e-9)
