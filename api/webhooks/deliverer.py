"""The deliverer: one asyncio loop that follows the global event log (as the API's hub does), turns the events
of jobs with a webhook into durable deliveries, sends them many at a time, and retries failures on schedule.

Fast path: an event tailed from the log becomes a delivery leased to this process and is sent at once.
Everything else goes through the store: retries fall due and are claimed (by this process or another one of
a scale-out deployment), a delivery whose sender died is claimed again when its lease ends, and a sweep of
the subscriptions not yet done reads each job's own events after the last one turned into a delivery, which
catches up on whatever happened while no deliverer ran (at start, then now and then)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from image2model.api.store import JobStore
from image2model.api.webhooks.records import (
    DELIVERED,
    FAILED,
    PENDING,
    Delivery,
    Outcome,
    RetrySchedule,
    Scan,
    Subscription,
    WebhookStore,
)
from image2model.api.webhooks.sender import Sender
from image2model.api.webhooks.signing import WebhookSigner
from image2model.core.models import Event

log = logging.getLogger("image2model.webhooks")

_UNKNOWN = object()


def delivery_for(subscription: Subscription, job_id: str, event: Event) -> Delivery:
    """The delivery of one event: `{"type", "job_id", "data"}` as sent (and signed) on every attempt."""
    body = json.dumps({"type": event.type.value, "job_id": job_id, "data": event.data}, separators=(",", ":"))
    stamp = event.data.get("timestamp")
    return Delivery(
        webhook_id=f"{job_id}:{event.seq}",
        job_id=job_id,
        seq=event.seq,
        event=event.type.value,
        url=subscription.url,
        body=body,
        created_at=stamp / 1000 if isinstance(stamp, (int, float)) else time.time(),
    )


def plan(
    rows: list[tuple[str, Event]], subscriptions: dict[str, Subscription]
) -> tuple[list[Delivery], dict[str, Scan]]:
    """The deliveries wanted for some events of the log, and how far each subscribed job's events were read."""
    deliveries: list[Delivery] = []
    scans: dict[str, Scan] = {}
    for job_id, event in rows:
        sub = subscriptions.get(job_id)
        if sub is None:
            continue
        wanted = event.type.value in sub.events
        if wanted:
            deliveries.append(delivery_for(sub, job_id, event))
        if wanted or event.terminal:
            seen = scans.get(job_id)
            scans[job_id] = Scan(
                max(event.seq, seen.seq if seen else 0), event.terminal or bool(seen and seen.done)
            )
    return deliveries, scans


