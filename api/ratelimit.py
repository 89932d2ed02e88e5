"""Upload rate limiting: a token bucket per API key (per client address when auth is off). Embedded mode keeps the
buckets in the API process; with Redis they live in Redis, so the limit holds across every API process."""

from __future__ import annotations

import math
import time
from typing import Protocol

from image2model.core.errors import RateLimited
from image2model.core.settings import Settings

# KEYS[1] bucket; ARGV: capacity, refill per second. Returns {allowed, tokens left * 1000}. Redis's clock, so hosts
# with skewed clocks share one bucket fairly.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]) or capacity, tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - ts) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, math.floor(tokens * 1000)}
"""


class Limiter(Protocol):
    per_minute: int

    def check(self, caller: str) -> None:
        """Take one upload token for `caller` or raise RateLimited with the seconds to wait."""


def _refuse(per_minute: int, tokens: float) -> RateLimited:
    wait = math.ceil((1.0 - tokens) / (per_minute / 60.0))
    return RateLimited(
        f"Too many uploads: at most {per_minute} per minute. Try again in {wait} s.",
        {"retry_after": wait, "limit_per_minute": per_minute},
    )


class RateLimiter:
    """`per_minute` uploads per caller with bursts up to the same number, in this process; 0 turns it off."""

    def __init__(self, per_minute: int, max_callers: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, caller: str) -> None:
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        tokens, last = self._buckets.get(caller, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            raise _refuse(self.per_minute, tokens)
        if len(self._buckets) >= self.max_callers and caller not in self._buckets:
            self._buckets.clear()
        self._buckets[caller] = (tokens - 1.0, now)


class RedisRateLimiter:
    """The same bucket kept in Redis (one atomic script per upload), shared by every API process and host.
    Idle buckets expire once they would be full again."""

    def __init__(self, per_minute: int, url: str) -> None:
        import redis

        self.per_minute = per_minute
        self._client = redis.Redis.from_url(url)
        self._take = self._client.register_script(_TAKE)

    def check(self, caller: str) -> None:
        if self.per_minute <= 0:
            return
        allowed, left = self._take(
            keys=[f"i2m:ratelimit:{caller}"], args=[self.per_minute, self.per_minute / 60.0]
        )
        if not allowed:
            raise _refuse(self.per_minute, int(left) / 1000)


def build_limiter(settings: Settings) -> Limiter:
    """The limiter the settings select: shared through Redis when configured, else per process."""
    if settings.redis_url and settings.rate_limit_per_minute > 0:
        return RedisRateLimiter(settings.rate_limit_per_minute, settings.redis_url)
    return RateLimiter(settings.rate_limit_per_minute)
