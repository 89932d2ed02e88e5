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
  jobs:owner:{owner}  ZSET  history: the owner's job ids scored by created_at (ties ordered by id)
  jobs:owner:{owner}:{status}  ZSET  the same, per job status
  idem:{owner}:{key}  HASH  an Idempotency-Key's record (fingerprint, claim, answer), expiring after its keep time
  job:{id}:idem       SET   keys of the idempotency records that concern the job (deleted with it)
  lock:job:{id} / lock:group:{group}  short-lived write locks (SET NX PX with a token)
  export:{id}         STRING  an export record as one JSON object
  job:{id}:exports    ZSET  the job's export ids scored by created_at
  exports:queued / exports:processing  ZSET  open export ids scored by enqueued_at / lease_until (reaper)

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from typing import Any

import redis
from redis.client import Pipeline

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

PREFIX = "i2m:"
SEP = "\x1f"
EVENTS_ALL_MAXLEN = 100_000
LOCK_TTL_MS = 10_000
LOCK_WAIT_S = 10.0
EXPORT_RETRIES = 100
"""Optimistic retries of one export update before giving up (each conflict means another writer won)."""
SLOT_TRIES = 5

_JOB_FIELDS = [f.name for f in fields(JobRecord)]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

# KEYS[1] record; ARGV fingerprint, now, locked_until, expires_at, ttl_ms. Returns the live record's fields, or
# false after storing a fresh claim. The record's own times decide; its key's TTL only cleans up.
_IDEM_CLAIM = """
local r = redis.call('hmget', KEYS[1], 'fingerprint', 'locked_until', 'status_code', 'body', 'job_id', 'expires_at')
local now = tonumber(ARGV[2])
if r[1] and tonumber(r[6]) > now and (r[3] or tonumber(r[2]) > now) then return r end
redis.call('del', KEYS[1])
redis.call('hset', KEYS[1], 'fingerprint', ARGV[1], 'locked_until', ARGV[3], 'expires_at', ARGV[4])
redis.call('pexpire', KEYS[1], ARGV[5])
return false
"""

# KEYS[1] record, KEYS[2] the job's set of records; ARGV fingerprint, status_code, body, job_id.
_IDEM_FINISH = """
if redis.call('hget', KEYS[1], 'fingerprint') ~= ARGV[1] or redis.call('hexists', KEYS[1], 'status_code') == 1 then
  return 0
end
redis.call('hset', KEYS[1], 'status_code', ARGV[2], 'body', ARGV[3], 'job_id', ARGV[4])
redis.call('sadd', KEYS[2], KEYS[1])
local ttl = redis.call('pttl', KEYS[1])
if ttl > 0 and redis.call('pttl', KEYS[2]) < ttl then redis.call('pexpire', KEYS[2], ttl) end
return 1
"""

# KEYS[1] record; ARGV fingerprint.
_IDEM_RELEASE = """
if redis.call('hget', KEYS[1], 'fingerprint') == ARGV[1] and redis.call('hexists', KEYS[1], 'status_code') == 0 then
  return redis.call('del', KEYS[1])
end
return 0
"""

# KEYS pairs of (job hash, job items hash): one round trip for a page of the history.
_HISTORY_ROWS = """
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = {
    redis.call('hmget', KEYS[i], 'status', 'created_at', 'total', 'generator', 'face_limit'),
    redis.call('hvals', KEYS[i + 1]),
  }
end
return out
"""

HISTORY_INDEXED = "history:indexed"
"""Marker (under PREFIX) that jobs stored before the history indexes existed have been indexed."""
EVENTS_ALL_SKEW_MS = 10_000
"""Margin around a job's lifetime when deleting its entries from `events:all`, whose ids are Redis's clock."""


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


def _encode_export(record: ExportRecord) -> str:
    values = asdict(record)
    values["status"] = record.status.value
    return _dumps(values)


def _decode_export(raw: bytes) -> ExportRecord:
    values = json.loads(raw)
    values["status"] = ExportStatus(values["status"])
    return ExportRecord(**values)


