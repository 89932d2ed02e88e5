"""Webhook records in Redis (scale-out mode), next to the job store's keys; every multi-key change is one Lua
script, so several deliverers on several hosts never see half of one.

Keys (all under `i2m:wh:`):
  sub:{job}      HASH  the job's subscription (url, events as JSON, created_at, scanned_seq, done)
  subs:active    ZSET  job ids of subscriptions not yet done (score 0: ordered by id, for the sweep)
  d:{id}         HASH  one delivery, one field per `Delivery` field ("" for None)
  due            ZSET  ids of pending deliveries scored by `due_at` (next attempt, or end of a lease)
  job:{job}      ZSET  the job's delivery ids scored by seq (the delivery log)
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import redis

from image2model.api.webhooks.records import PENDING, Delivery, Outcome, Scan, Subscription, WebhookStore

P = "i2m:wh:"
_DELIVERY_FIELDS = [f.name for f in fields(Delivery)]
_INTS = {"seq", "attempts", "last_status"}
_FLOATS = {"created_at", "delivered_at", "next_attempt_at", "due_at"}

_RECORD = """
local prefix, now, lease = ARGV[1], ARGV[2], ARGV[3]
local deliveries, scans = cjson.decode(ARGV[4]), cjson.decode(ARGV[5])
local created = {}
for _, d in ipairs(deliveries) do
  local key = prefix .. 'd:' .. d.webhook_id
  if redis.call('exists', prefix .. 'sub:' .. d.job_id) == 1 and redis.call('exists', key) == 0 then
    redis.call('hset', key, 'webhook_id', d.webhook_id, 'job_id', d.job_id, 'seq', d.seq, 'event', d.event,
      'url', d.url, 'body', d.body, 'created_at', d.created_at, 'status', 'pending', 'attempts', 0,
      'last_status', '', 'last_error', '', 'delivered_at', '', 'next_attempt_at', now, 'due_at', lease)
    redis.call('zadd', prefix .. 'due', lease, d.webhook_id)
    redis.call('zadd', prefix .. 'job:' .. d.job_id, d.seq, d.webhook_id)
    created[#created + 1] = d.webhook_id
  end
end
for job, scan in pairs(scans) do
  local sub = prefix .. 'sub:' .. job
  if redis.call('exists', sub) == 1 then
    if scan[1] > tonumber(redis.call('hget', sub, 'scanned_seq')) then
      redis.call('hset', sub, 'scanned_seq', scan[1])
    end
    if scan[2] then
      redis.call('hset', sub, 'done', 1)
      redis.call('zrem', prefix .. 'subs:active', job)
    end
  end
end
return created
"""

_CLAIM = """
local prefix, now, lease, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids = redis.call('zrangebyscore', prefix .. 'due', '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  local key = prefix .. 'd:' .. id
  if redis.call('hget', key, 'status') == 'pending' then
    redis.call('zadd', prefix .. 'due', lease, id)
    redis.call('hset', key, 'due_at', lease)
    out[#out + 1] = redis.call('hgetall', key)
  else
    redis.call('zrem', prefix .. 'due', id)
  end
end
return out
"""

_FINISH = """
local prefix = ARGV[1]
local recorded = 0
for _, o in ipairs(cjson.decode(ARGV[2])) do
  local key = prefix .. 'd:' .. o.webhook_id
  local attempts = redis.call('hget', key, 'attempts')
  if attempts == tostring(o.attempts) and redis.call('hget', key, 'status') == 'pending' then
    redis.call('hset', key, 'status', o.status, 'attempts', o.attempts + 1, 'last_status', o.last_status,
      'last_error', o.last_error, 'delivered_at', o.delivered_at, 'next_attempt_at', o.next_attempt_at,
      'due_at', o.due_at)
    if o.status == 'pending' then
      redis.call('zadd', prefix .. 'due', o.due_at, o.webhook_id)
    else
      redis.call('zrem', prefix .. 'due', o.webhook_id)
    end
    recorded = recorded + 1
  end
end
return recorded
"""

_FORGET = """
local prefix = ARGV[1]
for i = 2, #ARGV do
  local job = ARGV[i]
  for _, id in ipairs(redis.call('zrange', prefix .. 'job:' .. job, 0, -1)) do
    redis.call('del', prefix .. 'd:' .. id)
    redis.call('zrem', prefix .. 'due', id)
  end
  redis.call('del', prefix .. 'job:' .. job, prefix .. 'sub:' .. job)
  redis.call('zrem', prefix .. 'subs:active', job)
end
return 0
"""


def _text(value: Any) -> str:
    """A field as Lua writes it: "" for None, numbers as their repr."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def _delivery(raw: dict[str, str]) -> Delivery:
    values: dict[str, Any] = {}
    for name in _DELIVERY_FIELDS:
        text = raw.get(name, "")
        if name in _INTS:
            values[name] = int(float(text)) if text else None
        elif name in _FLOATS:
            values[name] = float(text) if text else None
        elif name == "last_error":
            values[name] = text or None
        else:
            values[name] = text
    return Delivery(**values)


def _pairs(flat: list[bytes]) -> dict[str, str]:
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}


class RedisWebhookStore(WebhookStore):
    """Subscriptions and deliveries in the job store's Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._record = client.register_script(_RECORD)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._forget = client.register_script(_FORGET)

    def subscribe(self, subscription: Subscription) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                P + f"sub:{subscription.job_id}",
                mapping={
                    "url": subscription.url,
                    "events": json.dumps(subscription.events),
                    "created_at": repr(subscription.created_at),
                    "scanned_seq": subscription.scanned_seq,
                    "done": int(subscription.done),
                },
            )
            if not subscription.done:
                pipe.zadd(P + "subs:active", {subscription.job_id: 0})
            pipe.execute()

    def subscriptions(self, job_ids: list[str]) -> dict[str, Subscription]:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(P + f"sub:{job_id}")
            rows = pipe.execute()
        found: dict[str, Subscription] = {}
        for job_id, raw in zip(job_ids, rows, strict=True):
            if raw:
                found[job_id] = Subscription(
                    job_id=job_id,
                    url=raw[b"url"].decode(),
                    events=json.loads(raw[b"events"]),
                    created_at=float(raw[b"created_at"]),
                    scanned_seq=int(raw[b"scanned_seq"]),
                    done=raw[b"done"] == b"1",
                )
        return found

    def active(self, limit: int = 1000, after: str = "") -> list[Subscription]:
        start = f"({after}" if after else "-"
        ids = [i.decode() for i in self.client.zrangebylex(P + "subs:active", start, "+", start=0, num=limit)]
        found = self.subscriptions(ids)
        return [found[i] for i in ids if i in found and not found[i].done]

    def record(
        self, deliveries: list[Delivery], scans: dict[str, Scan], now: float, lease_until: float
    ) -> list[Delivery]:
        if not deliveries and not scans:
            return []
        payload = [
            {
                "webhook_id": d.webhook_id,
                "job_id": d.job_id,
                "seq": d.seq,
                "event": d.event,
                "url": d.url,
                "body": d.body,
                "created_at": repr(d.created_at),
            }
            for d in deliveries
        ]
        created = {
            i.decode()
            for i in self._record(
                args=[
                    P,
                    repr(now),
                    repr(lease_until),
                    json.dumps(payload),
                    json.dumps({j: [s.seq, s.done] for j, s in scans.items()}),
                ]
            )
        }
        out = [d for d in deliveries if d.webhook_id in created]
        for d in out:
            d.next_attempt_at, d.due_at = now, lease_until
        return out

    def claim(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        if limit <= 0:
            return []
        rows = self._claim(args=[P, repr(now), repr(lease_until), limit])
        return [_delivery(_pairs(row)) for row in rows]

    def finish(self, outcomes: list[Outcome]) -> int:
        if not outcomes:
            return 0
        payload = [
            {
                "webhook_id": o.webhook_id,
                "attempts": o.attempts,
                "status": o.status,
                "last_status": _text(o.last_status),
                "last_error": o.last_error or "",
                "delivered_at": _text(o.finished_at) if o.status == "delivered" else "",
                "next_attempt_at": _text(o.next_attempt_at) if o.status == PENDING else "",
                "due_at": _text(o.next_attempt_at if o.status == PENDING else o.finished_at),
            }
            for o in outcomes
        ]
        return int(self._finish(args=[P, json.dumps(payload)]))

    def deliveries(self, job_id: str) -> list[Delivery]:
        ids = self.client.zrange(P + f"job:{job_id}", 0, -1)
        with self.client.pipeline(transaction=False) as pipe:
            for webhook_id in ids:
                pipe.hgetall(P + f"d:{webhook_id.decode()}")
            rows = pipe.execute()
        return [_delivery({k.decode(): v.decode() for k, v in raw.items()}) for raw in rows if raw]

    def forget(self, job_ids: list[str]) -> None:
        for start in range(0, len(job_ids), 100):
            self._forget(args=[P, *job_ids[start : start + 100]])

    def pending_count(self) -> int:
        return int(self.client.zcard(P + "due"))
