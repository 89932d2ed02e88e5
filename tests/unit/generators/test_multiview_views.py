"""How multi-view photos are read: the order convention, views at different zooms and offsets, and the errors
that name the view a user must fix."""

from __future__ import annotations

import pytest
from PIL import Image

from image2model.core.errors import GenerationError
from image2model.core.generators.local.multiview import build_model
from tests.support import solids
from tests.support.solids import Shot

OPTIONS = {"face_limit": 10000}


def _quiet(_fraction: float, _stage: str) -> None:
    return None


def _iou(solid: solids.Solid, model) -> float:
    welded = model.mesh.welded
    return solids.model_iou(solid, welded.vertices, welded.faces)


@pytest.fixture(scope="module")
def l_block() -> list[Image.Image]:
    return solids.photographs(solids.SOLIDS["l-block"])


def test_swapping_the_left_and_right_photos_mirrors_the_result(l_block) -> None:
    solid = solids.SOLIDS["l-block"]
    swapped = build_model([l_block[0], l_block[3], l_block[2], l_block[1]], OPTIONS, _quiet)
    # The tower stands on the back-left corner; told the sides the other way round, it lands front-left.
    assert _iou(solid.mirrored_z(), swapped) >= 0.9
    assert _iou(solid, swapped) <= 0.6


def test_views_at_different_sizes_zooms_and_offsets_are_aligned_by_the_object(l_block) -> None:
    solid = solids.SOLIDS["l-block"]
    shots = [
        Shot((512, 512)),
        Shot((640, 480), 0.6, (60, -30)),
        Shot((480, 600), 0.8, (-40, 25)),
        Shot((700, 520), 0.55, (90, 40)),
    ]
    model = build_model(solids.photographs(solid, shots=shots), OPTIONS, _quiet)
    assert _iou(solid, model) >= 0.9
    aligned = model.figures["alignment"]["views"]
    assert [a["view"] for a in aligned] == ["front", "left", "back", "right"]
    assert [a["size"] for a in aligned] == [[512, 512], [640, 480], [480, 600], [700, 520]]
    # The second photo shows the object at 0.6/0.72 of the front's size in a 480 px high frame: 1.28× smaller.
    assert aligned[1]["scale"] == pytest.approx(0.72 * 512 / (0.6 * 480), rel=0.02)
    assert aligned[3]["object_offset_px"] == pytest.approx([90, 40], abs=1.5)


def test_a_view_with_nothing_in_it_fails_the_item_naming_that_view(l_block) -> None:
    blank = Image.new("RGB", (512, 512), (228, 229, 231))
    with pytest.raises(GenerationError) as caught:
        build_model([l_block[0], blank, l_block[2]], OPTIONS, _quiet)
    assert "No object was found in the left view (2nd photo)" in caught.value.message
    assert caught.value.details["view"] == "left"


def test_a_fully_transparent_view_fails_naming_it(l_block) -> None:
    empty = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    with pytest.raises(GenerationError) as caught:
        build_model([l_block[0], l_block[1], l_block[2], empty], OPTIONS, _quiet)
    assert "the right view (4th photo)" in caught.value.message


def test_a_back_that_is_not_the_fronts_mirror_image_names_the_back(l_block) -> None:
    vase_back = solids.photograph(solids.SOLIDS["vase"], 2)
    with pytest.raises(GenerationError) as caught:
        build_model([l_block[0], l_block[1], vase_back], OPTIONS, _quiet)
    message = caught.value.message
    assert message.startswith("The back view (3rd photo) does not match the front view (1st photo)")
    assert "front, left, back, right" in message
    assert caught.value.details["view"] == "back" and caught.value.details["mirror_iou"] < 0.7


def test_a_right_side_of_another_object_names_the_right_view(l_block) -> None:
    chair_right = solids.photograph(solids.SOLIDS["chair"], 3)
    with pytest.raises(GenerationError) as caught:
        build_model([l_block[0], l_block[1], l_block[2], chair_right], OPTIONS, _quiet)
    assert caught.value.message.startswith(
        "The right view (4th photo) does not match the left view (2nd photo)"
    )


def test_one_view_is_not_a_multi_view_model(l_block) -> None:
    with pytest.raises(GenerationError, match="needs 2 to 4 views; got 1"):
        build_model(l_block[:1], OPTIONS, _quiet)


def test_keeping_the_whole_photo_cannot_be_carved(l_block) -> None:
    with pytest.raises(GenerationError, match="background_removal=off"):
        build_model(l_block[:2], {**OPTIONS, "background_removal": "off"}, _quiet)


def test_an_object_cut_off_by_the_frame_is_warned_about(l_block) -> None:
    cut_off = solids.photograph(solids.SOLIDS["l-block"], 1, Shot((512, 512), 0.72, (0, -200)))
    model = build_model([l_block[0], cut_off], OPTIONS, _quiet)
    assert model.views[0].warnings == []
    assert model.views[1].warnings == [
        "The object touches the top edge of the left view (2nd photo), so its height may be cut off and the views "
        "may not line up; leave a margin around the object."
    ]