def _index_history(pipe: Pipeline, job: JobRecord) -> None:
    pipe.zadd(_k("jobs", "owner", job.owner), {job.job_id: job.created_at})
    pipe.zadd(_k("jobs", "owner", job.owner, job.status.value), {job.job_id: job.created_at})


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
        self._idem_claim = self.client.register_script(_IDEM_CLAIM)
        self._idem_finish = self.client.register_script(_IDEM_FINISH)
        self._idem_release = self.client.register_script(_IDEM_RELEASE)
        self._history_rows = self.client.register_script(_HISTORY_ROWS)
        self._index_history()

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
            _index_history(pipe, job)
            return
        old = _encode_job(before)
        changed = {k: v for k, v in encoded.items() if old[k] != v}
        if changed:
            pipe.hset(_k("job", job.job_id), mapping=changed)
        if before.status != job.status:
            pipe.hincrby(_k("counts", "jobs"), before.status.value, -1)
            pipe.hincrby(_k("counts", "jobs"), job.status.value, 1)
            pipe.zrem(_k("jobs", "owner", job.owner, before.status.value), job.job_id)
            pipe.zadd(_k("jobs", "owner", job.owner, job.status.value), {job.job_id: job.created_at})

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

    def _create(self, state: JobState, answer: IdempotencyAnswer | None = None) -> None:
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
        if answer is not None:
            record = _k("idem", answer.owner, answer.key)
            pipe.hset(
                record,
                mapping={
                    "status_code": answer.status_code,
                    "body": _dumps(answer.body),
                    "job_id": job.job_id,
                },
            )
            pipe.pexpire(record, max(1, int(answer.keep_seconds * 1000)))
            pipe.sadd(_k("job", job.job_id, "idem"), record)
            pipe.pexpire(_k("job", job.job_id, "idem"), max(1, int(answer.keep_seconds * 1000)))
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

    def job_keys(self, job_id: str) -> list[str]:
        """The keys holding one job's own records, deleted with it. A feature keeping per-job keys of its own
        adds them here (and global index entries to `delete`'s transaction)."""
        return [
            _k("job", job_id),
            _k("job", job_id, "items"),
            _k("job", job_id, "events"),
            _k("job", job_id, "idem"),
        ]

    def delete(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            with self._locked(_k("lock", "job", job_id)), self.client.pipeline(transaction=True) as pipe:
                pipe.watch(_k("job", job_id), _k("job", job_id, "items"), _k("job", job_id, "idem"))
                state = self._read(pipe, job_id)
                idempotency = [m.decode() for m in pipe.smembers(_k("job", job_id, "idem"))]
                pipe.multi()
                if state is not None:
                    job = state.job
                    pipe.hincrby(_k("counts", "jobs"), job.status.value, -1)
                    for item in state.items:
                        self._unindex_item(pipe, job_id, item)
                    pipe.zrem(_k("jobs", "owner", job.owner), job_id)
                    pipe.zrem(_k("jobs", "owner", job.owner, job.status.value), job_id)
                pipe.delete(*self.job_keys(job_id), *idempotency)
                pipe.zrem(_k("jobs", "by_created"), job_id)
                pipe.execute()
            self._delete_exports(job_id)
            if state is not None:
                self._forget_fanned_out(job_id, state.job.created_at, state.job.updated_at)

    def _forget_fanned_out(self, job_id: str, created_at: float, updated_at: float) -> None:
        """Remove a deleted job's entries from `events:all` (the fan-out log), scanning only the stretch of the
        log written while the job lived."""
        start = f"{max(0, int(created_at * 1000) - EVENTS_ALL_SKEW_MS)}-0"
        end = str(int(updated_at * 1000) + EVENTS_ALL_SKEW_MS)
        page = 1000
        while True:
            rows = self.client.xrange(_k("events", "all"), min=start, max=end, count=page)
            mine = [entry_id for entry_id, f in rows if f.get(b"job") == job_id.encode()]
            if mine:
                self.client.xdel(_k("events", "all"), *mine)
            if len(rows) < page:
                return
            start = "(" + rows[-1][0].decode()

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

    # ---- exports -------------------------------------------------------------------------------------

    def _index_export(self, pipe: Pipeline, record: ExportRecord) -> None:
        pipe.zrem(_k("exports", "queued"), record.export_id)
        pipe.zrem(_k("exports", "processing"), record.export_id)
        if record.status == ExportStatus.QUEUED:
            pipe.zadd(_k("exports", "queued"), {record.export_id: record.enqueued_at})
        elif record.status == ExportStatus.PROCESSING:
            pipe.zadd(_k("exports", "processing"), {record.export_id: record.lease_until})

    def _create_export(self, record: ExportRecord) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.set(_k("export", record.export_id), _encode_export(record))
        pipe.zadd(_k("job", record.job_id, "exports"), {record.export_id: record.created_at})
        self._index_export(pipe, record)
        pipe.execute()

    def _update_export(self, export_id: str, change: Callable[[ExportRecord], T]) -> T | None:
        key = _k("export", export_id)
        with self.client.pipeline(transaction=True) as pipe:
            for _ in range(EXPORT_RETRIES):
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.reset()
                        return None
                    record = _decode_export(raw)
                    result = change(record)
                    encoded = _encode_export(record)
                    if encoded.encode() != raw:
                        pipe.multi()
                        pipe.set(key, encoded)
                        self._index_export(pipe, record)
                        pipe.execute()
                    else:
                        pipe.reset()
                    return result
                except redis.WatchError:
                    continue
        raise TimeoutError(f"export {export_id} kept changing under {EXPORT_RETRIES} attempts to update it")

    def load_export(self, export_id: str) -> ExportRecord | None:
        raw = self.client.get(_k("export", export_id))
        return None if raw is None else _decode_export(raw)

    def exports_of(self, job_id: str) -> list[ExportRecord]:
        ids = self.client.zrange(_k("job", job_id, "exports"), 0, -1)
        if not ids:
            return []
        raws = self.client.mget([_k("export", i.decode()) for i in ids])
        return [_decode_export(raw) for raw in raws if raw is not None]

    def export_reap_candidates(self, now: float, stale_before: float) -> list[str]:
        found = list(self.client.zrangebyscore(_k("exports", "processing"), "-inf", f"({now!r}"))
        if stale_before != float("-inf"):
            found += self.client.zrangebyscore(_k("exports", "queued"), "-inf", f"({stale_before!r}")
        return list(dict.fromkeys(m.decode() for m in found))

    def _delete_exports(self, job_id: str) -> None:
        ids = [i.decode() for i in self.client.zrange(_k("job", job_id, "exports"), 0, -1)]
        pipe = self.client.pipeline(transaction=True)
        for export_id in ids:
            pipe.delete(_k("export", export_id))
            pipe.zrem(_k("exports", "queued"), export_id)
            pipe.zrem(_k("exports", "processing"), export_id)
        pipe.delete(_k("job", job_id, "exports"))
        pipe.execute()

    # ---- job API v1.1: history and idempotency records ---------------------------------------------------

    def _index_history(self) -> None:
        """Put jobs stored before the history indexes existed into them (once per Redis; idempotent)."""
        if self.client.exists(_k(HISTORY_INDEXED)):
            return
        start, page = 0, 500
        while ids := [
            m.decode() for m in self.client.zrange(_k("jobs", "by_created"), start, start + page - 1)
        ]:
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hmget(_k("job", job_id), "owner", "status", "created_at")
                rows = pipe.execute()
            with self.client.pipeline(transaction=False) as pipe:
                for job_id, (owner, status, created_at) in zip(ids, rows, strict=True):
                    if owner is None:
                        continue
                    owner, status, created = json.loads(owner), json.loads(status), json.loads(created_at)
                    pipe.zadd(_k("jobs", "owner", owner), {job_id: created})
                    pipe.zadd(_k("jobs", "owner", owner, status), {job_id: created})
                pipe.execute()
            start += page
        self.client.set(_k(HISTORY_INDEXED), "1")

    def list_jobs(
        self, owner: str, limit: int, status: JobStatus | None = None, before: HistoryCursor | None = None
    ) -> list[HistoryEntry]:
        key = _k("jobs", "owner", owner) if status is None else _k("jobs", "owner", owner, status.value)
        if before is None:
            ids = [
                m.decode()
                for m in self.client.zrange(key, "+inf", "-inf", desc=True, byscore=True, offset=0, num=limit)
            ]
        else:
            created, job_id = before
            with self.client.pipeline(transaction=False) as pipe:
                pipe.zrange(key, created, created, desc=True, byscore=True)  # ties: ordered by id, descending
                pipe.zrange(key, f"({created!r}", "-inf", desc=True, byscore=True, offset=0, num=limit)
                ties, older = pipe.execute()
            ids = [m.decode() for m in ties if m.decode() < job_id] + [m.decode() for m in older]
            ids = ids[:limit]
        if not ids:
            return []
        keys = [key for job_id in ids for key in (_k("job", job_id), _k("job", job_id, "items"))]
        out = []
        for job_id, (values, items_raw) in zip(ids, self._history_rows(keys=keys), strict=True):
            if values[0] is None:  # deleted since the index was read
                continue
            st, created, total, generator, faces = values  # each JSON-encoded; numbers parse as they are
            preview = None
            for item in sorted((json.loads(raw) for raw in items_raw), key=lambda i: i["index"]):
                if item["status"] == ItemStatus.COMPLETED.value:
                    preview = first_preview(item["outputs"])
                    if preview:
                        break
            out.append(
                HistoryEntry(
                    job_id,
                    JobStatus(json.loads(st)),
                    float(created),
                    int(total),
                    json.loads(generator),
                    None if faces == b"null" else int(faces),
                    preview,
                )
            )
        return out

    def idempotency_claim(
        self, owner: str, key: str, fingerprint: str, now: float, ttl: float, lock_seconds: float
    ) -> IdempotencyRecord | None:
        found = self._idem_claim(
            keys=[_k("idem", owner, key)],
            args=[fingerprint, repr(now), repr(now + lock_seconds), repr(now + ttl), max(1, int(ttl * 1000))],
        )
        if not found:
            return None
        fp, locked_until, status_code, body, job_id, _ = found
        return IdempotencyRecord(
            fingerprint=fp.decode(),
            locked_until=float(locked_until),
            status_code=int(status_code) if status_code is not None else None,
            body=json.loads(body) if body is not None else None,
            job_id=job_id.decode() if job_id is not None else None,
        )

    def idempotency_finish(
        self, owner: str, key: str, fingerprint: str, status_code: int, body: dict[str, Any], job_id: str
    ) -> None:
        self._idem_finish(
            keys=[_k("idem", owner, key), _k("job", job_id, "idem")],
            args=[fingerprint, status_code, _dumps(body), job_id],
        )

    def idempotency_release(self, owner: str, key: str, fingerprint: str) -> None:
        self._idem_release(keys=[_k("idem", owner, key)], args=[fingerprint])

    def close(self) -> None:
        self.client.close()
        if self._blocking is not None:
            self._blocking.close()
