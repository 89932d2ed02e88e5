"""Job store behaviour, run against every backend (SQLite, and Redis on a real redis-server)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from image2model.api.store import ItemRecord, JobRecord, JobStore
from image2model.api.store.sqlite import SqliteJobStore
from image2model.core.errors import JobFinished, JobNotFound
from image2model.core.models import EventType, ItemStatus, JobStatus


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, tmp_path: Path) -> JobStore:
    s: JobStore
    if request.param == "redis":
        from image2model.api.store.redis import RedisJobStore

        s = RedisJobStore(request.getfixturevalue("redis_server").url)
        s.client.flushdb()
    else:
        s = SqliteJobStore(tmp_path / "state.db")
    s.progress_min_interval = 0.0
    yield s
    s.close()


def make_job(
    store: JobStore, n: int = 2, job_id: str = "job-1", created: float | None = None, owner: str = "o"
) -> str:
    t = created if created is not None else time.time()
    job = JobRecord(
        job_id=job_id,
        owner=owner,
        generator="instant",
        face_limit=100,
        formats=["glb"],
        options={},
        total=n,
        created_at=t,
        updated_at=t,
    )
    items = [
        ItemRecord(
            index=i,
            file_id=f"f{i}",
            filename=f"{i}.jpg",
            basename=str(i),
            inputs=[f"{job_id}/in/{i}"],
            content_type="image/jpeg",
            size=10,
        )
        for i in range(n)
    ]
    store.create_job(job, items)
    return job_id


def types(store: JobStore, job_id: str) -> list[str]:
    return [e.type.value for e in store.events_after(job_id)]


def test_claim_is_a_compare_and_set(store):
    job_id = make_job(store)
    first = store.claim(job_id, 0, lease_seconds=30)
    assert first is not None and first.attempt == 1 and first.status == ItemStatus.PROCESSING
    assert store.claim(job_id, 0, lease_seconds=30) is None
    assert store.load(job_id).job.status == JobStatus.PROCESSING


def test_events_have_contiguous_seq_and_progress_never_decreases(store):
    job_id = make_job(store)
    for index in (0, 1):
        item = store.claim(job_id, index, 30)
        for fraction in (0.2, 0.1, 0.6):
            assert store.report_progress(job_id, index, item.attempt, fraction, "shaping", 30)
        assert store.complete(job_id, index, item.attempt, [{"filename": f"{index}.glb"}], {})
    events = store.events_after(job_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    overall = [e.data["progress"] for e in events if e.type == EventType.TASK_PROGRESS]
    assert overall == sorted(overall) and overall[-1] == 100
    per_file = [
        e.data["progress"] for e in events if e.type == EventType.FILE_UPDATE and e.data["index"] == 0
    ]
    assert per_file == sorted(per_file)
    assert events[-1].type == EventType.TASK_COMPLETED
    assert events[-1].data["summary"]["successful_files"] == 2


def test_stale_attempt_cannot_complete_or_report(store):
    job_id = make_job(store, n=1)
    store.claim(job_id, 0, lease_seconds=0.01)
    time.sleep(0.02)
    result = store.reap(lease_seconds=30, max_attempts=3, stale_after=0)
    assert result.requeue == [(job_id, 0, "instant")]
    again = store.claim(job_id, 0, 30)
    assert again.attempt == 2
    assert not store.complete(job_id, 0, 1, [], {})
    assert not store.report_progress(job_id, 0, 1, 0.5, "x", 30)
    assert store.complete(job_id, 0, 2, [{"filename": "0.glb"}], {})
    assert store.load(job_id).job.status == JobStatus.COMPLETED


def test_a_completed_item_carries_the_generators_warning_as_its_message(store):
    job_id = make_job(store)
    for index, metadata in ((0, {"warning": "Could not separate the object; made a plaque."}), (1, {})):
        item = store.claim(job_id, index, 30)
        assert store.complete(job_id, index, item.attempt, [{"filename": f"{index}.glb"}], metadata)
    items = store.load(job_id).items
    assert [i.message for i in items] == ["Could not separate the object; made a plaque.", "completed"]


def test_reaper_fails_an_item_after_max_attempts(store):
    job_id = make_job(store, n=1)
    store.claim(job_id, 0, lease_seconds=0.01)
    time.sleep(0.02)
    result = store.reap(lease_seconds=30, max_attempts=1, stale_after=0)
    assert result.failed == 1 and result.requeue == []
    state = store.load(job_id)
    assert state.job.status == JobStatus.FAILED and "stopped 1 times" in state.items[0].error
    assert types(store, job_id)[-1] == "task_failed"


def test_reaper_requeues_lost_queued_items_only_when_asked(store):
    job_id = make_job(store, n=1, created=time.time())
    assert store.reap(30, 3, stale_after=0).requeue == []
    time.sleep(0.02)
    assert store.reap(30, 3, stale_after=0.01).requeue == [(job_id, 0, "instant")]


def test_cancel_ends_queued_items_and_stops_running_ones(store):
    job_id = make_job(store, n=3)
    running = store.claim(job_id, 0, 30)
    assert sorted(store.cancel(job_id)) == [1, 2]
    assert store.load(job_id).job.status == JobStatus.PROCESSING
    assert not store.report_progress(job_id, 0, running.attempt, 0.5, "x", 30)
    store.mark_cancelled(job_id, 0, running.attempt)
    state = store.load(job_id)
    assert state.job.status == JobStatus.CANCELLED
    assert [i.status for i in state.items] == [ItemStatus.CANCELLED] * 3
    assert types(store, job_id)[-1] == "task_cancelled"
    with pytest.raises(JobFinished):
        store.cancel(job_id)
    with pytest.raises(JobNotFound):
        store.cancel("nope")


def test_all_failed_items_give_task_failed_with_every_reason(store):
    job_id = make_job(store, n=2)
    for index in (0, 1):
        item = store.claim(job_id, index, 30)
        store.fail(job_id, index, item.attempt, f"reason {index}")
    state = store.load(job_id)
    assert state.job.status == JobStatus.FAILED
    assert "reason 0" in state.job.error and "reason 1" in state.job.error


def test_queue_positions_count_the_items_waiting_ahead_of_each_job(store):
    for job_id, n in (("a", 1), ("b", 2), ("c", 1)):
        make_job(store, n=n, job_id=job_id)
        time.sleep(0.002)  # distinct enqueue times
    assert store.queue_positions() == {"a": 1, "b": 2, "c": 4}

    store.claim("a", 0, 30)
    assert store.queue_positions() == {"b": 1, "c": 3}
    store.claim("b", 0, 30)
    assert store.queue_positions() == {"b": 1, "c": 2}
    store.cancel("b")
    assert store.queue_positions() == {"c": 1}
    assert store.queue_positions(limit=0) == {}


def test_tail_returns_every_job_in_append_order(store):
    cursor = store.head()
    make_job(store, n=1, job_id="a")
    make_job(store, n=1, job_id="b")
    cursor, rows = store.tail(cursor)
    assert [(job, e.seq) for job, e in rows] == [("a", 1), ("b", 1)]
    assert store.tail(cursor) == (cursor, [])


def test_wait_tail_wakes_on_the_next_event_or_answers_at_once(store):
    cursor = store.head()
    if not store.blocking_tail:
        t = time.monotonic()
        assert store.wait_tail(cursor, timeout=2.0) == (cursor, [])
        assert time.monotonic() - t < 0.5  # readers of a polling backend poll; it must not sleep for them
        return
    writer = threading.Timer(0.3, lambda: make_job(store, n=1, job_id="late"))
    t = time.monotonic()
    writer.start()
    cursor, rows = store.wait_tail(cursor, timeout=5.0)
    waited = time.monotonic() - t
    writer.join()
    assert [(job, e.seq) for job, e in rows] == [("late", 1)]
    assert 0.25 < waited < 2.0  # woke on the write, not at the timeout
    t = time.monotonic()
    assert store.wait_tail(cursor, timeout=0.3) == (cursor, [])
    assert time.monotonic() - t >= 0.25


def test_old_jobs_are_found_for_retention_and_deleted_with_their_events(store):
    make_job(store, n=1, job_id="old", created=time.time() - 100)
    make_job(store, n=1, job_id="new")
    assert store.jobs_created_before(time.time() - 50) == ["old"]
    store.delete(["old"])
    assert store.load("old") is None and store.events_after("old") == []
    assert store.load("new") is not None
    assert store.counts()["jobs"]["queued"] == 1


def test_a_superseded_attempt_cannot_cancel_the_item(store):
    job_id = make_job(store, n=1)
    store.claim(job_id, 0, lease_seconds=0.01)
    time.sleep(0.02)
    store.reap(lease_seconds=30, max_attempts=3, stale_after=0)
    current = store.claim(job_id, 0, 30)
    assert store.mark_cancelled(job_id, 0, attempt=1) is False
    assert store.load(job_id).items[0].status == ItemStatus.PROCESSING
    assert store.mark_cancelled(job_id, 0, current.attempt) is True


def test_concurrent_workers_on_one_job_keep_seqs_contiguous_and_end_once(store):
    n = 8
    cursor = store.head()
    job_id = make_job(store, n=n)
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def work(index: int) -> None:
        try:
            start.wait(timeout=10)
            item = store.claim(job_id, index, 30)
            assert item is not None
            for fraction in (0.1, 0.3, 0.5, 0.7, 0.9):
                assert store.report_progress(job_id, index, item.attempt, fraction, f"step {fraction}", 30)
                assert store.renew_lease(job_id, index, item.attempt, 30)
            if index % 4 == 3:
                assert store.fail(job_id, index, item.attempt, "bad photo")
            else:
                assert store.complete(job_id, index, item.attempt, [{"filename": f"{index}.glb"}], {})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    events = store.events_after(job_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    terminal = [e for e in events if e.type in (EventType.TASK_COMPLETED, EventType.TASK_FAILED)]
    assert len(terminal) == 1 and events[-1] is terminal[0]
    assert terminal[0].data["summary"] == {
        "total_files": 8,
        "successful_files": 6,
        "failed_files": 2,
        "cancelled_files": 0,
    }
    state = store.load(job_id)
    assert state.job.status == JobStatus.COMPLETED and state.job.seq == len(events)
    _, rows = store.tail(cursor, limit=10_000)
    assert [e.seq for job, e in rows if job == job_id] == [e.seq for e in events]
    assert store.counts()["items"] == {
        "queued": 0,
        "processing": 0,
        "completed": 6,
        "failed": 2,
        "cancelled": 0,
    }


def test_remote_slot_cap_holds_under_concurrency(store):
    jobs = [make_job(store, n=2, job_id=f"j{k}") for k in range(4)]
    claimed = [(j, i, store.claim(j, i, 30).attempt) for j in jobs for i in range(2)]
    results: dict[tuple[str, int, int], bool] = {}

    def take(job_id: str, index: int, attempt: int) -> None:
        results[(job_id, index, attempt)] = store.take_remote_slot(job_id, index, attempt, "fal", cap=3)

    threads = [threading.Thread(target=take, args=c) for c in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results.values()) == [False] * 5 + [True] * 3
    assert store.in_flight("fal") == 3
    holder = next(c for c, ok in results.items() if ok)
    assert store.complete(*holder, [{"filename": "x.glb"}], {})
    assert store.in_flight("fal") == 2


# ---- job API v1.1: history, deletion, idempotency records ------------------------------------------------


def test_history_pages_through_one_owners_jobs_newest_first(store):
    t = 1_700_000_000.0
    # five jobs of "a" (two created in the same instant), two of "b"
    for n, created in enumerate([t, t + 1, t + 2, t + 2, t + 3]):
        make_job(store, n=1, job_id=f"a{n}", created=created, owner="a")
    for n in range(2):
        make_job(store, n=1, job_id=f"b{n}", created=t + 10 + n, owner="b")
    pages, before = [], None
    for _ in range(10):
        page = store.list_jobs("a", 2, before=before)
        if not page:
            break
        pages.append([e.job_id for e in page])
        before = (page[-1].created_at, page[-1].job_id)
    assert pages == [["a4", "a3"], ["a2", "a1"], ["a0"]]
    assert [e.job_id for e in store.list_jobs("b", 20)] == ["b1", "b0"]
    assert store.list_jobs("nobody", 20) == []
    first = store.list_jobs("a", 1)[0]
    assert (first.created_at, first.status, first.total, first.generator, first.face_limit) == (
        t + 3,
        JobStatus.QUEUED,
        1,
        "instant",
        100,
    )
    assert first.preview is None


def test_history_filters_by_status_as_jobs_move_on(store):
    for n in range(3):
        make_job(store, n=1, job_id=f"j{n}", created=1000.0 + n)
    item = store.claim("j1", 0, 30)
    outputs = [
        {"filename": "0.glb", "format": "glb", "role": "model"},
        {"filename": "0.preview.webp", "format": "webp", "role": "preview"},
        {"filename": "0.preview.png", "format": "png", "role": "preview"},
    ]
    store.complete("j1", 0, item.attempt, outputs, {})
    store.cancel("j2")

    def ids(status: JobStatus) -> list[str]:
        return [e.job_id for e in store.list_jobs("o", 20, status=status)]

    assert ids(JobStatus.QUEUED) == ["j0"]
    assert ids(JobStatus.COMPLETED) == ["j1"]
    assert ids(JobStatus.CANCELLED) == ["j2"]
    assert ids(JobStatus.PROCESSING) == []
    assert store.list_jobs("o", 20, status=JobStatus.CANCELLED, before=(1002.0, "j2")) == []
    assert [e.preview for e in store.list_jobs("o", 20)] == [None, "0.preview.png", None]


def test_delete_removes_a_job_with_its_events_history_and_idempotency_records(store):
    make_job(store, n=2, job_id="gone", created=10.0)
    make_job(store, n=1, job_id="kept", created=20.0)
    assert store.idempotency_claim("o", "k1", "fp", now=100.0, ttl=3600, lock_seconds=60) is None
    store.idempotency_finish("o", "k1", "fp", 200, {"job_id": "gone"}, "gone")
    assert store.idempotency_claim("o", "k2", "fp", now=100.0, ttl=3600, lock_seconds=60) is None
    store.idempotency_finish("o", "k2", "fp", 200, {"job_id": "kept"}, "kept")
    store.claim("gone", 0, 30)

    store.delete(["gone"])

    assert store.load("gone") is None and store.events_after("gone") == []
    assert [e.job_id for e in store.list_jobs("o", 20)] == ["kept"]
    assert store.list_jobs("o", 20, status=JobStatus.PROCESSING) == []
    assert store.counts()["items"] == {
        "queued": 1,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert store.queued_items(10) == ["kept"] and store.reap_candidates(time.time() + 60, 0) == []
    # the record of the deleted job is gone (a new claim goes ahead); the other job's is kept
    assert store.idempotency_claim("o", "k1", "fp", now=101.0, ttl=3600, lock_seconds=60) is None
    kept = store.idempotency_claim("o", "k2", "fp", now=101.0, ttl=3600, lock_seconds=60)
    assert kept is not None and kept.job_id == "kept" and kept.body == {"job_id": "kept"}


def test_idempotency_claim_then_finish_then_replay_until_it_expires(store):
    now = time.time()
    assert store.idempotency_claim("o", "key", "fp-1", now, ttl=60, lock_seconds=30) is None
    pending = store.idempotency_claim("o", "key", "fp-2", now + 1, ttl=60, lock_seconds=30)
    assert pending is not None and not pending.finished and pending.fingerprint == "fp-1"
    store.idempotency_finish("o", "key", "fp-1", 200, {"job_id": "j", "n": [1, 2]}, "j")
    done = store.idempotency_claim("o", "key", "fp-1", now + 40, ttl=60, lock_seconds=30)
    assert done is not None and done.finished
    assert (done.status_code, done.body, done.job_id) == (200, {"job_id": "j", "n": [1, 2]}, "j")
    # scoped to the owner: another owner's same key is a different record
    assert store.idempotency_claim("p", "key", "fp-9", now + 1, ttl=60, lock_seconds=30) is None


def test_idempotency_released_or_abandoned_claims_can_be_taken_again(store):
    now = time.time()
    assert store.idempotency_claim("o", "a", "fp", now, ttl=600, lock_seconds=5) is None
    store.idempotency_release("o", "a", "fp")
    assert store.idempotency_claim("o", "a", "fp-new", now, ttl=600, lock_seconds=5) is None
    # a claim whose request never finished (the API died) lapses after its lock
    assert store.idempotency_claim("o", "b", "fp", now, ttl=600, lock_seconds=5) is None
    assert store.idempotency_claim("o", "b", "fp", now + 1, ttl=600, lock_seconds=5) is not None
    assert store.idempotency_claim("o", "b", "other", now + 6, ttl=600, lock_seconds=5) is None
    # the first request finishing late does not overwrite the new claim
    store.idempotency_finish("o", "b", "fp", 200, {"late": True}, "j")
    current = store.idempotency_claim("o", "b", "x", now + 7, ttl=600, lock_seconds=5)
    assert current is not None and current.fingerprint == "other" and not current.finished


def test_finished_idempotency_records_expire_after_their_keep_time(store):
    now = time.time()
    store.idempotency_claim("o", "old", "fp", now - 100, ttl=50, lock_seconds=5)
    store.idempotency_finish("o", "old", "fp", 200, {}, "j")
    assert store.idempotency_claim("o", "old", "fp2", now, ttl=50, lock_seconds=5) is None


def test_an_answer_stored_with_the_job_it_created_is_replayed_and_deleted_with_it(store):
    from image2model.api.store.base import IdempotencyAnswer

    now = time.time()
    assert store.idempotency_claim("o", "k", "fp", now, ttl=600, lock_seconds=60) is None
    t = time.time()
    job = JobRecord("made", "o", "instant", None, ["glb"], {}, 0, t, t)
    store.create_job(job, [], IdempotencyAnswer("o", "k", "fp", 200, {"job_id": "made"}, 600))
    record = store.idempotency_claim("o", "k", "fp", now + 1, ttl=600, lock_seconds=60)
    assert (
        record is not None
        and record.finished
        and (record.job_id, record.body) == ("made", {"job_id": "made"})
    )
    store.delete(["made"])
    assert store.idempotency_claim("o", "k", "fp", now + 2, ttl=600, lock_seconds=60) is None