class Deliverer:
    """Delivers webhooks until `stop()`; `run()` returns once in-flight attempts have ended (or timed out)."""

    CLAIM_INTERVAL = 0.25
    FLUSH_INTERVAL = 0.05
    """Results are written in batches this often (one transaction for all the attempts that ended since)."""
    SWEEP_INTERVAL = 300.0
    SWEEP_BATCH = 200
    ORPHAN_AFTER = 3600.0
    """A subscription whose job does not exist this long after it was made is removed by the sweep."""
    PAGE = 1000
    CACHE_SIZE = 50_000
    BLOCK_SECONDS = 1.0

    def __init__(
        self,
        jobs: JobStore,
        hooks: WebhookStore,
        signer: WebhookSigner,
        sender: Sender,
        schedule: RetrySchedule,
        *,
        poll_interval: float = 0.02,
        max_in_flight: int = 256,
        lease_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.hooks = hooks
        self.signer = signer
        self.sender = sender
        self.schedule = schedule
        self.poll_interval = poll_interval
        self.max_in_flight = max_in_flight
        self.lease_seconds = lease_seconds if lease_seconds is not None else sender.timeout + 5.0
        self.clock = clock
        self.delivered = 0
        self.failed_attempts = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []
        self._subscriptions: OrderedDict[str, Subscription | None] = OrderedDict()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self) -> None:
        cursor = await self._start_cursor()
        if cursor is None:
            return
        loops = [
            asyncio.create_task(self._follow(cursor), name="webhooks-follow"),
            asyncio.create_task(self._claim_due(), name="webhooks-claim"),
            asyncio.create_task(self._sweep_now_and_then(), name="webhooks-sweep"),
        ]
        flusher = asyncio.create_task(self._flush_loop(), name="webhooks-flush")
        await self._stopping.wait()
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self.sender.timeout + 1)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await self._flush()

    async def _start_cursor(self) -> Any:
        """The log's head, taken before the first sweep starts so nothing falls between the two (retried while
        the store cannot be reached; None when stopped first)."""
        while not self._stopping.is_set():
            try:
                return await asyncio.to_thread(self.jobs.head)
            except Exception:
                log.exception("event=webhooks_store_unavailable")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 2.0)
        return None

    # ---- events into deliveries -------------------------------------------------------------------

    async def _follow(self, cursor: Any) -> None:
        blocking = self.jobs.blocking_tail
        while True:
            await self._room()
            try:
                if blocking:
                    after, rows = await asyncio.to_thread(
                        self.jobs.wait_tail, cursor, self.BLOCK_SECONDS, self.PAGE
                    )
                else:
                    after, rows = await asyncio.to_thread(self.jobs.tail, cursor, self.PAGE)
                if rows:
                    await self._take(rows)
                cursor = after  # only once recorded: a failed page is read again
            except Exception:
                log.exception("event=webhooks_tail_failed")
                await asyncio.sleep(1.0)
                continue
            if not blocking and len(rows) < self.PAGE:
                await asyncio.sleep(self.poll_interval)

    async def _room(self) -> None:
        """Wait until fewer than `max_in_flight` attempts are running."""
        while len(self._in_flight) >= self.max_in_flight:
            await asyncio.sleep(self.poll_interval)

    async def _take(self, rows: list[tuple[str, Event]]) -> None:
        unknown = list({job_id for job_id, _ in rows if job_id not in self._subscriptions})
        if unknown:
            found = await asyncio.to_thread(self.hooks.subscriptions, unknown)
            for job_id in unknown:
                # A job without a subscription at its first event never gets one (they are made before it).
                self._remember(job_id, found.get(job_id))
        subscribed = {j: s for j, _ in rows if (s := self._subscriptions.get(j)) is not None}
        if subscribed:
            await self._record(*plan(rows, subscribed))

    def _remember(self, job_id: str, subscription: Subscription | None) -> None:
        self._subscriptions[job_id] = subscription
        if len(self._subscriptions) > self.CACHE_SIZE:
            self._subscriptions.popitem(last=False)

    async def _record(self, deliveries: list[Delivery], scans: dict[str, Scan]) -> None:
        if not deliveries and not scans:
            return
        now = self.clock()
        created = await asyncio.to_thread(self.hooks.record, deliveries, scans, now, now + self.lease_seconds)
        for delivery in created:
            self._start(delivery)

    async def _sweep(self) -> None:
        """Catch up: every subscription not yet done, from its job's own events after its `scanned_seq`."""
        after = ""
        while True:
            await self._room()
            batch = await asyncio.to_thread(self.hooks.active, self.SWEEP_BATCH, after)
            if not batch:
                return
            after = batch[-1].job_id
            rows, orphans = await asyncio.to_thread(self._unseen_events, batch)
            await self._record(*plan(rows, {s.job_id: s for s in batch}))
            if orphans:
                await asyncio.to_thread(self.hooks.forget, orphans)
                log.info("event=webhooks_orphans_removed subscriptions=%d", len(orphans))

    def _unseen_events(self, batch: list[Subscription]) -> tuple[list[tuple[str, Event]], list[str]]:
        rows: list[tuple[str, Event]] = []
        orphans: list[str] = []
        stale = self.clock() - self.ORPHAN_AFTER
        for sub in batch:
            events = list(self.jobs.iter_events(sub.job_id, sub.scanned_seq))
            rows += [(sub.job_id, e) for e in events]
            if not events and sub.created_at < stale and self.jobs.load(sub.job_id) is None:
                orphans.append(sub.job_id)
        return rows, orphans

    async def _sweep_now_and_then(self) -> None:
        """The sweep at start (alongside live events: creating a delivery twice is a no-op), then now and then."""
        while True:
            try:
                await self._sweep()
            except Exception:
                log.exception("event=webhooks_sweep_failed")
            await asyncio.sleep(self.SWEEP_INTERVAL)

    async def _claim_due(self) -> None:
        while True:
            await asyncio.sleep(self.CLAIM_INTERVAL)
            free = self.max_in_flight - len(self._in_flight)
            if free <= 0:
                continue
            now = self.clock()
            try:
                claimed = await asyncio.to_thread(self.hooks.claim, now, now + self.lease_seconds, free)
            except Exception:
                log.exception("event=webhooks_claim_failed")
                continue
            for delivery in claimed:
                self._start(delivery)

    # ---- sending ----------------------------------------------------------------------------------

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._deliver(delivery))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, d: Delivery) -> None:
        body = d.body.encode()
        headers = self.signer.headers(d.webhook_id, int(self.clock()), body)
        attempt = await self.sender.post(d.url, headers, body)
        now = self.clock()
        number = d.attempts + 1
        if attempt.ok:
            self.delivered += 1
            self._outcomes.append(Outcome(d.webhook_id, d.attempts, DELIVERED, attempt.status, None, now))
            return
        self.failed_attempts += 1
        retry_at = self.schedule.next_attempt(d.created_at, number, now)
        status = PENDING if retry_at is not None else FAILED
        self._outcomes.append(
            Outcome(d.webhook_id, d.attempts, status, attempt.status, attempt.error, now, retry_at)
        )
        log.warning(
            "event=webhook_attempt_failed job_id=%s webhook_id=%s attempt=%d error=%r %s",
            d.job_id,
            d.webhook_id,
            number,
            attempt.error,
            f"retry_in={retry_at - now:.1f}s" if retry_at is not None else "gave_up=true",
        )

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_INTERVAL)
            await self._flush()

    async def _flush(self) -> None:
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        try:
            await asyncio.to_thread(self.hooks.finish, batch)
        except Exception:
            log.exception("event=webhooks_record_failed outcomes=%d", len(batch))
            self._outcomes[:0] = batch  # kept for the next flush; the leases cover the wait
