"""Upload rate limiting: a token bucket per API key (per client address when auth is off), per API process."""

from __future__ import annotations

import math
import time

from image2model.core.errors import RateLimited


class RateLimiter:
    """`per_minute` uploads per caller with bursts up to the same number; 0 turns it off."""

    def __init__(self, per_minute: int, max_callers: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, caller: str) -> None:
        """Take one token for `caller` or raise RateLimited with the seconds to wait."""
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        tokens, last = self._buckets.get(caller, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            wait = math.ceil((1.0 - tokens) / rate)
            raise RateLimited(
                f"Too many uploads: at most {self.per_minute} per minute. Try again in {wait} s.",
                {"retry_after": wait, "limit_per_minute": self.per_minute},
            )
        if len(self._buckets) >= self.max_callers and caller not in self._buckets:
            self._buckets.clear()
        self._buckets[caller] = (tokens - 1.0, now)
