"""`JobView` folding on its own: recorded streams of the real service, replays and resumes, queue notices,
failures, cancellation, and every interleaving of files' events the contract allows."""

from __future__ import annotations

import random

import pytest

from image2model.core.client.jobview import FileView, JobView, url_filename
from image2model.core.models import Event, EventType, FileEntry, ItemStatus, JobStatus, UploadResponse
from tests.support import recordings
from tests.support.recordings import NAMES, load


def _fold(rec: recordings.Recording, events: list[Event] | None = None) -> JobView:
    return JobView.from_upload(rec.upload).fold(rec.events if events is None else events)


def _file_state(view: JobView) -> list[tuple]:
    return [(f.index, f.file_id, f.filename, f.status, f.progress, f.error, f.outputs) for f in view.files]


def test_recordings_cover_each_way_a_job_ends() -> None:
    ends = {load(n).events[-1].type for n in NAMES}
    assert ends == {EventType.TASK_COMPLETED, EventType.TASK_FAILED, EventType.TASK_CANCELLED}
    assert any(e.type is EventType.QUEUE_POSITION for n in NAMES for e in load(n).events)


@pytest.mark.parametrize("name", NAMES)
def test_progress_never_goes_back_and_the_view_ends_in_the_streams_terminal_state(name: str) -> None:
    rec = load(name)
    views = rec.views()
    progress = [v.progress for v in views]
    assert progress == sorted(progress)
    final = views[-1]
    assert final.finished and final.last_event_id == rec.stored[-1].seq
    assert final.status.value == rec.events[-1].data["status"]
    assert final.queue_position is None
    assert all(f.finished for f in final.files)
    assert len(final.files) == rec.upload.total_files
    summary = rec.events[-1].data["summary"]
    assert final.summary == summary
    assert final.count(ItemStatus.COMPLETED) == summary["successful_files"]
    assert final.count(ItemStatus.FAILED) == summary["failed_files"]


def test_a_local_job_walks_through_the_generators_stages_to_its_files() -> None:
    rec = load("local_one_photo")
    views = rec.views()
    stages = [v.stage for v in views if v.status == JobStatus.PROCESSING]
    seen = list(dict.fromkeys(stages))
    assert seen[:4] == ["processing", "reading image", "cutting out", "shaping"]
    assert seen.index("texturing") < seen.index("exporting")
    final = views[-1]
    assert final.ok and final.progress == 100 and final.stage == "completed"
    (shoe,) = final.files
    assert shoe.filename == "shoe.png" and shoe.status == ItemStatus.COMPLETED
    assert set(shoe.outputs) >= {e.filename for e in rec.listing.files}
    assert shoe.entry("glb") is not None and shoe.entry("stl") is not None and shoe.entry("obj") is None
    assert set(shoe.previews) >= {"png", "gif"} and shoe.metadata["faces"] <= 2000
    assert [e.format for e in final.entries("glb")] == ["glb"]


def test_the_queue_position_counts_down_then_goes_once_the_job_runs() -> None:
    views = load("waited_in_queue").views()
    queued = [v.queue_position for v in views if v.status == JobStatus.QUEUED]
    assert [p for p in queued if p is not None] == [3, 2, 1]
    assert all(v.queue_position is None for v in views if v.status != JobStatus.QUEUED)


def test_a_notice_counts_only_while_the_job_waits() -> None:
    rec = load("waited_in_queue")
    notice = next(e for e in rec.events if e.type is EventType.QUEUE_POSITION)
    running = _fold(rec, [e for e in rec.stored if e.seq <= 2])
    assert running.status == JobStatus.PROCESSING
    assert running.apply(notice) is running  # a notice sent just before the job started arrives late
    waiting = JobView.from_upload(rec.upload)
    told = waiting.apply(notice)
    assert told.queue_position == notice.data["queue_position"] and told.last_event_id is None
    assert told.apply(notice) is told
    bogus = notice.model_copy(update={"data": {**notice.data, "queue_position": 0}})
    assert waiting.apply(bogus) is waiting


def test_failures_carry_the_generators_words_per_file_and_for_the_job() -> None:
    partial = load("three_photos_one_fails").views()[-1]
    assert partial.ok and [f.status for f in partial.files] == [
        ItemStatus.COMPLETED,
        ItemStatus.FAILED,
        ItemStatus.COMPLETED,
    ]
    (broken,) = partial.failures
    assert broken.filename == "broken.jpg" and "asked to fail" in (broken.error or "")
    assert partial.error is None and not broken.entries
    assert [bool(f.entries) for f in partial.files] == [True, False, True]

    failed = load("every_photo_fails").views()[-1]
    assert failed.status == JobStatus.FAILED and not failed.ok
    assert "asked to fail" in (failed.error or "") and "mug.jpg" in (failed.error or "")


def test_cancelling_ends_the_running_and_the_waiting_file() -> None:
    views = load("cancelled_while_running").views()
    final = views[-1]
    assert final.status == JobStatus.CANCELLED and final.error is None
    assert [f.status for f in final.files] == [ItemStatus.CANCELLED, ItemStatus.CANCELLED]
    assert any(v.current is not None and v.current.index == 0 for v in views)


