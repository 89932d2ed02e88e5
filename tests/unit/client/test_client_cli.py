"""`image2model generate` against the scripted server: saved paths, exit codes, messages on stderr."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from fakeapi import JOB, FakeAPI, envelope, file_progress, frame, listing_entry, snapshot, upload_body

from image2model.core.client.cli import (
    ProgressState,
    add_delete_arguments,
    add_generate_arguments,
    add_jobs_arguments,
    delete_command,
    generate_command,
    jobs_command,
)
from image2model.core.models import Event, EventType, UploadResponse

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def _run(tmp_path: Path, url: str, **kwargs: object) -> tuple[int, str, str]:
    image = tmp_path / "chair.png"
    image.write_bytes(PNG)
    out, err = io.StringIO(), io.StringIO()
    args = {"images": [str(image)], "server": url, "out_dir": str(tmp_path / "out"), "quiet": False}
    args.update(kwargs)
    code = generate_command(**args, stdout=out, stderr=err)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def _events(last: bytes) -> list[bytes]:
    return [
        frame(1, "task_queued", status="queued", total_files=1),
        frame(2, "file_update", file_id="f1", filename="chair.png", index=0, progress=40),
        last,
    ]


def test_generate_downloads_results_and_prints_paths(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    fake.streams = [_events(frame(3, "task_completed", status="completed", progress=100))]
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
    fake.streams = [_events(frame(3, "task_failed", status="failed", error="no object found in chair.png"))]
    fake.status_answer = (
        200,
        snapshot(
            "failed",
            files=[file_progress("f1", "chair.png", "failed", error="no object found")],
            error="Every image failed: no object found in chair.png",
        ),
    )
    code, out, err = _run(tmp_path, url, quiet=True)
    assert code == 1
    assert out == ""
    assert "Every image failed: no object found in chair.png" in err
    assert "chair.png: no object found" in err
    assert not (tmp_path / "out").exists()


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
    }


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


def test_progress_state_shows_queue_then_per_file_status() -> None:
    state = ProgressState.from_upload(UploadResponse.model_validate(upload_body(2)))
    assert state.description() == "waiting in queue"
    assert state.postfix() == "img1.png queued, img2.png queued"
    state.apply(
        Event(
            seq=1,
            type=EventType.FILE_UPDATE,
            data={"file_id": "f1", "status": "processing", "progress": 30, "filename": "img1.png"},
        )
    )
    state.apply(Event(seq=2, type=EventType.TASK_PROGRESS, data={"status": "processing", "progress": 15}))
    state.apply(Event(seq=3, type=EventType.TASK_PROGRESS, data={"status": "processing", "progress": 10}))
    assert state.progress == 15  # never goes backwards
    assert state.description() == "processing 0/2"
    assert state.postfix() == "img1.png 30%, img2.png queued"
    state.apply(
        Event(
            seq=4,
            type=EventType.FILE_UPDATE,
            data={"file_id": "f2", "status": "failed", "progress": 0, "error": "bad"},
        )
    )
    assert state.description() == "processing 1/2"
    assert [f["error"] for f in state.failed_files()] == ["bad"]


def test_progress_state_shows_the_queue_position_and_a_late_notice_does_not_undo_processing() -> None:
    state = ProgressState.from_upload(UploadResponse.model_validate(upload_body(1)))
    notice = {"status": "queued", "progress": 0, "queue_position": 3}
    state.apply(Event(seq=1, type=EventType.QUEUE_POSITION, data=notice))
    assert state.description() == "waiting in queue, position 3"
    state.apply(Event(seq=2, type=EventType.TASK_PROGRESS, data={"status": "processing", "progress": 20}))
    state.apply(Event(seq=2, type=EventType.QUEUE_POSITION, data={**notice, "queue_position": 1}))
    assert state.status == "processing" and state.progress == 20
    assert state.description() == "processing 0/1"


@pytest.mark.parametrize("n", [5])
def test_progress_postfix_summarises_many_files(n: int) -> None:
    state = ProgressState.from_upload(UploadResponse.model_validate(upload_body(n)))
    state.apply(
        Event(
            seq=1,
            type=EventType.FILE_UPDATE,
            data={"file_id": "f3", "status": "processing", "progress": 50, "filename": "img3.png"},
        )
    )
    state.apply(Event(seq=2, type=EventType.FILE_UPDATE, data={"file_id": "f1", "status": "completed"}))
    assert state.postfix() == "1 completed, 3 queued, img3.png 50%"
    assert JOB  # the shared job id is what the scripted server answers for
