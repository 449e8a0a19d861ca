"""Bounded state for the agent's pure core: a table whose entries expire and whose size
is capped (the oldest entry goes first), and a token bucket. No clock is read: every
call takes ``now``. An attacker who floods handshakes can only push out entries older
than everything it sent; a real entry is needed within one round trip of its creation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringTable(Generic[K, V]):
    def __init__(self, capacity: int, lifetime: float):
        if capacity < 1 or lifetime <= 0:
            raise ValueError("an expiring table needs a positive capacity and lifetime")
        self.capacity, self.lifetime = capacity, lifetime
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self.evicted = 0  # pushed out by newer entries before they expired

    def put(self, key: K, value: V, now: float) -> None:
        self.expire(now)
        self._items.pop(key, None)
        self._items[key] = (now + self.lifetime, value)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
            self.evicted += 1

    def get(self, key: K, now: float) -> V | None:
        item = self._items.get(key)
        if item is None or item[0] <= now:
            return None
        return item[1]

    def pop(self, key: K, now: float) -> V | None:
        item = self._items.pop(key, None)
        if item is None or item[0] <= now:
            return None
        return item[1]

    def expire(self, now: float) -> None:
        while self._items:
            key, (until, _) = next(iter(self._items.items()))
            if until > now:
                # Insertion order is expiry order (one lifetime for all).
                return
            del self._items[key]

    def next_expiry(self) -> float | None:
        """When the oldest entry expires (None: empty)."""
        return next(iter(self._items.values()))[0] if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    def keys(self, now: float) -> list[K]:
        return [k for k, (until, _) in self._items.items() if until > now]

    def items(self, now: float) -> list[tuple[K, V]]:
        return [(k, v) for k, (until, v) in self._items.items() if until > now]

    def __contains__(self, key: K) -> bool:
        return key in self._items


@dataclass
class TokenBucket:
    """``burst`` at once, then ``rate`` per second."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
