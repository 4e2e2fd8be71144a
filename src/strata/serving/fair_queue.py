"""Weighted fair queuing between tenants: one FIFO per tenant, served in proportion to their weights.

Stride scheduling (the virtual-time form of WFQ): each tenant with requests waiting has a ``pass``,
the virtual time its next request finishes; the lowest pass goes next and then advances by
``1 / weight``. A tenant that starts waiting joins at the current virtual time, so it banks no
credit from being idle, and a tenant that floods only lengthens its own line: a request from a
quiet tenant is served after at most about one request of every other waiting tenant.

Costs: push O(1); pop and the position of a new request O(tenants waiting), not O(requests).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_WEIGHT = 1.0


class FairQueue(Generic[T]):
    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self._weights = dict(weights or {})
        self._lines: dict[str, deque[T]] = {}  # only tenants with requests waiting
        self._pass: dict[str, float] = {}
        self._virtual = 0.0  # the pass of the request served last
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[T]:
        for line in self._lines.values():
            yield from line

    def weight(self, tenant: str) -> float:
        return self._weights.get(tenant, DEFAULT_WEIGHT)

    def waiting(self, tenant: str) -> int:
        line = self._lines.get(tenant)
        return 0 if line is None else len(line)

    def push(self, tenant: str, item: T) -> None:
        line = self._lines.get(tenant)
        if line is None:
            line = self._lines[tenant] = deque()
            self._pass[tenant] = self._virtual + 1.0 / self.weight(tenant)
        line.append(item)
        self._length += 1

    def pop(self) -> T | None:
        """The next request in fair order (the oldest of the tenant with the lowest pass), or None."""
        if not self._lines:
            return None
        # Ties (equal weights make them common) go to the tenant with fewer waiting: the lighter user.
        tenant = min(self._pass, key=lambda name: (self._pass[name], len(self._lines[name])))
        line = self._lines[tenant]
        item = line.popleft()
        self._length -= 1
        self._virtual = self._pass[tenant]
        if line:
            self._pass[tenant] += 1.0 / self.weight(tenant)
        else:
            self._drop(tenant)
        return item

    def pop_newest(self) -> T | None:
        """Take back the newest request of the tenant using the most of its share (to make room)."""
        if not self._lines:
            return None
        tenant = max(self._lines, key=lambda name: len(self._lines[name]) / self.weight(name))
        line = self._lines[tenant]
        item = line.pop()
        self._length -= 1
        if not line:
            self._drop(tenant)
        return item

    def remove(self, tenant: str, item: T) -> bool:
        """Take out a request that gave up waiting; False if it was no longer here."""
        line = self._lines.get(tenant)
        if line is None or item not in line:
            return False
        line.remove(item)
        self._length -= 1
        if not line:
            self._drop(tenant)
        return True

    def ahead_of_new(self, tenant: str) -> int:
        """How many waiting requests a new request of ``tenant`` would be served after: its own tenant's
        line, plus from each busier tenant as many as it gets while this one's line drains (a tenant with
        no more waiting than this one loses the ties, so it gets a turn fewer)."""
        own = self.waiting(tenant)
        if own == self._length:
            return own
        rounds = (own + 1) / self.weight(tenant)  # virtual time until the new request is served
        ahead = own
        for other, line in self._lines.items():
            if other != tenant:
                turns = rounds * self.weight(other)
                ahead += min(len(line), math.ceil(turns) - 1 if len(line) > own + 1 else int(turns))
        return ahead

    def within_share(self, tenant: str) -> bool:
        """Whether ``tenant`` has fewer requests waiting than its weighted share of all that wait (False when
        nobody else waits: alone, a tenant's share is everything and it is simply the load)."""
        own = self.waiting(tenant)
        if own == self._length:
            return False
        weights = sum(self.weight(name) for name in self._lines)
        if own == 0:
            weights += self.weight(tenant)
        return own < self._length * self.weight(tenant) / weights

    def _drop(self, tenant: str) -> None:
        del self._lines[tenant]
        del self._pass[tenant]
