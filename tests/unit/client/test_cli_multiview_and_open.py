"""`image2model generate --multiview` and `image2model open JOB` against the scripted server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fakeapi import JOB, FakeAPI, envelope, frame, listing_entry, upload_body

from image2model.cli.main import build_parser
from image2model.core.client.cli import generate_command
from image2model.core.client.links import job_link
from image2model.core.client.open_cli import open_command

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
VIEWS = ("front.png", "left.png", "back.png", "right.png")


def _views(tmp_path: Path, names: tuple[str, ...] = VIEWS) -> list[str]:
    paths = []
    for name in names:
        (tmp_path / name).write_bytes(PNG + name.encode())
        paths.append(str(tmp_path / name))
    return paths


def test_multiview_sends_the_views_in_order_as_one_object(
    fake: FakeAPI, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE2MODEL_WEB_URL", "https://models.example.com/ui/")
    fake.upload_answer = (200, upload_body(1))
    fake.streams = [
        [
            frame(1, "task_queued", status="queued", total_files=1),
            frame(
                2,
                "file_update",
                file_id="f1",
                filename="front.png",
                index=0,
                status="completed",
                progress=100,
            ),
            frame(3, "task_completed", status="completed", progress=100),
        ]
    ]
    fake.blobs = {"front.glb": b"GLB"}
    fake.listing = [listing_entry("front.glb")]
    args = vars(build_parser().parse_args(["generate", "--multiview", *_views(tmp_path), "--server", url]))
    args.pop("command")
    args["out_dir"] = str(tmp_path / "out")
    out, err = io.StringIO(), io.StringIO()

    code = generate_command(**args, stdout=out, stderr=err)  # type: ignore[arg-type]

    assert code == 0, err.getvalue()
    sent = fake.uploads[0]
    assert sent["fields"] == {"multiview": "true"}
    assert [f["filename"] for f in sent["files"]] == list(VIEWS)
    assert [f["data"] for f in sent["files"]] == [PNG + n.encode() for n in VIEWS]
    assert out.getvalue().splitlines() == [str(tmp_path / "out" / "front.glb")]
    assert f"https://models.example.com/ui/?job={JOB}" in err.getvalue()
    assert f"job {JOB}: {len(VIEWS)} views of one object submitted" in err.getvalue()


@pytest.mark.parametrize("count", [1, 5])
def test_multiview_outside_two_to_four_views_is_refused_before_any_request(
    fake: FakeAPI, url: str, tmp_path: Path, count: int
) -> None:
    names = tuple(f"v{i}.png" for i in range(count))
    err = io.StringIO()
    code = generate_command(
        _views(tmp_path, names), multiview=True, server=url, stdout=io.StringIO(), stderr=err
    )
    assert code == 2
    assert (
        f"--multiview takes 2 to 4 views of one object (front, left, back, right); got {count}"
        in err.getvalue()
    )
    assert fake.requests == [] and fake.uploads == []


def test_a_generator_without_multiview_is_the_servers_refusal_exit_2(
    fake: FakeAPI, url: str, tmp_path: Path
) -> None:
    fake.upload_answer = envelope(
        400,
        "VALIDATION_ERROR",
        "The generator 'instant' makes a model from one photo; it does not take several views.",
        errors=[{"field": "multiview", "message": "not supported by this generator"}],
    )
    err = io.StringIO()
    code = generate_command(
        _views(tmp_path, VIEWS[:2]), multiview=True, server=url, stdout=io.StringIO(), stderr=err
    )
    assert code == 2
    assert "does not take several views. [VALIDATION_ERROR]" in err.getvalue()
    assert "  - multiview: not supported by this generator" in err.getvalue()


def test_open_prints_the_web_ui_link_of_a_job_the_server_knows(fake: FakeAPI, url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    args = vars(
        build_parser().parse_args(["open", JOB, "--server", url, "--web-url", "http://ui.test:7860/"])
    )
    args.pop("command")
    assert open_command(**args, stdout=out, stderr=err) == 0, err.getvalue()
    assert out.getvalue() == f"http://ui.test:7860/?job={JOB}\n"
    assert [(m, p) for m, p, _ in fake.requests] == [("GET", f"/api/v1/status/tasks/{JOB}")]


def test_open_of_an_unknown_job_exits_2_and_prints_no_link(fake: FakeAPI, url: str) -> None:
    fake.status_answer = envelope(
        404, "JOB_NOT_FOUND", "Job nope was not found (or it belongs to another API key)."
    )
    out, err = io.StringIO(), io.StringIO()
    assert open_command("nope", server=url, stdout=out, stderr=err) == 2
    assert out.getvalue() == ""
    assert "Job nope was not found" in err.getvalue() and "[JOB_NOT_FOUND]" in err.getvalue()


def test_open_without_a_server_exits_3(dead_url: str) -> None:
    err = io.StringIO()
    assert open_command(JOB, server=dead_url, stdout=io.StringIO(), stderr=err) == 3
    assert "image2model serve" in err.getvalue()


def test_the_job_link_is_the_web_ui_with_the_job_id_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert job_link("a b/c", "http://ui.test/") == "http://ui.test/?job=a%20b%2Fc"
    monkeypatch.setenv("IMAGE2MODEL_WEB_URL", "https://models.example.com")
    assert job_link("j-1") == "https://models.example.com/?job=j-1"
    monkeypatch.delenv("IMAGE2MODEL_WEB_URL")
    assert job_link("j-1") == "http://127.0.0.1:7860/?job=j-1"
