"""Export records in the job store, on every backend: claim once, finish once, recover from dead workers."""

from __future__ import annotations

import threading
import time
import uuid

from image2model.api.store import ExportRecord, JobStore
from image2model.core.models import ExportStatus
from tests.unit.test_store import make_job, store  # noqa: F401 - the backend fixture

__all__ = ["store"]


def new_export(store: JobStore, job_id: str = "job-1") -> ExportRecord:  # noqa: F811
    record = ExportRecord(
        export_id=str(uuid.uuid4()),
        job_id=job_id,
        formats=["stl"],
        shaping={"height_mm": 80.0, "up": "z", "origin": "bottom", "face_limit": None},
        file_ids=["f0"],
        created_at=time.time(),
    )
    return store.create_export(record)


def test_an_export_is_claimed_by_one_worker_only(store: JobStore) -> None:  # noqa: F811
    make_job(store)
    record = new_export(store)
    won: list[ExportRecord | None] = []
    threads = [
        threading.Thread(target=lambda: won.append(store.claim_export(record.export_id, 30)))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    claims = [w for w in won if w is not None]
    assert len(claims) == 1 and claims[0].status == ExportStatus.PROCESSING and claims[0].attempt == 1
    assert store.load_export(record.export_id).status == ExportStatus.PROCESSING


def test_completing_stores_the_files_and_a_stale_attempt_cannot_overwrite(store: JobStore) -> None:  # noqa: F811
    make_job(store)
    record = new_export(store)
    claimed = store.claim_export(record.export_id, 30)
    files = [{"file_id": "f0", "filename": "0.80mm-zup-bottom.stl", "key": "job-1/out/0.80mm-zup-bottom.stl"}]
    assert not store.complete_export(record.export_id, claimed.attempt + 1, files)
    assert store.complete_export(record.export_id, claimed.attempt, files)
    assert not store.fail_export(record.export_id, claimed.attempt, "late")
    done = store.load_export(record.export_id)
    assert done.status == ExportStatus.COMPLETED and done.files == files and done.finished_at is not None
    assert [e.export_id for e in store.exports_of("job-1")] == [record.export_id]
    assert store.exports_of("job-2") == []


def test_a_dead_workers_export_is_queued_again_then_given_up(store: JobStore) -> None:  # noqa: F811
    make_job(store)
    record = new_export(store)
    store.claim_export(record.export_id, 0.0)
    time.sleep(0.01)
    assert store.reap_exports(max_attempts=2, stale_after=0) == [record.export_id]
    assert store.load_export(record.export_id).status == ExportStatus.QUEUED
    store.claim_export(record.export_id, 0.0)
    time.sleep(0.01)
    assert store.reap_exports(max_attempts=2, stale_after=0) == []
    given_up = store.load_export(record.export_id)
    assert given_up.status == ExportStatus.FAILED and "stopped 2 times" in given_up.error


def test_a_queued_export_nobody_picked_up_is_enqueued_again(store: JobStore) -> None:  # noqa: F811
    make_job(store)
    record = new_export(store)
    assert store.reap_exports(max_attempts=3, stale_after=60) == []
    time.sleep(0.02)
    assert store.reap_exports(max_attempts=3, stale_after=0.01) == [record.export_id]
    assert store.reap_exports(max_attempts=3, stale_after=0) == []


def test_deleting_a_job_removes_its_exports(store: JobStore) -> None:  # noqa: F811
    make_job(store)
    record = new_export(store)
    store.delete(["job-1"])
    assert store.load_export(record.export_id) is None and store.exports_of("job-1") == []
    assert store.export_reap_candidates(time.time() + 3600, time.time() + 3600) == []
