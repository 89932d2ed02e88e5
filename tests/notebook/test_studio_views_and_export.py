"""The Studio's multi-view tab and export form driven from Python (no browser), against a live API."""

from __future__ import annotations

import json

import pytest
import trimesh

from image2model.notebook_ext import Studio
from tests.notebook.test_widgets import put
from tests.support.images import photo

pytestmark = pytest.mark.e2e


def test_views_go_in_order_and_make_one_model_from_all_of_them(views_stack) -> None:
    studio = Studio(server_url=views_stack.url)
    try:
        assert studio.mode.disabled  # the default generator (instant) takes one photo per model
        studio.generator.value = "remote-test"
        assert not studio.mode.disabled
        studio.mode.value = "multiview"
        assert studio.views_box.layout.display is None and studio.upload.layout.display == "none"

        put(studio.views["front"], photo(), "front.jpg")
        put(studio.views["back"], photo(color=(200, 40, 40)), "back.jpg")
        assert studio.generate_button.disabled
        assert studio.stage.value == "The views go in order (front, left, back, right): add the left view."

        put(studio.views["left"], photo(color=(40, 200, 40)), "left.jpg")
        assert not studio.generate_button.disabled
        assert studio.stage.value == "Ready: front.jpg, left.jpg, back.jpg"
        studio.option_widgets["seconds"].value = 0.2
        studio.generate_button.click()
        result = studio.wait(timeout=120)

        assert result is not None and result.ok, studio.stage.value
        assert result.source == "front.jpg (+2 views)"
        submitted = [
            json.loads(p.read_text()) for p in (views_stack.data_dir / "fake-remote" / "submitted").iterdir()
        ]
        assert [s["views"] for s in submitted] == [3]

        studio.generator.value = "instant"  # back to a one-photo generator: the views tab goes
        assert studio.mode.value == "single" and studio.mode.disabled
    finally:
        studio.close()


def test_export_form_saves_an_stl_for_printing_and_links_it(stack, tmp_path) -> None:
    studio = Studio(server_url=stack.url, export_dir=tmp_path)
    try:
        assert studio.export_button.disabled  # nothing to export yet
        studio.generator.value = "local"
        studio.option_widgets["face_limit"].value = 3000
        put(studio.upload, photo(), "mug.jpg")
        studio.generate_button.click()
        assert studio.wait(timeout=120).ok, studio.stage.value
        assert not studio.export_button.disabled

        studio.print_button.click()
        assert (studio.export_format.value, studio.export_up.value, studio.export_height.value) == (
            "stl",
            "z",
            80.0,
        )
        studio.export_faces.value = 1000
        studio.export_button.click()
        studio.wait_export(timeout=60)

        (saved,) = tmp_path.glob("*.stl")
        assert f"Saved {saved}" in studio.exports.value and "token=" in studio.exports.value
        mesh = trimesh.load(saved)
        low, high = mesh.bounds
        assert abs((high[2] - low[2]) - 80.0) < 0.5 and abs(low[2]) < 1e-3 and len(mesh.faces) <= 1000
        assert not studio.export_button.disabled
    finally:
        studio.close()
