"""The Gradio app driven through `gradio_client` against a real API and worker (test generator `instant`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.support.images import photo
from tests.ui.conftest import UI

pytestmark = [pytest.mark.e2e]

# /generate's inputs: photos, generator, formats, then every option control in catalog order.
OUTPUTS = (
    *("stage", "table", "gallery", "link", "model", "turntable", "stats"),
    *("glb", "obj", "stl", "ply", "export_status", "export_file"),
)


def _photo(tmp_path: Path, name: str = "mug.jpg", **kw: object) -> str:
    p = tmp_path / name
    p.write_bytes(photo(**kw))
    return str(p)


def _inputs(client: Client, photos: list[str], generator: str = "instant", **overrides: object) -> list:
    """Positional inputs for /generate: the endpoint's defaults, with photos, generator and overrides."""
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"][
        "parameters"
    ]
    values = [p.get("parameter_default") for p in params]
    values[0] = [handle_file(p) for p in photos]
    values[1] = generator
    labels = [p["label"] for p in params]
    for label, value in overrides.items():
        values[labels.index(label)] = value
    return values


def _path(value: object) -> Path:
    """A file output as gradio_client returns it (a path, or an update dict holding one)."""
    if isinstance(value, dict):
        value = value.get("value") or value.get("path")
        if isinstance(value, dict):
            value = value.get("path")
    assert isinstance(value, str), value
    return Path(value)


