"""Idempotent requests: the same request sent twice with one `Idempotency-Key` (a retry after a lost answer)
takes effect once, and the retry gets the first answer again.

Semantics (contract v1.1): a key is 1..255 visible ASCII characters, scoped to the API key that sent it and kept
`idempotency_ttl_seconds` (24 h). The same key with the same request (its fingerprint) answers the first request's
stored answer with `Idempotent-Replayed: true` and creates nothing; with another request `422
IDEMPOTENCY_MISMATCH`; while the first is still running `409 IDEMPOTENCY_IN_PROGRESS`. A request that fails
leaves no record, so its retry runs again. Records live in the job store (SQLite or Redis), so a restart keeps
them, and they are deleted with the job they concern.

How a route uses it (POST /upload/ does exactly this; POST /jobs/{id}/exports does the same):

    async def create_thing(..., key: IdempotencyKeyDep, who: Caller = Depends(require_key)):
        fp = fingerprint("POST /api/v1/jobs/{job_id}/exports", {"job_id": job_id, "body": body.model_dump()})

        async def action() -> Answer:           # does the work; runs only when the key is new
            export = await ...
            return Answer(201, export.model_dump(mode="json"), job_id)

        answer = await state.idempotency.run(who.owner, key, fp, action)   # key None: just action()
        return answer.response()                # JSONResponse + Idempotent-Replayed when replayed

`run_sync` is the same for a blocking action already inside a worker thread (the upload's). An action that creates
its records in one store transaction can store the answer in that same transaction (`recorder`, as the upload does
through `JobStore.create_job(..., answer)`) and return `Answer(..., recorded=True)`; otherwise `run` stores it right
after the action.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from image2model.api.store import JobStore
from image2model.api.store.base import IdempotencyAnswer
from image2model.core.errors import IdempotencyInProgress, IdempotencyMismatch

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
LOCK_SECONDS = 120.0
"""How long a claim holds while its request runs (an export may wait 60 s for its worker); a claim whose API
process died lapses after this, and the key can be used again."""

IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        description="1..255 visible ASCII characters. A retry with the same key and the same request gets the first "
        "answer again (with `Idempotent-Replayed: true`) and creates nothing; kept 24 h per API key.",
    ),
]
"""The validated `Idempotency-Key` header of a request, or None when it was not sent."""


@dataclass(frozen=True)
class Answer:
    """What an idempotent action answered: kept for replays (`job_id` ties the record to that job's deletion)."""

    status_code: int
    body: dict[str, Any]
    job_id: str
    replayed: bool = False
    recorded: bool = False
    """The action stored this answer on its claim itself, with what it created (see `Idempotency.recorder`)."""

    def headers(self) -> dict[str, str]:
        return {REPLAYED_HEADER: "true"} if self.replayed else {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status_code, headers=self.headers())


def fingerprint(operation: str, parts: Any) -> str:
    """A digest of one request: the operation (method and route) and its parts as canonical JSON (files by their
    bytes' digests, fields, path parameters). Two requests are "the same" when their fingerprints are equal."""
    canonical = json.dumps([operation, parts], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Idempotency:
    """Idempotency records in a job store, with the contract's decisions over them."""

    def __init__(self, store: JobStore, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    @staticmethod
    def _stored_key(key: str) -> str:
        # The store keeps a digest: keys are the client's and may carry meaning; their digest is enough to match.
        return hashlib.sha256(key.encode()).hexdigest()[:40]

    def _claim(self, owner: str, key: str, fp: str) -> Answer | None:
        """None when this request may go ahead (its claim is stored); the first answer when it is a replay."""
        record = self.store.idempotency_claim(
            owner, self._stored_key(key), fp, self._clock(), self.ttl_seconds, LOCK_SECONDS
        )
        if record is None:
            return None
        shown = key if len(key) <= 40 else key[:40] + "..."
        if record.fingerprint != fp:
            hours = self.ttl_seconds / 3600
            raise IdempotencyMismatch(
                f"The Idempotency-Key {shown!r} was already used with a different request (other files, fields or "
                f"target) in the last {hours:g} h. Send a new key for a new request.",
                {"idempotency_key": shown},
            )
        if not record.finished or record.body is None or record.job_id is None or record.status_code is None:
            raise IdempotencyInProgress(
                f"The first request with the Idempotency-Key {shown!r} is still being processed; retry in a moment "
                "to get its answer.",
                {"idempotency_key": shown, "retry_after": 1},
            )
        return Answer(record.status_code, record.body, record.job_id, replayed=True)

    def _finish(self, owner: str, key: str, fp: str, answer: Answer) -> None:
        self.store.idempotency_finish(
            owner, self._stored_key(key), fp, answer.status_code, answer.body, answer.job_id
        )

    def recorder(
        self, owner: str, key: str, fp: str, status_code: int
    ) -> Callable[[BaseModel], IdempotencyAnswer]:
        """For an action that writes what it creates in one store transaction: it turns the answer into the record
        to store on this request's claim in that transaction (then it returns `Answer(..., recorded=True)`), so a
        crash between the two cannot leave a created job behind a key that would create another."""

        def record(response: BaseModel) -> IdempotencyAnswer:
            body = response.model_dump(mode="json", exclude={"files"})
            return IdempotencyAnswer(owner, self._stored_key(key), fp, status_code, body, self.ttl_seconds)

        return record

    def _release(self, owner: str, key: str, fp: str) -> None:
        self.store.idempotency_release(owner, self._stored_key(key), fp)

    def run_sync(self, owner: str, key: str | None, fp: str, action: Callable[[], Answer]) -> Answer:
        """Run a blocking `action` once per (owner, key, request); call it from a worker thread."""
        if key is None:
            return action()
        replay = self._claim(owner, key, fp)
        if replay is not None:
            return replay
        try:
            answer = action()
        except BaseException:
            self._release(owner, key, fp)
            raise
        if not answer.recorded:
            self._finish(owner, key, fp, answer)
        return answer

    async def run(
        self, owner: str, key: str | None, fp: str, action: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """Run an async `action` once per (owner, key, request); the store calls go to worker threads."""
        if key is None:
            return await action()
        replay = await anyio.to_thread.run_sync(self._claim, owner, key, fp)
        if replay is not None:
            return replay
        try:
            answer = await action()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._release, owner, key, fp)
            raise
        if not answer.recorded:
            await anyio.to_thread.run_sync(self._finish, owner, key, fp, answer)
        return answer
