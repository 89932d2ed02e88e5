"""Webhook records in SQLite (embedded mode): two tables of their own in the job store's `state.db`."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields

from image2model.api.store.sqlite import SqliteJobStore
from image2model.api.webhooks.records import (
    DELIVERED,
    PENDING,
    Delivery,
    Outcome,
    Scan,
    Subscription,
    WebhookStore,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    job_id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, created_at REAL NOT NULL,
    scanned_seq INTEGER NOT NULL, done INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_active ON webhook_subscriptions(job_id) WHERE done = 0;
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    webhook_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
    url TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, last_status INTEGER, last_error TEXT, delivered_at REAL, next_attempt_at REAL,
    due_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_job ON webhook_deliveries(job_id, seq);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(due_at) WHERE status = 'pending';
"""

_DELIVERY_COLS = [f.name for f in fields(Delivery)]
_INSERT = (
    f"INSERT OR IGNORE INTO webhook_deliveries ({', '.join(_DELIVERY_COLS)}) "
    f"SELECT {', '.join('?' * len(_DELIVERY_COLS))} "
    "WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE job_id = ?)"
)
_CHUNK = 500


def _subscription(row: sqlite3.Row) -> Subscription:
    return Subscription(
        job_id=row["job_id"],
        url=row["url"],
        events=json.loads(row["events"]),
        created_at=row["created_at"],
        scanned_seq=row["scanned_seq"],
        done=bool(row["done"]),
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(**{c: row[c] for c in _DELIVERY_COLS})


class SqliteWebhookStore(WebhookStore):
    """Subscriptions and deliveries in the job store's `state.db`, through the job store's per-thread
    connections and its write lock (so one process's writers queue in one place, whichever table they write)."""

    def __init__(self, jobs: SqliteJobStore) -> None:
        self._conn = jobs._conn
        self._write = jobs._write
        conn = self._conn()
        conn.execute("PRAGMA busy_timeout=10000")  # processes starting together wait for each other's DDL
        conn.executescript(_SCHEMA)
        conn.execute("PRAGMA busy_timeout=0")

    def subscribe(self, subscription: Subscription) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO webhook_subscriptions (job_id, url, events, created_at, scanned_seq, done) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    subscription.job_id,
                    subscription.url,
                    json.dumps(subscription.events),
                    subscription.created_at,
                    subscription.scanned_seq,
                    int(subscription.done),
                ),
            )

    def subscriptions(self, job_ids: list[str]) -> dict[str, Subscription]:
        found: dict[str, Subscription] = {}
        conn = self._conn()
        for start in range(0, len(job_ids), _CHUNK):
            chunk = job_ids[start : start + _CHUNK]
            rows = conn.execute(
                f"SELECT * FROM webhook_subscriptions WHERE job_id IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update((row["job_id"], _subscription(row)) for row in rows)
        return found

    def active(self, limit: int = 1000, after: str = "") -> list[Subscription]:
        rows = self._conn().execute(
            "SELECT * FROM webhook_subscriptions WHERE done = 0 AND job_id > ? ORDER BY job_id LIMIT ?",
            (after, limit),
        )
        return [_subscription(row) for row in rows]

    def record(
        self, deliveries: list[Delivery], scans: dict[str, Scan], now: float, lease_until: float
    ) -> list[Delivery]:
        created: list[Delivery] = []
        with self._write() as conn:
            for delivery in deliveries:
                delivery.due_at = lease_until
                delivery.next_attempt_at = now
                values = [getattr(delivery, c) for c in _DELIVERY_COLS]
                if conn.execute(_INSERT, [*values, delivery.job_id]).rowcount:
                    created.append(delivery)
            conn.executemany(
                "UPDATE webhook_subscriptions SET scanned_seq = MAX(scanned_seq, ?), done = MAX(done, ?) "
                "WHERE job_id = ?",
                [(scan.seq, int(scan.done), job_id) for job_id, scan in scans.items()],
            )
        return created

    def claim(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        # A read first: most polls find nothing due and need not take the write lock.
        due = self._conn().execute(
            "SELECT 1 FROM webhook_deliveries WHERE status = ? AND due_at <= ? LIMIT 1", (PENDING, now)
        )
        if limit <= 0 or due.fetchone() is None:
            return []
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE webhook_deliveries SET due_at = ? WHERE webhook_id IN (SELECT webhook_id FROM "
                "webhook_deliveries WHERE status = ? AND due_at <= ? ORDER BY due_at LIMIT ?) RETURNING *",
                (lease_until, PENDING, now, limit),
            ).fetchall()
        return [_delivery(row) for row in rows]

    def finish(self, outcomes: list[Outcome]) -> int:
        with self._write() as conn:
            return conn.executemany(
                "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_status = ?, "
                "last_error = ?, delivered_at = ?, next_attempt_at = ?, due_at = ? "
                "WHERE webhook_id = ? AND attempts = ? AND status = ?",
                [
                    (
                        o.status,
                        o.last_status,
                        o.last_error,
                        o.finished_at if o.status == DELIVERED else None,
                        o.next_attempt_at if o.status == PENDING else None,
                        o.next_attempt_at if o.status == PENDING else o.finished_at,
                        o.webhook_id,
                        o.attempts,
                        PENDING,
                    )
                    for o in outcomes
                ],
            ).rowcount

    def deliveries(self, job_id: str) -> list[Delivery]:
        rows = self._conn().execute(
            "SELECT * FROM webhook_deliveries WHERE job_id = ? ORDER BY seq", (job_id,)
        )
        return [_delivery(row) for row in rows]

    def forget(self, job_ids: list[str]) -> None:
        with self._write() as conn:
            for table in ("webhook_deliveries", "webhook_subscriptions"):
                conn.executemany(f"DELETE FROM {table} WHERE job_id = ?", [(j,) for j in job_ids])

    def pending_count(self) -> int:
        row = (
            self._conn()
            .execute("SELECT COUNT(*) FROM webhook_deliveries WHERE status = ?", (PENDING,))
            .fetchone()
        )
        return int(row[0])