def _wait(job, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    seen = []
    while not job.done():
        assert time.monotonic() < deadline, "the UI job did not finish in time"
        status = job.status()
        if status.progress_data:
            seen.append((status.progress_data[-1].progress, status.progress_data[-1].desc))
        time.sleep(0.05)
    return seen


def test_one_photo_gives_model_downloads_and_progress(ui: UI, tmp_path: Path) -> None:
    client = Client(ui.url, verbose=False)
    job = client.submit(*_inputs(client, [_photo(tmp_path)], Delay=3.0, Steps=10), api_name="/generate")
    progress = _wait(job)
    result = dict(zip(OUTPUTS, job.result(), strict=True))

    assert progress, "gr.Progress never reported"
    fractions = [p for p, _ in progress if p is not None]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    assert any("shaping" in (desc or "") for _, desc in progress)
    assert "Done" in result["stage"] and "completed" in result["table"]
    model = _path(result["model"])
    assert model.suffix == ".glb" and model.read_bytes()[:4] == b"glTF"
    assert _path(result["glb"]).read_bytes()[:4] == b"glTF"
    assert "faces" in result["stats"]
    assert "Job `" in result["link"]


def test_formats_each_get_a_download(ui: UI, tmp_path: Path) -> None:
    client = Client(ui.url, verbose=False)
    result = client.predict(
        *_inputs(client, [_photo(tmp_path)], Formats=["glb", "stl"]), api_name="/generate"
    )
    out = dict(zip(OUTPUTS, result, strict=True))
    assert _path(out["stl"]).stat().st_size > 84
    assert _path(out["glb"]).read_bytes()[:4] == b"glTF"


def test_several_photos_fill_the_gallery(ui: UI, tmp_path: Path) -> None:
    client = Client(ui.url, verbose=False)
    photos = [_photo(tmp_path, f"p{i}.jpg", color=(40 * i, 90, 200)) for i in range(3)]
    out = dict(zip(OUTPUTS, client.predict(*_inputs(client, photos), api_name="/generate"), strict=True))
    assert len(out["gallery"]) == 3
    assert "3 of 3" in out["table"] or out["table"].count("completed") == 3


def test_api_error_is_a_readable_message(ui: UI, tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image")
    client = Client(ui.url, verbose=False)
    with pytest.raises(Exception) as info:
        client.predict(*_inputs(client, [str(fake)]), api_name="/generate")
    text = str(info.value)
    assert "Traceback" not in text
    assert "image" in text.lower()


def test_generator_failure_is_shown(ui: UI, tmp_path: Path) -> None:
    client = Client(ui.url, verbose=False)
    with pytest.raises(Exception, match="asked to fail"):
        client.predict(*_inputs(client, [_photo(tmp_path)], Fail=True), api_name="/generate")


def test_session_files_are_removed_when_the_session_ends(ui: UI, tmp_path: Path) -> None:
    import asyncio

    runner = ui.demo.image2model_runner
    d = runner.files.job_dir("s1", "job")
    (d / "x.glb").write_bytes(b"glTF")
    asyncio.run(runner.end_session("s1"))
    assert not (ui.root / "sessions" / "s1").exists()


def test_a_waiting_job_shows_its_place_in_the_queue(ui: UI, stack, tmp_path: Path) -> None:
    from image2model.core.client import Client as ApiClient

    with ApiClient(stack.url) as api:  # keep both worker processes busy for a while
        blockers = [api.submit(photo(), generator="instant", delay=3.0) for _ in range(2)]
    client = Client(ui.url, verbose=False)
    job = client.submit(*_inputs(client, [_photo(tmp_path)]), api_name="/generate")
    _wait(job)
    stages = [dict(zip(OUTPUTS, out, strict=True))["stage"] for out in job.outputs()]

    waiting = [stage for stage in stages if isinstance(stage, str) and "in line" in stage]
    assert waiting and "Queued: #1 in line" in waiting[-1], stages
    assert "Done" in stages[-1]
    assert len(blockers) == 2


def test_a_reopened_job_outlives_the_session_but_a_submitted_one_is_cancelled(ui: UI, stack) -> None:
    import asyncio

    from image2model.core.client import Client as ApiClient

    runner = ui.demo.image2model_runner
    with ApiClient(stack.url) as api:
        other = api.submit(photo(), generator="instant", delay=2.0).job_id  # another client's job

    async def follow_then_leave(updates, session: str) -> str:
        first = await anext(updates)
        await runner.end_session(session)
        await updates.aclose()
        return first.job_id

    async def scenario() -> tuple[str, str]:
        reopened = await follow_then_leave(runner.open(other, session="reader"), "reader")
        mine = runner.run(
            [photo()],
            session="maker",
            generator="instant",
            formats=[],
            face_limit=None,
            options={"delay": 2.0},
        )
        return reopened, await follow_then_leave(mine, "maker")

    reopened, submitted = asyncio.run(scenario())
    assert reopened == other
    with ApiClient(stack.url) as api:
        assert api.wait(other, timeout=30).status.value == "completed"
        assert api.wait(submitted, timeout=30).status.value == "cancelled"


def test_the_model_is_shown_before_the_previews_are_made(ui: UI) -> None:
    import asyncio

    runner = ui.demo.image2model_runner

    async def updates() -> list:
        seen = []
        async for update in runner.run(
            [photo()],
            session="model-first",
            generator="local",  # its GLB is listed the moment it is written
            formats=["glb", "stl"],
            face_limit=2000,
            options={},
        ):
            item = update.item
            seen.append(
                (
                    update.kind,
                    update.view.files[0].status.value,
                    item and (item.model, item.preview, item.turntable, set(item.downloads)),
                )
            )
        return seen

    seen = asyncio.run(updates())
    kinds = [kind for kind, _, _ in seen if kind != "progress"]
    assert kinds == ["submitted", "item", "previews", "downloads", "done"]
    _, status, (model, preview, turntable, downloads) = next(s for s in seen if s[0] == "item")
    assert status == "processing" and model is not None and model.read_bytes()[:4] == b"glTF"
    assert preview is None and turntable is None and downloads == {"glb"}
    _, status, (_, preview, turntable, _) = next(s for s in seen if s[0] == "previews")
    assert status == "completed" and preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert turntable.read_bytes()[8:12] == b"WEBP"
    _, _, (_, _, _, downloads) = next(s for s in seen if s[0] == "downloads")
    assert downloads == {"glb", "stl"}
