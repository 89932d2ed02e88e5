"""Redis job store (scale-out mode): many API and worker processes on many hosts share one Redis.

Keys (all under `i2m:`):
  job:{id}            HASH  one field per `JobRecord` field, each JSON-encoded
  job:{id}:items      HASH  item index -> the item as one JSON object
  job:{id}:events     STREAM  the job's events with explicit ids `{seq}-0`, so `events_after` is one XRANGE
  events:all          STREAM  every event of every job (fields job, seq, type, data); `tail`/`head` cursor = entry id
  jobs:by_created     ZSET  job id scored by created_at (retention)
  items:processing    ZSET  `{job}\\x1f{index}` of processing items scored by lease_until (reaper)
  items:queued        ZSET  `{job}\\x1f{index}` of queued items scored by enqueued_at (reaper)
  inflight:{group}    SET   `{job}\\x1f{index}` of processing items holding a remote slot of group
  counts:jobs / counts:items  HASH  status -> count
  lock:job:{id} / lock:group:{group}  short-lived write locks (SET NX PX with a token)

Transactions: the base class runs each transition as the body of `with self._transaction(job_id)`, which cannot
be re-run, so an optimistic WATCH/MULTI/EXEC retry loop around it is impossible. Instead each transaction holds
the job's lock (a few ms), loads the job under WATCH and writes everything it changed in one MULTI/EXEC; the
WATCH only fires if the lock expired under a stalled writer, and then the transaction raises instead of
overwriting newer state. `in_flight(group)` inside a transaction also takes the group's lock (always after the
job lock, so locks are ordered and cannot deadlock) and holds it until EXEC, which makes the slot cap exact.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from typing import Any

import redis
from redis.client import Pipeline

from image2model.api.store.base import ItemRecord, JobRecord, JobState, JobStore
from image2model.core.models import Event, EventType, ItemStatus, JobStatus

PREFIX = "i2m:"
SEP = "\x1f"
EVENTS_ALL_MAXLEN = 100_000
LOCK_TTL_MS = 10_000
LOCK_WAIT_S = 10.0
SLOT_TRIES = 5

_JOB_FIELDS = [f.name for f in fields(JobRecord)]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _k(*parts: str) -> str:
    return PREFIX + ":".join(parts)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _encode_job(job: JobRecord) -> dict[str, str]:
    values = asdict(job)
    values["status"] = job.status.value
    return {name: _dumps(values[name]) for name in _JOB_FIELDS}


def _decode_job(raw: dict[bytes, bytes]) -> JobRecord:
    values = {k.decode(): json.loads(v) for k, v in raw.items()}
    values["status"] = JobStatus(values["status"])
    return JobRecord(**{name: values[name] for name in _JOB_FIELDS})


def _encode_item(item: ItemRecord) -> str:
    values = asdict(item)
    values["status"] = item.status.value
    return _dumps(values)


def _decode_item(raw: bytes) -> ItemRecord:
    values = json.loads(raw)
    values["status"] = ItemStatus(values["status"])
    return ItemRecord(**values)


def _member(job_id: str, index: int) -> str:
    return f"{job_id}{SEP}{index}"


def _event(fields_: dict[bytes, bytes], seq: int) -> Event:
    return Event(seq=seq, type=EventType(fields_[b"type"].decode()), data=json.loads(fields_[b"data"]))


class RedisJobStore(JobStore):
    """Job store in Redis, safe across threads, processes and hosts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: redis.Redis = redis.Redis.from_url(url)
        self._local = threading.local()
        self._release = self.client.register_script(_RELEASE)
        self._blocking: redis.Redis | None = None

    # ---- locks ---------------------------------------------------------------------------------------

    def _acquire(self, key: str) -> str:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT_S
        while not self.client.set(key, token, nx=True, px=LOCK_TTL_MS):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not take {key} within {LOCK_WAIT_S:.0f} s")
            time.sleep(random.uniform(0.0002, 0.001))
        return token

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        token = self._acquire(key)
        try:
            yield
        finally:
            self._release(keys=[key], args=[token])

    # ---- index maintenance ---------------------------------------------------------------------------

    def _write_job(self, pipe: Pipeline, job: JobRecord, before: JobRecord | None) -> None:
        encoded = _encode_job(job)
        if before is None:
            pipe.hset(_k("job", job.job_id), mapping=encoded)
            pipe.hincrby(_k("counts", "jobs"), job.status.value, 1)
            return
        old = _encode_job(before)
        changed = {k: v for k, v in encoded.items() if old[k] != v}
        if changed:
            pipe.hset(_k("job", job.job_id), mapping=changed)
        if before.status != job.status:
            pipe.hincrby(_k("counts", "jobs"), before.status.value, -1)
            pipe.hincrby(_k("counts", "jobs"), job.status.value, 1)

    def _unindex_item(self, pipe: Pipeline, job_id: str, item: ItemRecord, slot: bool = True) -> None:
        member = _member(job_id, item.index)
        if item.status == ItemStatus.PROCESSING:
            pipe.zrem(_k("items", "processing"), member)
            if item.remote_group and slot:
                pipe.srem(_k("inflight", item.remote_group), member)
        elif item.status == ItemStatus.QUEUED:
            pipe.zrem(_k("items", "queued"), member)
        pipe.hincrby(_k("counts", "items"), item.status.value, -1)

    def _index_item(self, pipe: Pipeline, job_id: str, item: ItemRecord, slot: bool = True) -> None:
        member = _member(job_id, item.index)
        if item.status == ItemStatus.PROCESSING:
            pipe.zadd(_k("items", "processing"), {member: item.lease_until})
            if item.remote_group and slot:
                pipe.sadd(_k("inflight", item.remote_group), member)
        elif item.status == ItemStatus.QUEUED:
            pipe.zadd(_k("items", "queued"), {member: item.enqueued_at})
        pipe.hincrby(_k("counts", "items"), item.status.value, 1)

    def _write_events(self, pipe: Pipeline, job_id: str, events: list[Event]) -> None:
        for e in events:
            data = _dumps(e.data)
            pipe.xadd(_k("job", job_id, "events"), {"type": e.type.value, "data": data}, id=f"{e.seq}-0")
            pipe.xadd(
                _k("events", "all"),
                {"job": job_id, "seq": e.seq, "type": e.type.value, "data": data},
                maxlen=EVENTS_ALL_MAXLEN,
                approximate=True,
            )

    # ---- primitives ----------------------------------------------------------------------------------

    def _create(self, state: JobState) -> None:
        """Two round trips and no lock: nothing else can touch a job before it exists, and ids are fresh
        UUIDs, so the EXISTS only guards against an id reused by mistake."""
        job = state.job
        if self.client.exists(_k("job", job.job_id)):
            raise ValueError(f"job {job.job_id} already exists")
        pipe = self.client.pipeline(transaction=True)
        self._write_job(pipe, job, None)
        if state.items:
            pipe.hset(
                _k("job", job.job_id, "items"),
                mapping={str(i.index): _encode_item(i) for i in state.items},
            )
        for item in state.items:
            self._index_item(pipe, job.job_id, item)
        pipe.zadd(_k("jobs", "by_created"), {job.job_id: job.created_at})
        self._write_events(pipe, job.job_id, state.events)
        pipe.execute()

    def _read(self, conn: redis.Redis | Pipeline, job_id: str) -> JobState | None:
        raw = conn.hgetall(_k("job", job_id))
        if not raw:
            return None
        items_raw = conn.hgetall(_k("job", job_id, "items"))
        items = sorted((_decode_item(v) for v in items_raw.values()), key=lambda i: i.index)
        return JobState(job=_decode_job(raw), items=items)

    @contextmanager
    def _transaction(self, job_id: str) -> Iterator[JobState | None]:
        with self._locked(_k("lock", "job", job_id)), self.client.pipeline(transaction=True) as pipe:
            pipe.watch(_k("job", job_id), _k("job", job_id, "items"))
            state = self._read(pipe, job_id)
            if state is None:
                yield None
                return
            job_before = JobRecord(**{f: getattr(state.job, f) for f in _JOB_FIELDS})
            items_before = [_encode_item(i) for i in state.items]
            decoded_before = [_decode_item(raw.encode()) for raw in items_before]
            group_tokens: dict[str, str] = {}
            self._local.tx = (pipe, group_tokens)
            try:
                yield state
                changed = [
                    (item, old)
                    for item, raw, old in zip(state.items, items_before, decoded_before, strict=True)
                    if _encode_item(item) != raw
                ]
                # An item entering a remote group counts against its cap: hold that group's lock until EXEC.
                for item, old in changed:
                    entering = item.status == ItemStatus.PROCESSING and item.remote_group
                    was = old.status == ItemStatus.PROCESSING and old.remote_group == item.remote_group
                    if entering and not was:
                        self._lock_group(item.remote_group, pipe, group_tokens)
                pipe.multi()
                self._write_job(pipe, state.job, job_before)
                if changed:
                    pipe.hset(
                        _k("job", job_id, "items"),
                        mapping={str(item.index): _encode_item(item) for item, _ in changed},
                    )
                for item, old in changed:
                    # An item keeping its remote slot (a lease renewed, progress) leaves the group's set alone:
                    # every write to it would abort the cap checks (WATCH) of items taking a slot meanwhile.
                    kept = (
                        old.status == item.status == ItemStatus.PROCESSING
                        and old.remote_group == item.remote_group
                    )
                    self._unindex_item(pipe, job_id, old, slot=not kept)
                    self._index_item(pipe, job_id, item, slot=not kept)
                self._write_events(pipe, job_id, state.events)
                pipe.execute()
            finally:
                self._local.tx = None
                for group, token in group_tokens.items():
                    self._release(keys=[_k("lock", "group", group)], args=[token])

    def _lock_group(self, group: str, pipe: Pipeline, tokens: dict[str, str]) -> None:
        if group not in tokens:
            tokens[group] = self._acquire(_k("lock", "group", group))
            pipe.watch(_k("inflight", group))

    def load(self, job_id: str) -> JobState | None:
        # Job and items are only written together in MULTI/EXEC; read them together too.
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(_k("job", job_id))
            pipe.hgetall(_k("job", job_id, "items"))
            raw, items_raw = pipe.execute()
        if not raw:
            return None
        items = sorted((_decode_item(v) for v in items_raw.values()), key=lambda i: i.index)
        return JobState(job=_decode_job(raw), items=items)

    def events_after(self, job_id: str, after_seq: int = 0, limit: int = 10_000) -> list[Event]:
        rows = self.client.xrange(_k("job", job_id, "events"), min=f"{after_seq + 1}-0", count=limit)
        return [_event(f, int(eid.split(b"-")[0])) for eid, f in rows]

    def head(self) -> str:
        rows = self.client.xrevrange(_k("events", "all"), count=1)
        return rows[0][0].decode() if rows else "0-0"

    def tail(self, cursor: str, limit: int = 1000) -> tuple[str, list[tuple[str, Event]]]:
        return self._xread(self.client, cursor, limit, None)

    blocking_tail = True

    def wait_tail(
        self, cursor: str, timeout: float, limit: int = 1000
    ) -> tuple[str, list[tuple[str, Event]]]:
        # Blocked reads use a pool of their own, so they never starve the transactions of connections.
        if self._blocking is None:
            self._blocking = redis.Redis.from_url(self.url, socket_timeout=timeout + 10)
        return self._xread(self._blocking, cursor, limit, max(1, int(timeout * 1000)))

    def _xread(
        self, conn: redis.Redis, cursor: str, limit: int, block_ms: int | None
    ) -> tuple[str, list[tuple[str, Event]]]:
        got = conn.xread({_k("events", "all"): cursor}, count=limit, block=block_ms)
        if not got:
            return cursor, []
        rows = got[0][1]
        out = [(f[b"job"].decode(), _event(f, int(f[b"seq"]))) for _, f in rows]
        return rows[-1][0].decode(), out

    def reap_candidates(self, now: float, stale_before: float) -> list[str]:
        members = list(self.client.zrangebyscore(_k("items", "processing"), "-inf", f"({now!r}"))
        if stale_before != float("-inf"):
            members += self.client.zrangebyscore(_k("items", "queued"), "-inf", f"({stale_before!r}")
        return list(dict.fromkeys(m.decode().split(SEP)[0] for m in members))

    def jobs_created_before(self, cutoff: float, limit: int = 500) -> list[str]:
        rows = self.client.zrangebyscore(_k("jobs", "by_created"), "-inf", f"({cutoff!r}", start=0, num=limit)
        return [r.decode() for r in rows]

    def delete(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            with self._locked(_k("lock", "job", job_id)), self.client.pipeline(transaction=True) as pipe:
                pipe.watch(_k("job", job_id), _k("job", job_id, "items"))
                state = self._read(pipe, job_id)
                pipe.multi()
                if state is not None:
                    pipe.hincrby(_k("counts", "jobs"), state.job.status.value, -1)
                    for item in state.items:
                        self._unindex_item(pipe, job_id, item)
                pipe.delete(_k("job", job_id), _k("job", job_id, "items"), _k("job", job_id, "events"))
                pipe.zrem(_k("jobs", "by_created"), job_id)
                pipe.execute()

    def counts(self) -> dict[str, dict[str, int]]:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(_k("counts", "jobs"))
            pipe.hgetall(_k("counts", "items"))
            jobs_raw, items_raw = pipe.execute()
        jobs = {k.decode(): int(v) for k, v in jobs_raw.items()}
        items = {k.decode(): int(v) for k, v in items_raw.items()}
        return {
            "jobs": {s.value: jobs.get(s.value, 0) for s in JobStatus},
            "items": {s.value: items.get(s.value, 0) for s in ItemStatus},
        }

    def queued_items(self, limit: int) -> list[str]:
        if limit <= 0:
            return []
        members = self.client.zrange(_k("items", "queued"), 0, limit - 1)
        return [m.decode().rsplit(SEP, 1)[0] for m in members]

    def take_remote_slot(self, job_id: str, index: int, attempt: int, group: str, cap: int) -> bool:
        """The base transition, tried again when an item leaving the group changed its set during the cap check
        (the WATCH that keeps the cap exact then aborts the transaction, which wrote nothing)."""
        for tries in range(1, SLOT_TRIES + 1):
            try:
                return super().take_remote_slot(job_id, index, attempt, group, cap)
            except redis.WatchError:
                if tries == SLOT_TRIES:
                    raise
                time.sleep(random.uniform(0.001, 0.01))
        raise AssertionError("unreachable")

    def in_flight(self, group: str) -> int:
        tx = getattr(self._local, "tx", None)
        if tx is None:
            return int(self.client.scard(_k("inflight", group)))
        pipe, tokens = tx
        self._lock_group(group, pipe, tokens)
        return int(pipe.scard(_k("inflight", group)))

    def ping(self) -> None:
        self.client.set(_k("ping"), "1", px=10_000)
        self.client.get(_k("ping"))

    def close(self) -> None:
        self.client.close()
        if self._blocking is not None:
            self._blocking.close()
