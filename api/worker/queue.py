"""The Huey queues: `cpu` for local generation in worker processes and `io` for remote generators polled from
worker threads. Embedded mode keeps both in one SQLite file; scale-out mode puts them on the shared Redis, with
every task's data signed (a shared broker must not be able to feed pickles to the workers)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from functools import cached_property

from huey import Huey, RedisHuey
from huey.serializer import Serializer
from huey.storage import SqliteStorage

from image2model.core.settings import Settings, get_settings

QUEUES = ("cpu", "io")


class _WalNormalStorage(SqliteStorage):
    """Huey's SQLite storage with `synchronous=NORMAL`: WAL stays consistent across crashes without an fsync per
    enqueue (Huey offers only FULL or OFF; a task lost to a power cut is re-queued by the reaper). Writers
    retry the lock every few hundred microseconds instead of SQLite's 1..100 ms busy naps (huey 3.5.4's
    `db()` contract: begin, yield a cursor, commit or roll back, all under `self.lock`)."""

    def _create_connection(self) -> sqlite3.Connection:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        conn.execute("pragma busy_timeout=0")
        return conn

    @contextlib.contextmanager
    def db(self, commit: bool = False, close: bool = False) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            conn = self.conn
            cursor = conn.cursor()
            try:
                if commit:
                    _retry_locked(lambda: cursor.execute(self.begin_sql), self._timeout)
                yield cursor
            except Exception:
                if commit:
                    conn.rollback()
                raise
            else:
                if commit:
                    conn.commit()
            finally:
                cursor.close()
                if close:
                    conn.close()
                    self._conn = None


def _retry_locked(begin: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            begin()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.0001, 0.0005))


class SignedSerializer(Serializer):
    """Huey's serializer with an HMAC-SHA256 over every message; a message with a bad signature is refused before
    it is unpickled. The key is the deployment's shared secret, fetched on first use (not at import)."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        super().__init__()
        self._secret = secret

    @cached_property
    def _key(self) -> bytes:
        return hashlib.sha256(b"image2model-queue:" + self._secret()).digest()

    def _serialize(self, data: object) -> bytes:
        message = super()._serialize(data)
        return hmac.new(self._key, message, hashlib.sha256).digest() + message

    def _deserialize(self, data: bytes) -> object:
        signature, message = data[:32], data[32:]
        if not hmac.compare_digest(signature, hmac.new(self._key, message, hashlib.sha256).digest()):
            raise ValueError("refusing a queue message with a bad signature")
        return super()._deserialize(message)


def build_huey(settings: Settings, queue: str) -> Huey:
    """The queue the settings select. Results are off: the job store is the source of truth."""
    name = "image2model" if queue == "cpu" else f"image2model-{queue}"
    if settings.redis_url:
        from image2model.api.security import load_secret

        return RedisHuey(
            name,
            url=settings.redis_url,
            results=False,
            utc=True,
            serializer=SignedSerializer(lambda: load_secret(settings)),
            blocking=True,
            read_timeout=1,
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Huey(
        name,
        storage_class=_WalNormalStorage,
        filename=str(settings.huey_path),
        results=False,
        utc=True,
        timeout=10,
    )


huey: Huey = build_huey(get_settings(), "cpu")
huey_io: Huey = build_huey(get_settings(), "io")


def item_task_id(job_id: str, index: int) -> str:
    """Deterministic Huey task id of an item, so a queued item can be revoked without stored handles."""
    return f"{job_id}.{index}"


def pending_count() -> int:
    """Tasks waiting in both queues."""
    return huey.pending_count() + huey_io.pending_count()
