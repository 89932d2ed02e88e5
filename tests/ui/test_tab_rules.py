"""The pure rules behind the web UI's tabs: the multi-view zones' order and counts, the Export panel's checks,
the My models captions and thumbnails, and the job link every client shares."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from image2model.core.client.links import job_link
from image2model.core.models import GeneratorInfo, JobStatus, JobSummary, ModelsAvailable
from image2model.ui_gradio.exports import export_choice
from image2model.ui_gradio.history import THUMB_SIZE, Thumbnails, _shrink, caption
from image2model.ui_gradio.multiview import VIEWS, multiview_generators, ordered_views
from image2model.ui_gradio.result_panel import job_link_markdown


def test_views_go_in_the_contracts_order_whichever_zones_are_filled() -> None:
    assert VIEWS == ("front", "left", "back", "right")
    assert ordered_views(["f.jpg", None, "b.jpg", "r.jpg"]) == ["f.jpg", "b.jpg", "r.jpg"]
    assert ordered_views([None, "l.jpg", "", "r.jpg"]) == ["l.jpg", "r.jpg"]


@pytest.mark.parametrize(
    ("values", "says"),
    [([None, None, None, None], "there is no view"), ([None, None, "b.jpg", None], "only the back view")],
)
def test_fewer_than_two_views_are_refused_with_what_is_missing(values: list[str | None], says: str) -> None:
    with pytest.raises(ValueError, match="at least 2 views") as info:
        ordered_views(values)
    assert says in str(info.value)


def test_more_views_than_the_generator_takes_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 3 views; clear 1"):
        ordered_views(["a", "b", "c", "d"], most=3)


def _generator(name: str, most: int) -> GeneratorInfo:
    return GeneratorInfo(
        name=name,
        title=name,
        description="",
        supported_formats=["glb"],
        default_formats=["glb"],
        options=[],
        max_images_per_item=most,
    )


def test_only_generators_that_take_several_views_are_offered_default_first() -> None:
    catalog = ModelsAvailable(
        default="b",
        models=[_generator("a", 4), _generator("local", 1), _generator("b", 4)],
        limits={},
    )
    assert [g.name for g in multiview_generators(catalog)] == ["b", "a"]


def test_export_choice_for_printing_becomes_the_clients_arguments() -> None:
    choice = export_choice("stl", 20000, 80, True, True)
    assert choice.arguments() == {
        "formats": ["stl"],
        "face_limit": 20000,
        "height_mm": 80.0,
        "up": "z",
        "origin": "bottom",
    }
    assert choice.describe() == "STL, 20,000 faces at most, 80 mm tall, Z up, origin at the bottom"


def test_empty_or_zero_fields_leave_the_servers_defaults() -> None:
    for empty in (None, 0):
        assert export_choice("3mf", empty, empty, False, False).arguments() == {
            "formats": ["3mf"],
            "face_limit": None,
            "height_mm": None,
            "up": None,
            "origin": None,
        }


@pytest.mark.parametrize(
    ("fmt", "faces", "height", "says"),
    [
        ("fbx", None, None, "Pick a format"),
        ("stl", 5, None, "from 12 to 10,000,000"),
        ("stl", 100.5, None, "whole number"),
        ("stl", float("nan"), None, "whole number"),
        ("stl", None, -3, "Height must be more than 0"),
        ("stl", None, 1e9, "at most 100,000 mm"),
    ],
)
def test_bad_export_fields_are_refused_with_the_range_to_use(
    fmt: str, faces: float | None, height: float | None, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        export_choice(fmt, faces, height, False, False)


def _summary(
    status: JobStatus = JobStatus.COMPLETED, files: int = 1, created: float | None = None
) -> JobSummary:
    return JobSummary(
        job_id="j1",
        status=status,
        created_at=created if created is not None else time.time(),
        total_files=files,
        generator="local",
    )


def test_captions_say_when_and_how_many() -> None:
    now = time.mktime((2026, 12, 1, 23, 10, 0, 0, 0, -1))
    earlier_today = time.mktime((2026, 12, 1, 8, 2, 0, 0, 0, -1))
    made = time.mktime((2026, 11, 30, 9, 5, 0, 0, 0, -1))
    assert caption(_summary(created=earlier_today), now) == "08:02"
    assert caption(_summary(created=made), now) == "30 Nov 09:05"
    assert caption(_summary(JobStatus.FAILED, 3, made), now) == "30 Nov 09:05 · 3 photos"
    last_year = time.mktime((2025, 6, 2, 12, 0, 0, 0, 0, -1))
    assert caption(_summary(created=last_year), now) == "02 Jun 2025"


def test_previews_shrink_to_small_jpegs_and_jobs_without_one_get_a_card(tmp_path: Path) -> None:
    preview = tmp_path / "p.png"
    Image.new("RGB", (512, 512), (200, 30, 30)).save(preview)
    target = tmp_path / "t.jpg"
    _shrink(preview, target)
    with Image.open(target) as small:
        assert small.format == "JPEG" and max(small.size) == THUMB_SIZE
    thumbs = Thumbnails(tmp_path / "thumbs")
    card = thumbs.card("failed")
    assert card == thumbs.card("failed")  # made once
    with Image.open(card) as image:
        assert image.size == (THUMB_SIZE, THUMB_SIZE)
        assert len(image.getcolors(4096) or []) > 1  # the state is written on it


def test_the_job_link_is_the_one_every_client_prints() -> None:
    assert job_link("ab/c d", "http://127.0.0.1:7860/") == "http://127.0.0.1:7860/?job=ab%2Fc%20d"
    line = job_link_markdown("ab/c d", "http://api/status")
    assert "(?job=ab%2Fc%20d)" in line and "[status](http://api/status)" in line
    assert job_link_markdown("") == ""
