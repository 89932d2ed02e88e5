"""`image2model generate` against the scripted server: saved paths, exit codes, messages on stderr."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from fakeapi import FakeAPI, envelope, frame, listing_entry, upload_body

from image2model.core.client import JobView
from image2model.core.client.cli import (
    add_delete_arguments,
    add_generate_arguments,
    add_jobs_arguments,
    delete_command,
    description,
    generate_command,
    jobs_command,
    postfix,
)
from image2model.core.models import Event, EventType, UploadResponse
from tests.support.recordings import NAMES, load

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def _run(tmp_path: Path, url: str, **kwargs: object) -> tuple[int, str, str]:
    image = tmp_path / "chair.png"
    image.write_bytes(PNG)
    out, err = io.StringIO(), io.StringIO()
    args = {"images": [str(image)], "server": url, "out_dir": str(tmp_path / "out"), "quiet": False}
    args.update(kwargs)
    code = generate_command(**args, stdout=out, stderr=err)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def _events(last: bytes, outcome: str = "completed") -> list[bytes]:
    return [
        frame(1, "task_queued", status="queued", total_files=1),
        frame(2, "file_update", file_id="f1", filename="chair.png", index=0, progress=40),
        frame(3, "file_update", file_id="f1", filename="chair.png", index=0, status=outcome, progress=100),
        last,
    ]


def test_generate_downloads_results_and_prints_paths(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    fake.streams = [_events(frame(4, "task_completed", status="completed", progress=100))]
    fake.blobs = {"chair.glb": b"GLB", "chair.obj": b"OBJ"}
    fake.listing = [listing_entry("chair.glb"), listing_entry("chair.obj", fmt="obj")]
    code, out, err = _run(tmp_path, url, formats="glb,obj", face_limit=1000, api_key="k")
    assert code == 0, err
    saved = [Path(line) for line in out.splitlines()]
    assert saved == [tmp_path / "out" / "chair.glb", tmp_path / "out" / "chair.obj"]
    assert saved[1].read_bytes() == b"OBJ"
    assert fake.uploads[0]["fields"] == {"face_limit": "1000", "formats": "glb,obj"}
    assert fake.uploads[0]["headers"]["authorization"] == "Bearer k"
    assert "100%" in err  # the bar reached the end


def test_failed_job_exits_non_zero_with_the_apis_message(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    failed = frame(4, "task_failed", status="failed", error="chair.png: no object found")
    fake.streams = [_events(failed, outcome="failed")]
    fake.streams[0][2] = fake.streams[0][2].replace(b'"index": 0', b'"index": 0, "error": "no object found"')
    code, out, err = _run(tmp_path, url, quiet=True)
    assert code == 1
    assert out == ""
    assert "error: job job-1 failed: chair.png: no object found" in err
    assert "  - chair.png: no object found" in err
    assert not (tmp_path / "out").exists()
    assert not [p for _, p, _ in fake.requests if "/download/" in p]


def test_rejected_upload_exits_2_with_the_apis_message(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    fake.upload_answer = envelope(
        400,
        "VALIDATION_ERROR",
        "face_limit must be between 1000 and 200000",
        errors=[{"field": "face_limit", "message": "too small"}],
    )
    code, out, err = _run(tmp_path, url, face_limit=1)
    assert code == 2
    assert "face_limit must be between 1000 and 200000 [VALIDATION_ERROR]" in err
    assert "face_limit: too small" in err
    assert fake.streams == [] and out == ""


def test_server_down_exits_3_and_says_how_to_start_it(dead_url: str, tmp_path: Path) -> None:
    code, _, err = _run(tmp_path, dead_url)
    assert code == 3
    assert dead_url in err and "image2model serve" in err


def test_missing_local_file_exits_2_without_contacting_the_server(
    fake: FakeAPI, url: str, tmp_path: Path
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = generate_command([str(tmp_path / "nope.jpg")], server=url, stdout=out, stderr=err)
    assert code == 2 and "nope.jpg" in err.getvalue()
    assert fake.requests == []


def test_arguments_parse_into_generate_command_parameters() -> None:
    parser = add_generate_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        [
            "a.jpg",
            "b.png",
            "--face-limit",
            "5000",
            "--format",
            "glb,obj",
            "-o",
            "out",
            "--server",
            "http://x:1",
            "--api-key",
            "k",
            "--generator",
            "local",
            "-q",
            "--webhook",
            "https://hooks.example.com/in",
            "--webhook-events",
            "task_queued,task_completed",
            "--multiview",
        ]
    )
    assert vars(args) == {
        "images": ["a.jpg", "b.png"],
        "face_limit": 5000,
        "formats": "glb,obj",
        "out_dir": "out",
        "server": "http://x:1",
        "api_key": "k",
        "generator": "local",
        "quiet": True,
        "webhook": "https://hooks.example.com/in",
        "webhook_events": "task_queued,task_completed",
        "multiview": True,
    }


def _view(n: int) -> JobView:
    return JobView.from_upload(UploadResponse.model_validate(upload_body(n)))


def _file(seq: int, index: int, status: str, **data: object) -> Event:
    data = {"file_id": f"f{index + 1}", "index": index, "status": status, **data}
    return Event(seq=seq, type=EventType.FILE_UPDATE, data=data)


def test_the_bar_shows_the_queue_then_per_file_status() -> None:
    view = _view(2)
    assert description(view) == "waiting in queue"
    assert postfix(view) == "img1.png queued, img2.png queued"
    view = view.fold(
        [
            _file(1, 0, "processing", progress=30),
            Event(seq=2, type=EventType.TASK_PROGRESS, data={"status": "processing", "progress": 15}),
        ]
    )
    assert description(view) == "processing 0/2"
    assert postfix(view) == "img1.png 30%, img2.png queued"
    view = view.apply(_file(3, 1, "failed", error="bad"))
    assert description(view) == "processing 1/2"
    assert view.failures[0].error == "bad"


def test_the_bar_summarises_many_files() -> None:
    view = _view(5).fold([_file(1, 2, "processing", progress=50), _file(2, 0, "completed")])
    assert postfix(view) == "1 completed, 3 queued, img3.png 50%"


@pytest.mark.parametrize("name", NAMES)
def test_the_bar_renders_each_recorded_stream(name: str) -> None:
    """The same recorded streams every client renders: the label follows the job from queue to its end."""
    rec = load(name)
    views = rec.views()
    labels = [description(v) for v in views]
    assert labels[0] == "waiting in queue"
    assert labels[-1] == rec.events[-1].data["status"]
    processing = [label for label in labels if label.startswith("processing")]
    assert processing and processing == sorted(processing, key=lambda t: int(t.split()[1].split("/")[0]))
    positions = [v.queue_position for v in views if v.queue_position is not None]
    assert [f"waiting in queue, position {p}" for p in positions] == [
        label for label in labels if "position" in label
    ]
    final = postfix(views[-1])
    for f in views[-1].files:
        assert f"{f.filename} {f.status.value}" in final


def test_jobs_and_delete_arguments_parse_into_their_command_parameters() -> None:
    jobs = add_jobs_arguments(argparse.ArgumentParser()).parse_args(
        ["--status", "failed", "-n", "5", "--all", "--server", "http://x:1", "--api-key", "k"]
    )
    assert vars(jobs) == {
        "status": "failed",
        "limit": 5,
        "show_all": True,
        "server": "http://x:1",
        "api_key": "k",
    }
    delete = add_delete_arguments(argparse.ArgumentParser()).parse_args(
        ["j1", "j2", "--server", "http://x:1"]
    )
    assert vars(delete) == {"job_ids": ["j1", "j2"], "server": "http://x:1", "api_key": None}


def test_jobs_and_delete_without_a_server_exit_3(dead_url: str) -> None:
    for command, args in ((jobs_command, {}), (delete_command, {"job_ids": ["j1"]})):
        out, err = io.StringIO(), io.StringIO()
        assert command(**args, server=dead_url, stdout=out, stderr=err) == 3  # type: ignore[operator]
        assert "image2model serve" in err.getvalue() and out.getvalue() == ""


def test_jobs_refuses_a_limit_the_server_would_refuse(url: str) -> None:
    err = io.StringIO()
    assert jobs_command(limit=500, server=url, stdout=io.StringIO(), stderr=err) == 2
    assert "--limit" in err.getvalue()
