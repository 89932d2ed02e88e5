"""The webhook records and the store interface both backends implement.

A `Subscription` (one per job with a `webhook_url`) is written before its job, so the deliverer that tails the
event log knows of it by the job's first event. A `Delivery` is one event for one subscription; its id is the
Standard Webhooks `webhook-id`, `<job_id>:<seq>`, so creating it twice (several deliverers, a replay after a
restart) is a no-op. A delivery is claimable once `due_at` has passed: a claim moves `due_at` to the end of a
lease, so a deliverer that dies mid-send leaves it to be claimed again, and a result is recorded only by the
attempt it belongs to (`attempts` still as claimed)."""

from __future__ import annotations

import abc
import random
from dataclasses import dataclass, field

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass
class Subscription:
    job_id: str
    url: str
    events: list[str]
    created_at: float
    scanned_seq: int = 0
    """Events of the job up to this seq have been turned into deliveries (the catch-up sweep starts after it)."""
    done: bool = False
    """The job's terminal event was seen: the sweep no longer visits it."""


@dataclass
class Delivery:
    webhook_id: str
    job_id: str
    seq: int
    event: str
    url: str
    body: str
    created_at: float
    status: str = PENDING
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    next_attempt_at: float | None = None
    due_at: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, to record against the delivery claimed with `attempts`."""

    webhook_id: str
    attempts: int
    """The delivery's attempt count when it was claimed (the attempt recorded is number `attempts + 1`)."""
    status: str
    last_status: int | None
    last_error: str | None
    finished_at: float
    next_attempt_at: float | None = None


@dataclass(frozen=True)
class Scan:
    """How far a job's events were read: up to `seq`, and whether its terminal event was among them."""

    seq: int
    done: bool = False


@dataclass(frozen=True)
class RetrySchedule:
    """Growing waits between attempts: `first` seconds, doubling per failed attempt up to `longest`, with ±10 %
    jitter; a delivery still failing `window` seconds after its event is given up."""

    first: float = 5.0
    longest: float = 3600.0
    window: float = 24 * 3600.0
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def next_attempt(self, created_at: float, attempts: int, now: float) -> float | None:
        """When to try again after `attempts` failed attempts, or None when the window is over."""
        wait = min(self.longest, self.first * 2 ** max(0, attempts - 1))
        wait *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        at = now + wait
        return at if at <= created_at + self.window else None


class WebhookStore(abc.ABC):
    """Subscriptions and deliveries, next to the job store (state.db in embedded mode, Redis in scale-out)."""

    @abc.abstractmethod
    def subscribe(self, subscription: Subscription) -> None:
        """Store a job's webhook (before the job itself, so no event of it can be missed)."""

    @abc.abstractmethod
    def subscriptions(self, job_ids: list[str]) -> dict[str, Subscription]:
        """The subscriptions of those of `job_ids` that have one."""

    @abc.abstractmethod
    def active(self, limit: int = 1000, after: str = "") -> list[Subscription]:
        """Subscriptions not yet `done`, in job id order after `after` (for the catch-up sweep)."""

    @abc.abstractmethod
    def record(
        self, deliveries: list[Delivery], scans: dict[str, Scan], now: float, lease_until: float
    ) -> list[Delivery]:
        """Create the deliveries that do not exist yet (and whose subscription still does), leased to the caller
        until `lease_until`, and advance the subscriptions' scans; atomically. Returns those created."""

    @abc.abstractmethod
    def claim(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        """Lease up to `limit` pending deliveries that are due (`due_at <= now`) until `lease_until`."""

    @abc.abstractmethod
    def finish(self, outcomes: list[Outcome]) -> int:
        """Record attempts; an outcome whose delivery moved on (other attempt, deleted) is dropped. Returns how
        many were recorded."""

    @abc.abstractmethod
    def deliveries(self, job_id: str) -> list[Delivery]:
        """A job's deliveries, in event order."""

    @abc.abstractmethod
    def forget(self, job_ids: list[str]) -> None:
        """Remove the subscriptions and deliveries of these jobs (job deletion and retention call this)."""

    @abc.abstractmethod
    def pending_count(self) -> int:
        """Deliveries not yet delivered nor given up."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
