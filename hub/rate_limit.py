"""Per-tenant publish rate limit: one token bucket per sender, in each router process.

A tenant may publish `rate` events per second sustained and `burst` at once. What exceeds it
is refused (`rate_limited`) before it is recorded, so the sender can send the same event again
later. Each router keeps its own buckets: with N routers a tenant's effective limit is up to N
times `rate`, which bounds a flood without a shared counter on the hot path."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from schemas.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> None:
        """Spend one token of `key`'s bucket, or raise `RateLimited`."""
        if not self.enabled:
            return
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            raise RateLimited(
                f"{key} publishes faster than the {self.rate:g} events per second this hub allows; "
                "send again later"
            )
        bucket.tokens -= 1.0
