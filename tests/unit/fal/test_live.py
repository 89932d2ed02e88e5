"""One opt-in call to the real FAL (billed!): catches schema drift such as data-URI acceptance or renamed
fields. Runs only with FAL_KEY set, IMAGE2MODEL_FAL_LIVE=1 and network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from PIL import Image

from image2model.core.generators.base import GenerationRequest
from image2model.core.generators.fal import GENERATORS
from image2model.core.settings import Settings


def _online() -> bool:
    try:
        socket.create_connection(("queue.fal.run", 443), timeout=3).close()
        return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("FAL_KEY") and os.environ.get("IMAGE2MODEL_FAL_LIVE") == "1"),
        reason="live FAL test: set FAL_KEY and IMAGE2MODEL_FAL_LIVE=1",
    ),
]


@pytest.mark.timeout(900)
def test_tripo_on_real_fal(tmp_path: Path) -> None:
    if not _online():
        pytest.skip("no network to queue.fal.run")
    settings = Settings().model_copy(
        update={"fal_key": os.environ["FAL_KEY"], "fal_base_url": "", "fal_poll_interval": 2.0}
    )
    gen = GENERATORS["fal"](settings)
    image = tmp_path / "red.png"
    photo = Image.new("RGB", (256, 256), (255, 255, 255))
    photo.paste((200, 30, 30), (64, 64, 192, 192))
    photo.save(image)
    options, formats = gen.spec.validate({"texture": "no", "face_limit": "2000"}, ["glb", "stl"])
    result = gen.generate(
        GenerationRequest([image], options, formats, tmp_path / "out", "live"), lambda f, m: None
    )
    assert (tmp_path / "out" / "live.glb").read_bytes()[:4] == b"glTF"
    assert result.metadata["faces"] > 0
