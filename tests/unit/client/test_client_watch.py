"""`Client.watch` / `AsyncClient.watch` over real HTTP: a recorded stream served with a broken connection in the
middle gives the same `JobView`s as folding it, resumes with Last-Event-ID, attaches the listing once per
completed file (and once more for a model listed before its file completed); `download_preview` fetches a preview by the URL the listing gives."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fakeapi import JOB, FakeAPI, frame, listing_entry

from image2model.core.client import AsyncClient, Client, JobView, ReconnectPolicy, SSEDecoder
from image2model.core.client.jobview import url_filename
from tests.support.recordings import Recording, load

FAST = ReconnectPolicy(max_attempts=3, max_elapsed=10.0, initial_delay=0.01, max_delay=0.05)


def _serve(fake: FakeAPI, rec: Recording, cut: int) -> None:
    """The stream in two connections: the first breaks after `cut` bytes (mid-frame), the second replays the
    last two frames before the break (as a server that resumes early would), then the rest."""
    frames = [f for f in re.split(rb"(?<=\r\n\r\n)", rec.raw) if f]
    assert b"".join(frames) == rec.raw
    whole = next((n for n in range(len(frames)) if len(b"".join(frames[: n + 1])) > cut), len(frames))
    fake.streams = [[rec.raw[:cut], "drop"], frames[max(0, whole - 2) :]]
    fake.listing = [_local(e.model_dump()) for e in rec.listing.files]


def _local(entry: dict[str, Any]) -> dict[str, Any]:
    """A listing entry whose URLs point at the scripted server (the recording's point at the recorder's)."""
    entry["download_url"] = f"/api/v1/download/{entry['file_id']}/{entry['filename']}"
    entry["previews"] = {
        k: f"/api/v1/download/x/{url_filename(u)}?token=t" for k, u in entry["previews"].items()
    }
    entry["preview_url"] = entry["previews"].get("png")
    return entry


@pytest.mark.parametrize("name", ["three_photos_one_fails", "waited_in_queue"])
def test_watch_yields_each_change_and_resumes_after_a_dropped_connection(
    fake: FakeAPI, url: str, name: str
) -> None:
    rec = load(name)
    _serve(fake, rec, len(rec.raw) // 2)
    with Client(url, reconnect=FAST) as client:
        views = list(client.watch(rec.upload.job_id, JobView.from_upload(rec.upload)))
    assert [_plain(v) for v in views] == [_plain(v) for v in rec.views()[1:]]
    completed = [f for f in views[-1].files if f.status == "completed"]
    assert completed and all(f.entries and f.entries[0].file_id == f.file_id for f in completed)
    resumed_after = fake.stream_requests[1]["last_event_id"]
    assert resumed_after is not None and int(resumed_after) == _last_before_cut(rec, len(rec.raw) // 2)
    listings = [p for _, p, _ in fake.requests if p.endswith("/all")]
    # at most one listing per completed file (here one: the scripted listing already holds every file's entries)
    assert 1 <= len(listings) <= len(completed)


def _plain(view: JobView) -> JobView:
    """A view without its listing entries (their URLs differ between the recording and the scripted server) and
    without the mark of what they were listed for."""
    files = tuple(f.__class__(**{**f.__dict__, "entries": (), "listed": ()}) for f in view.files)
    return JobView(**{**view.__dict__, "files": files})


def _last_before_cut(rec: Recording, cut: int) -> int:
    """The id of the last event the first connection delivered whole (a frame cut short is never dispatched)."""
    return int(SSEDecoder().feed(rec.raw[:cut])[-1].id)


async def test_async_watch_gives_the_same_views(fake: FakeAPI, url: str) -> None:
    rec = load("cancelled_while_running")
    _serve(fake, rec, len(rec.raw) // 3)
    async with AsyncClient(url, reconnect=FAST) as client:
        views = [v async for v in client.watch(rec.upload.job_id)]
    assert [_plain(v) for v in views] == [_plain(v) for v in rec.views(JobView(rec.upload.job_id))[1:]]
    assert views[-1].status == "cancelled" and [f.status for f in views[-1].files] == ["cancelled"] * 2
    assert fake.stream_requests[0]["last_event_id"] is None and fake.stream_requests[1]["last_event_id"]


def test_watch_of_a_finished_view_asks_nothing(fake: FakeAPI, url: str) -> None:
    final = load("every_photo_fails").views()[-1]
    with Client(url) as client:
        assert list(client.watch(final.job_id, final)) == []
    assert fake.requests == []


def test_download_preview_fetches_the_listings_preview_url(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    rec = load("local_one_photo")
    _serve(fake, rec, len(rec.raw))
    glb = next(e for e in rec.listing.files if e.format == "glb")
    names = {kind: url_filename(u) for kind, u in glb.previews.items()}
    fake.blobs = {names["gif"]: b"GIF89a", names["png"]: b"\x89PNG"}
    with Client(url, reconnect=FAST) as client:
        view = list(client.watch(rec.upload.job_id, JobView.from_upload(rec.upload)))[-1]
        entry = view.files[0].entry("glb")
        assert entry is not None
        gif = client.download_preview(entry, "gif", tmp_path)
        png = client.download_preview(entry, dest_dir=tmp_path)
        with pytest.raises(KeyError, match="no mp4 preview"):
            client.download_preview(entry, "mp4", tmp_path)
    assert (gif.name, gif.read_bytes()) == (names["gif"], b"GIF89a")
    assert png.read_bytes() == b"\x89PNG"
    fetched = [p for m, p, h in fake.requests if "preview" in p or "turntable" in p]
    assert fetched == [f"/api/v1/download/x/{names['gif']}", f"/api/v1/download/x/{names['png']}"]


def test_watch_attaches_a_model_listed_before_its_file_completes_and_again_once_it_completes(
    fake: FakeAPI, url: str
) -> None:
    item = {"index": 0, "file_id": "f1", "filename": "chair.png"}
    fake.streams = [
        [
            frame(1, "task_queued", status="queued", files=[item]),
            frame(2, "file_update", **item, progress=60, message="exporting", outputs=["chair.glb"]),
            frame(
                3, "file_update", **item, progress=80, message="rendering turntable", outputs=["chair.glb"]
            ),
            frame(
                4,
                "file_update",
                **item,
                status="completed",
                progress=100,
                outputs=["chair.glb", "chair.stl", "chair.preview.png"],
            ),  # fmt: skip
            frame(5, "task_completed", status="completed", progress=100),
        ]
    ]
    fake.listing = [listing_entry("chair.glb")]
    complete = [
        {**listing_entry("chair.glb"), "previews": {"png": "/p.png"}},
        listing_entry("chair.stl", fmt="stl"),
    ]
    seen: list[tuple[str, tuple[str, ...]]] = []
    with Client(url, reconnect=FAST) as client:
        for view in client.watch(JOB):
            file = view.files[0]
            seen.append((file.status.value, tuple(e.filename for e in file.entries)))
            if file.entries:
                fake.listing = complete  # what the server lists once the file completed
    assert seen == [
        ("queued", ()),
        ("processing", ("chair.glb",)),  # the model, while its previews are still being made
        ("processing", ("chair.glb",)),
        ("completed", ("chair.glb", "chair.stl")),
        ("completed", ("chair.glb", "chair.stl")),
    ]
    assert view.files[0].previews == {"png": "/p.png"} and view.files[0].listed == view.files[0].outputs
    listings = [p for _, p, _ in fake.requests if p.endswith("/all")]
    assert len(listings) == 2  # once for the model, once for the completed file
