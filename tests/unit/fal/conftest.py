"""Fixtures for the FAL generator tests: one fake FAL per module (reset per test), generators pointed at it
with small retry delays, and input images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from image2model.core.generators.base import GenerationRequest
from image2model.core.generators.fal import GENERATORS, FalGenerator
from image2model.core.settings import Settings
from tests.fakes.fal_server import FakeFal

KEY = "test-key-123"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeFal]:
    fake = FakeFal().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_server: FakeFal) -> FakeFal:
    fake_server.reset()
    return fake_server


def fal_settings(base_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "fal_key": KEY,
        "fal_base_url": base_url,
        "fal_poll_interval": 0.01,
        "fal_poll_interval_max": 0.05,
        "fal_deadline_seconds": 30.0,
        "fal_max_in_flight": 3,
    }
    values.update(overrides)
    return Settings().model_copy(update=values)


MakeGenerator = Callable[..., FalGenerator]


@pytest.fixture
def make_generator(fake: FakeFal) -> MakeGenerator:
    """`make_generator(name="fal", base_url=None, **settings)`: a generator with test-sized retry delays."""

    def make(name: str = "fal", base_url: str | None = None, **overrides: object) -> FalGenerator:
        gen = GENERATORS[name](fal_settings(base_url or fake.base_url, **overrides))
        gen.retry_base_delay = 0.01
        gen.retry_max_delay = 0.05
        gen.submit_attempts = 3
        gen.poll_error_limit = 3
        return gen

    return make


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    paths = []
    for n, colour in enumerate([(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40)]):
        path = tmp_path / f"view{n}.png"
        Image.new("RGB", (48, 64), colour).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def request_for(tmp_path: Path) -> Callable[..., GenerationRequest]:
    """`request_for(gen, images, formats=("glb",), **options)` with the spec's defaults filled in."""

    def build(gen: FalGenerator, paths: list[Path], formats=("glb",), **options: object) -> GenerationRequest:
        checked, fmts = gen.spec.validate({k: str(v) for k, v in options.items()}, list(formats))
        return GenerationRequest(list(paths), checked, fmts, tmp_path / "out", "model")

    return build


def no_progress(fraction: float, message: str) -> None:
    assert 0.0 <= fraction <= 1.0 and message
