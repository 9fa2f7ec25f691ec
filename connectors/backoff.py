"""Capped exponential backoff with jitter, for every place the connector waits to try again.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

Each delay doubles up to `cap`, and is drawn from its upper half ("equal jitter"): connectors
refused or cut off together do not come back in step, and a delay never shrinks to nothing,
so a fault that repeats at once cannot turn a retry loop into a spin.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    def __init__(
        self, first: float = 0.5, cap: float = 30.0, *, rng: Callable[[], float] = random.random
    ) -> None:
        self.first = first
        self.cap = max(cap, first)
        self.attempts = 0
        self._rng = rng

    def next(self) -> float:
        """The delay before the next attempt (and count this one)."""
        ceiling = min(self.cap, self.first * 2.0 ** min(self.attempts, 32))
        self.attempts += 1
        return float(ceiling / 2 + self._rng() * ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0