def test_a_worker_crash_shows_as_a_retry_then_a_second_attempt() -> None:
    views = load("retried_after_a_worker_crash").views()
    retrying = next(v for v in views if v.files[0].stage.startswith("retrying"))
    assert retrying.status == JobStatus.PROCESSING and retrying.files[0].status == ItemStatus.QUEUED
    assert retrying.current is None and retrying.stage == retrying.message
    assert views[-1].files[0].attempt == 2 and views[-1].ok


@pytest.mark.parametrize("name", NAMES)
def test_a_resume_that_replays_events_already_folded_changes_nothing(name: str) -> None:
    rec = load(name)
    whole = _fold(rec)
    for cut in range(len(rec.events) + 1):
        before = _fold(rec, rec.events[:cut])
        for overlap in (0, 1, 3):
            resumed = before.fold(rec.stored[max(0, before_count(rec, cut) - overlap) :])
            assert resumed == whole, (cut, overlap)
    assert whole.fold(rec.events) is whole


def before_count(rec: recordings.Recording, cut: int) -> int:
    """How many stored events the first `cut` events of the stream hold."""
    return sum(1 for e in rec.events[:cut] if e.type is not EventType.QUEUE_POSITION)


@pytest.mark.parametrize("name", NAMES)
def test_a_late_connection_without_the_upload_builds_the_same_files(name: str) -> None:
    rec = load(name)
    late = JobView(rec.upload.job_id).fold(rec.events)
    assert _file_state(late) == _file_state(_fold(rec))
    assert late.status == _fold(rec).status


@pytest.mark.parametrize("seed", range(8))
def test_any_interleaving_of_the_files_events_gives_the_same_files(seed: int) -> None:
    """Several workers report at once: each file's events keep their order, files interleave freely."""
    rec = load("three_photos_one_fails")
    head, *middle, tail = rec.stored
    per_file: dict[int, list[Event]] = {}
    for event in middle:
        if event.type is EventType.FILE_UPDATE:
            per_file.setdefault(event.data["index"], []).append(event)
    rng = random.Random(seed)
    queues = [list(events) for events in per_file.values()]
    mixed: list[Event] = []
    while any(queues):
        mixed.append(rng.choice([q for q in queues if q]).pop(0))
    renumbered = [
        e.model_copy(update={"seq": n, "data": {**e.data, "seq": n}})
        for n, e in enumerate([head, *mixed, tail], start=1)
    ]
    view = _fold(rec, renumbered)
    assert _file_state(view) == _file_state(_fold(rec))
    assert view.status == JobStatus.COMPLETED


def test_nothing_changes_after_the_terminal_event() -> None:
    rec = load("every_photo_fails")
    final = _fold(rec)
    later = Event(
        seq=final.last_event_id + 1,
        type=EventType.FILE_UPDATE,
        data={"index": 0, "status": "processing", "message": "zombie"},
    )
    assert final.apply(later) is final


def test_a_gap_in_the_ids_still_applies_what_arrives() -> None:
    rec = load("local_one_photo")
    skipped = [rec.stored[0], *rec.stored[5:]]
    assert _file_state(_fold(rec, skipped)) == _file_state(_fold(rec))


def test_an_event_for_a_file_not_heard_of_adds_it_queued_up_to_that_index() -> None:
    view = JobView("j").apply(
        Event(
            seq=1, type=EventType.FILE_UPDATE, data={"index": 2, "status": "processing", "filename": "c.png"}
        )
    )
    assert [f.status for f in view.files] == [ItemStatus.QUEUED, ItemStatus.QUEUED, ItemStatus.PROCESSING]
    assert (
        view.status == JobStatus.PROCESSING and view.current is view.files[2] and view.stage == "processing"
    )


def test_a_multiview_upload_is_one_file_of_several_views() -> None:
    body = {
        "job_id": "j",
        "task_id": "j",
        "batch_id": "j",
        "status": "queued",
        "total_files": 1,
        "generator": "local",
        "multiview": True,
        "message": "1 file(s) uploaded",
        "uploaded_files": [
            {"file_id": "f", "filename": n, "file_size": 1, "content_type": "image/png", "status": "queued"}
            for n in ("front.png", "left.png", "back.png", "right.png")
        ],
    }
    view = JobView.from_upload(UploadResponse.model_validate(body))
    assert view.files == (FileView(0, "f", "front.png"),)


def test_previews_come_from_the_listing_entry_and_url_names_are_decoded() -> None:
    entry = FileEntry(
        file_id="f",
        source_filename="a b.png",
        filename="a_b.glb",
        format="glb",
        size=1,
        mime_type="model/gltf-binary",
        created_time=0,
        download_url="http://h/api/v1/download/j/a_b.glb?token=t",
        preview_url="http://h/api/v1/download/j/a%20b.preview.png?token=t",
        previews={"gif": "http://h/api/v1/download/j/a_b.turntable.gif?token=t"},
    )
    view = JobView("j", files=(FileView(0, "f"),)).with_entries([entry])
    assert view.files[0].previews == {"gif": entry.previews["gif"]}  # the listing's previews win
    bare = entry.model_copy(update={"previews": {}})
    assert JobView("j", files=(FileView(0, "f"),)).with_entries([bare]).files[0].previews == {
        "png": entry.preview_url
    }
    assert url_filename(entry.preview_url or "") == "a b.preview.png"
    assert url_filename(entry.download_url) == "a_b.glb"
