"""SQLite job store (embedded mode): `state.db` under the data directory, WAL, short IMMEDIATE transactions."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from image2model.api.store.base import (
    ExportRecord,
    HistoryCursor,
    HistoryEntry,
    IdempotencyAnswer,
    IdempotencyRecord,
    ItemRecord,
    JobRecord,
    JobState,
    JobStore,
    T,
    first_preview,
)
from image2model.core.models import Event, EventType, ExportStatus, ItemStatus, JobStatus

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, owner TEXT NOT NULL, generator TEXT NOT NULL, face_limit INTEGER,
    formats TEXT NOT NULL, options TEXT NOT NULL, total INTEGER NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, status TEXT NOT NULL, progress REAL NOT NULL, message TEXT NOT NULL,
    error TEXT, seq INTEGER NOT NULL, cancel_requested INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL, idx INTEGER NOT NULL, file_id TEXT NOT NULL, filename TEXT NOT NULL,
    basename TEXT NOT NULL, inputs TEXT NOT NULL, content_type TEXT NOT NULL, size INTEGER NOT NULL,
    status TEXT NOT NULL, progress REAL NOT NULL, message TEXT NOT NULL, error TEXT, attempt INTEGER NOT NULL,
    lease_until REAL NOT NULL, enqueued_at REAL NOT NULL, started_at REAL, finished_at REAL,
    last_event_at REAL NOT NULL, outputs TEXT NOT NULL, metadata TEXT NOT NULL, remote TEXT NOT NULL,
    remote_group TEXT NOT NULL, PRIMARY KEY (job_id, idx)
);
CREATE INDEX IF NOT EXISTS items_status ON items(status);
CREATE INDEX IF NOT EXISTS items_queue ON items(enqueued_at) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS items_remote_group ON items(remote_group) WHERE remote_group != '';
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_job_seq ON events(job_id, seq);
"""

_EXPORTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS exports (
    export_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, status TEXT NOT NULL, enqueued_at REAL NOT NULL,
    lease_until REAL NOT NULL, created_at REAL NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exports_job ON exports(job_id, created_at);
CREATE INDEX IF NOT EXISTS exports_open ON exports(status) WHERE status IN ('queued', 'processing');
"""
"""Export records (added in place: a store of the same schema version without the table gains it)."""

_JOB_API_SCHEMA = """
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs(owner, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_owner_status_created ON jobs(owner, status, created_at, job_id);
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status_code INTEGER, body TEXT,
    job_id TEXT, expires_at REAL NOT NULL, locked_until REAL NOT NULL, PRIMARY KEY (owner, key)
);
CREATE INDEX IF NOT EXISTS idempotency_job ON idempotency(job_id);
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency(expires_at);
"""
"""History indexes and idempotency records: added to stores of the same schema version (IF NOT EXISTS)."""

JOB_TABLES = ["events", "items", "idempotency", "exports", "jobs"]
"""Tables with a `job_id` column whose rows `delete()` removes with their job, in this order, in one
transaction. A feature keeping per-job rows of its own adds its table here (before "jobs")."""

_JOB_COLS = [f.name for f in fields(JobRecord)]
_ITEM_COLS = ["job_id", *("idx" if f.name == "index" else f.name for f in fields(ItemRecord))]
_JSON = {"formats", "options", "outputs", "metadata", "inputs", "remote"}


def _encode(name: str, value: Any) -> Any:
    if name in _JSON:
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return int(value)
    return value


def _row(record: JobRecord | ItemRecord, cols: list[str]) -> list[Any]:
    return [_encode(c, getattr(record, c)) for c in cols]


def _job(row: sqlite3.Row) -> JobRecord:
    values = {c: (json.loads(row[c]) if c in _JSON else row[c]) for c in _JOB_COLS}
    values["status"] = JobStatus(values["status"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return JobRecord(**values)


def _item(row: sqlite3.Row) -> ItemRecord:
    values = {
        ("index" if c == "idx" else c): (json.loads(row[c]) if c in _JSON else row[c]) for c in _ITEM_COLS[1:]
    }
    values["status"] = ItemStatus(values["status"])
    return ItemRecord(**values)


def _begin_immediate(conn: sqlite3.Connection, timeout: float = 10.0) -> None:
    """Take the write lock, retrying every few hundred microseconds while another process holds it.

    SQLite's own busy handler naps 1, 2, 5, 10 ... 100 ms between tries, which turns brief contention between
    the API and worker processes into tail latency; transactions here last well under a millisecond."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.0001, 0.0005))


def _event(row: sqlite3.Row) -> Event:
    return Event(seq=row["seq"], type=EventType(row["type"]), data=json.loads(row["data"]))


class SqliteJobStore(JobStore):
    """Job store in one SQLite file, safe across threads and processes (one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # One writer at a time per process: threads queue here instead of in SQLite's sleep-and-retry busy
        # handler (whose 1..100 ms naps stall the whole API under concurrent uploads).
        self._write_lock = threading.Lock()
        conn = self._conn()
        conn.execute("PRAGMA busy_timeout=10000")  # processes starting together wait for each other's DDL
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found not in (0, SCHEMA_VERSION):
            raise RuntimeError(
                f"{self.path} has job-store schema v{found}; this version needs v{SCHEMA_VERSION}. "
                "Move the old data directory aside (its jobs cannot be read by this version)."
            )
        conn.executescript(_SCHEMA + _JOB_API_SCHEMA + _EXPORTS_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("PRAGMA busy_timeout=0")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=0")  # writers retry in _begin_immediate; WAL readers never wait
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._write_lock:
            _begin_immediate(conn)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _insert_events(self, conn: sqlite3.Connection, job_id: str, events: list[Event]) -> None:
        conn.executemany(
            "INSERT INTO events (job_id, seq, type, data) VALUES (?, ?, ?, ?)",
            [(job_id, e.seq, e.type.value, json.dumps(e.data, separators=(",", ":"))) for e in events],
        )

    def _create(self, state: JobState, answer: IdempotencyAnswer | None = None) -> None:
        job = state.job
        with self._write() as conn:
            if answer is not None:
                self._record_answer(conn, answer, job.job_id)
            conn.execute(
                f"INSERT INTO jobs ({', '.join(_JOB_COLS)}) VALUES ({', '.join('?' * len(_JOB_COLS))})",
                [_encode(c, getattr(job, c)) for c in _JOB_COLS],
            )
            conn.executemany(
                f"INSERT INTO items ({', '.join(_ITEM_COLS)}) VALUES ({', '.join('?' * len(_ITEM_COLS))})",
                [
                    [job.job_id, *(_encode(f.name, getattr(i, f.name)) for f in fields(ItemRecord))]
                    for i in state.items
                ],
            )
            self._insert_events(conn, job.job_id, state.events)

    def _load(self, conn: sqlite3.Connection, job_id: str) -> JobState | None:
        row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        items = [
            _item(r) for r in conn.execute("SELECT * FROM items WHERE job_id = ? ORDER BY idx", (job_id,))
        ]
        return JobState(job=_job(row), items=items)

    @contextmanager
    def _transaction(self, job_id: str) -> Iterator[JobState | None]:
        with self._write() as conn:
            state = self._load(conn, job_id)
            if state is None:
                yield None
                return
            # Snapshots as the encoded rows: cheaper than deep copies, and the UPDATEs reuse them.
            job_cols, item_cols = _JOB_COLS[1:], _ITEM_COLS[2:]
            job_before = _row(state.job, job_cols)
            items_before = [_row(i, item_cols) for i in state.items]
            yield state
            job = state.job
            job_after = _row(job, job_cols)
            if job_after != job_before:
                conn.execute(
                    f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in job_cols)} WHERE job_id = ?",
                    [*job_after, job.job_id],
                )
            for item, before in zip(state.items, items_before, strict=True):
                after = _row(item, item_cols)
                if after != before:
                    conn.execute(
                        f"UPDATE items SET {', '.join(f'{c} = ?' for c in item_cols)} WHERE job_id = ? AND idx = ?",
                        [*after, job.job_id, item.index],
                    )
            self._insert_events(conn, job.job_id, state.events)

    def load(self, job_id: str) -> JobState | None:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            return self._load(conn, job_id)
        finally:
            conn.execute("COMMIT")

    def events_after(self, job_id: str, after_seq: int = 0, limit: int = 10_000) -> list[Event]:
        rows = self._conn().execute(
            "SELECT seq, type, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after_seq, limit),
        )
        return [_event(r) for r in rows]

    def head(self) -> int:
        row = self._conn().execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        return int(row[0])

    def tail(self, cursor: int, limit: int = 1000) -> tuple[int, list[tuple[str, Event]]]:
        rows = (
            self._conn()
            .execute(
                "SELECT id, job_id, seq, type, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, limit),
            )
            .fetchall()
        )
        if not rows:
            return cursor, []
        return rows[-1]["id"], [(r["job_id"], _event(r)) for r in rows]

    def reap_candidates(self, now: float, stale_before: float) -> list[str]:
        rows = self._conn().execute(
            "SELECT DISTINCT job_id FROM items WHERE (status = 'processing' AND lease_until < ?)"
            " OR (status = 'queued' AND enqueued_at < ?)",
            (now, stale_before if stale_before != float("-inf") else -1.0),
        )
        return [r[0] for r in rows]

    def jobs_created_before(self, cutoff: float, limit: int = 500) -> list[str]:
        rows = self._conn().execute(
            "SELECT job_id FROM jobs WHERE created_at < ? ORDER BY created_at LIMIT ?", (cutoff, limit)
        )
        return [r[0] for r in rows]

    def delete(self, job_ids: list[str]) -> None:
        with self._write() as conn:
            for table in JOB_TABLES:
                conn.executemany(f"DELETE FROM {table} WHERE job_id = ?", [(j,) for j in job_ids])

    def counts(self) -> dict[str, dict[str, int]]:
        conn = self._conn()
        jobs = dict(conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
        items = dict(conn.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())
        return {
            "jobs": {s.value: jobs.get(s.value, 0) for s in JobStatus},
            "items": {s.value: items.get(s.value, 0) for s in ItemStatus},
        }

    def queued_items(self, limit: int) -> list[str]:
        rows = self._conn().execute(
            "SELECT job_id FROM items WHERE status = 'queued' ORDER BY enqueued_at, job_id, idx LIMIT ?",
            (limit,),
        )
        return [row[0] for row in rows]

    def in_flight(self, group: str) -> int:
        row = (
            self._conn()
            .execute("SELECT COUNT(*) FROM items WHERE remote_group = ? AND status = 'processing'", (group,))
            .fetchone()
        )
        return int(row[0])

    def ping(self) -> None:
        with self._write() as conn:
            conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()

    # ---- exports -------------------------------------------------------------------------------------

    def _create_export(self, record: ExportRecord) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO exports (export_id, job_id, status, enqueued_at, lease_until, created_at, record)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                _export_row(record),
            )

    def _update_export(self, export_id: str, change: Callable[[ExportRecord], T]) -> T | None:
        with self._write() as conn:
            row = conn.execute("SELECT record FROM exports WHERE export_id = ?", (export_id,)).fetchone()
            if row is None:
                return None
            record = _export(row["record"])
            result = change(record)
            after = _export_row(record)
            if after[-1] != row["record"]:
                conn.execute(
                    "UPDATE exports SET status = ?, enqueued_at = ?, lease_until = ?, record = ?"
                    " WHERE export_id = ?",
                    [after[2], after[3], after[4], after[6], export_id],
                )
            return result

    def load_export(self, export_id: str) -> ExportRecord | None:
        row = self._conn().execute("SELECT record FROM exports WHERE export_id = ?", (export_id,)).fetchone()
        return None if row is None else _export(row["record"])

    def exports_of(self, job_id: str) -> list[ExportRecord]:
        rows = self._conn().execute(
            "SELECT record FROM exports WHERE job_id = ? ORDER BY created_at, export_id", (job_id,)
        )
        return [_export(r["record"]) for r in rows]

    def export_reap_candidates(self, now: float, stale_before: float) -> list[str]:
        rows = self._conn().execute(
            "SELECT export_id FROM exports WHERE (status = 'processing' AND lease_until < ?)"
            " OR (status = 'queued' AND enqueued_at < ?)",
            (now, stale_before if stale_before != float("-inf") else -1.0),
        )
        return [r[0] for r in rows]

    # ---- job API v1.1: history and idempotency records ---------------------------------------------------

    def list_jobs(
        self, owner: str, limit: int, status: JobStatus | None = None, before: HistoryCursor | None = None
    ) -> list[HistoryEntry]:
        where, args = ["owner = ?"], [owner]
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        if before is not None:
            where.append("(created_at, job_id) < (?, ?)")
            args.extend(before)
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            jobs = conn.execute(
                "SELECT job_id, status, created_at, total, generator, face_limit FROM jobs"
                f" WHERE {' AND '.join(where)} ORDER BY created_at DESC, job_id DESC LIMIT ?",
                [*args, limit],
            ).fetchall()
            previews: dict[str, str | None] = {}
            if jobs:
                marks = ", ".join("?" * len(jobs))
                # (status is tested here, not in SQL: SQLite would then pick the status index over the key)
                for job_id, item_status, outputs in conn.execute(
                    f"SELECT job_id, status, outputs FROM items WHERE job_id IN ({marks}) ORDER BY job_id, idx",
                    [row[0] for row in jobs],
                ):
                    if item_status == "completed" and previews.get(job_id) is None:
                        previews[job_id] = first_preview(json.loads(outputs))
        finally:
            conn.execute("COMMIT")
        return [
            HistoryEntry(job_id, JobStatus(st), created, total, generator, faces, previews.get(job_id))
            for job_id, st, created, total, generator, faces in jobs
        ]

    def idempotency_claim(
        self, owner: str, key: str, fingerprint: str, now: float, ttl: float, lock_seconds: float
    ) -> IdempotencyRecord | None:
        with self._write() as conn:
            # A new key (the usual case) is one statement; only a known one is read, and taken over once dead.
            claimed = conn.execute(
                "INSERT INTO idempotency (owner, key, fingerprint, status_code, body, job_id, expires_at,"
                " locked_until) VALUES (?, ?, ?, NULL, NULL, NULL, ?, ?) ON CONFLICT (owner, key) DO NOTHING",
                (owner, key, fingerprint, now + ttl, now + lock_seconds),
            ).rowcount
            if claimed:
                return None
            row = conn.execute(
                "SELECT * FROM idempotency WHERE owner = ? AND key = ?", (owner, key)
            ).fetchone()
            finished = row["status_code"] is not None
            if row["expires_at"] > now and (finished or row["locked_until"] > now):
                return IdempotencyRecord(
                    fingerprint=row["fingerprint"],
                    locked_until=row["locked_until"],
                    status_code=row["status_code"],
                    body=json.loads(row["body"]) if row["body"] is not None else None,
                    job_id=row["job_id"],
                )
            conn.execute(
                "UPDATE idempotency SET fingerprint = ?, status_code = NULL, body = NULL, job_id = NULL,"
                " expires_at = ?, locked_until = ? WHERE owner = ? AND key = ?",
                (fingerprint, now + ttl, now + lock_seconds, owner, key),
            )
            return None

    def idempotency_finish(
        self, owner: str, key: str, fingerprint: str, status_code: int, body: dict[str, Any], job_id: str
    ) -> None:
        with self._write() as conn:
            self._record_answer(
                conn, IdempotencyAnswer(owner, key, fingerprint, status_code, body, 0), job_id
            )

    @staticmethod
    def _record_answer(conn: sqlite3.Connection, answer: IdempotencyAnswer, job_id: str) -> None:
        conn.execute(
            "UPDATE idempotency SET status_code = ?, body = ?, job_id = ?"
            " WHERE owner = ? AND key = ? AND fingerprint = ? AND status_code IS NULL",
            (
                answer.status_code,
                json.dumps(answer.body, separators=(",", ":")),
                job_id,
                answer.owner,
                answer.key,
                answer.fingerprint,
            ),
        )

    def idempotency_release(self, owner: str, key: str, fingerprint: str) -> None:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM idempotency WHERE owner = ? AND key = ? AND fingerprint = ? AND status_code IS NULL",
                (owner, key, fingerprint),
            )

    def purge_idempotency(self, now: float) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM idempotency WHERE expires_at < ?", (now,)).rowcount

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _export_row(record: ExportRecord) -> list[Any]:
    values = asdict(record)
    values["status"] = record.status.value
    return [
        record.export_id,
        record.job_id,
        record.status.value,
        record.enqueued_at,
        record.lease_until,
        record.created_at,
        json.dumps(values, separators=(",", ":")),
    ]


def _export(raw: str) -> ExportRecord:
    values = json.loads(raw)
    values["status"] = ExportStatus(values["status"])
    return ExportRecord(**values)
