"""The notebook's progress label rendered from the same recorded streams as every other client."""

from __future__ import annotations

import pytest

from image2model.notebook_ext.api import view_text
from tests.support.recordings import NAMES, load


@pytest.mark.parametrize("name", NAMES)
def test_the_label_follows_each_recorded_stream_from_the_queue_to_its_end(name: str) -> None:
    views = load(name).views()
    final = views[-1]
    labels = [view_text(v) for v in views]
    assert labels[0] == "queued"
    assert labels[-1] == (final.error if final.status == "failed" else final.status.value)
    running = [
        label for v, label in zip(views, labels, strict=True) if v.current is not None and not v.finished
    ]
    assert running and all(label.split(": ", 1)[0] in {f.filename for f in final.files} for label in running)
    positions = [v.queue_position for v in views if v.queue_position]
    assert [label for label in labels if "position" in label] == [f"queued, position {p}" for p in positions]


def test_the_label_names_the_photo_and_the_generators_step() -> None:
    labels = list(dict.fromkeys(view_text(v) for v in load("local_one_photo").views()))
    assert labels[:5] == [
        "queued",
        "queued, position 1",
        "shoe.png: processing",
        "shoe.png: reading image",
        "shoe.png: cutting out",
    ]
    assert labels[-1] == "completed"
    failed = view_text(load("every_photo_fails").views()[-1])
    assert failed.startswith("mug.jpg: ") and "asked to fail" in failed
