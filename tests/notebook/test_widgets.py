"""The Studio and the viewer driven from Python (no browser): upload, click, assert traits, against a live API."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from image2model.notebook_ext import GLBViewer, Studio
from image2model.notebook_ext.viewer import BUNDLE
from tests.support.images import photo

pytestmark = pytest.mark.e2e


def _upload(studio: Studio, content: bytes, name: str = "mug.jpg") -> None:
    put(studio.upload, content, name)


def put(upload: Any, content: bytes, name: str) -> None:
    """What the browser hands a FileUpload for one chosen file."""
    upload.value = (
        {
            "name": name,
            "type": "image/jpeg",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.now(UTC),
        },
    )


def test_studio_offers_the_servers_generators_and_their_options(stack) -> None:
    studio = Studio(server_url=stack.url)
    try:
        assert studio.generator.value == "instant"
        assert {value for _, value in studio.generator.options} >= {"local", "instant"}
        assert studio.generate_button.disabled  # nothing uploaded yet

        studio.generator.value = "local"
        assert set(studio.option_widgets) >= {"face_limit", "inflation_depth", "background_removal"}
        assert studio.option_widgets["face_limit"].max == 200000
        assert studio.option_widgets["background_removal"].options == ("auto", "learned", "alpha", "off")
        assert set(studio.formats.options) == {"glb", "obj", "stl", "ply"}
    finally:
        studio.close()


def test_studio_upload_generate_shows_the_model_and_download_links(stack) -> None:
    studio = Studio(server_url=stack.url)
    try:
        studio.generator.value = "local"
        studio.option_widgets["face_limit"].value = 2500
        studio.formats.value = ("stl",)
        _upload(studio, photo(), "mug.jpg")
        assert not studio.generate_button.disabled

        studio.generate_button.click()
        result = studio.wait(timeout=120)

        assert result is not None and result.ok, studio.stage.value
        assert studio.progress.value == 100
        assert studio.progress.bar_style == "success"
        assert studio.viewer.glb == result.glb_bytes and result.glb_bytes[:4] == b"glTF"
        assert result.metadata["faces"] <= 2500
        assert sorted(f.format for f in result.files) == ["glb", "stl"]  # glb added for the viewer
        assert "mug.glb" in studio.downloads.value and "mug.stl" in studio.downloads.value
        assert re.search(r"href='http://127\.0\.0\.1:\d+/api/v1/download/[^']+token=", studio.downloads.value)
        assert studio.cancel_button.disabled and not studio.generate_button.disabled
    finally:
        studio.close()


def test_studio_cancel_stops_the_job(stack) -> None:
    studio = Studio(server_url=stack.url)
    try:
        studio.option_widgets["delay"].value = 20
        _upload(studio, photo())
        studio.generate_button.click()
        deadline = time.monotonic() + 20
        while studio.job_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert studio.job_id is not None
        assert not studio.cancel_button.disabled

        studio.cancel_button.click()
        result = studio.wait(timeout=30)

        assert result is not None and result.status == "cancelled"
        assert studio.viewer.glb == b""
        assert studio.progress.bar_style == "warning"
        assert studio.stage.value == "cancelled"
    finally:
        studio.close()


def test_studio_reports_a_failed_job_in_the_stage_label(stack) -> None:
    studio = Studio(server_url=stack.url)
    try:
        studio.option_widgets["fail"].value = True
        _upload(studio, photo())
        studio.generate_button.click()
        result = studio.wait(timeout=60)

        assert result is not None and not result.ok
        assert studio.stage.value.startswith("failed")
        assert studio.progress.bar_style == "danger"
        assert studio.downloads.value == ""
    finally:
        studio.close()


def test_viewer_stores_the_screenshot_the_browser_sends(tmp_path) -> None:
    viewer = GLBViewer(glb=b"glTF-not-really")
    viewer.screenshot()
    viewer.screenshot()
    assert viewer._screenshot_request == 2  # synced state: a view that renders later still sees the request

    png = b"\x89PNG\r\n\x1a\nfake"
    viewer._on_custom_msg(viewer, {"type": "screenshot", "data": base64.b64encode(png).decode()}, [])

    assert viewer.screenshot_png == png
    assert viewer.save_screenshot(tmp_path / "shot.png").read_bytes() == png


def test_viewer_bundle_is_built_and_fetches_nothing_from_the_network() -> None:
    assert BUNDLE.is_file(), (
        "the install (setup.py's build step) bundles notebook_ext/js into static/viewer.js"
    )
    source = BUNDLE.read_text(encoding="utf-8")
    assert GLBViewer._esm == source
    assert "GLTFLoader" in source or "KHR_materials" in source
    urls = set(re.findall(r"https?://[^\s\"'`)]+", source))
    # Namespace identifiers (SVG/XHTML) are strings, not requests; anything else would be a fetch at run time.
    assert urls <= {"http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"""(?:import|from)\s*\(?\s*["']https?:""", source)
