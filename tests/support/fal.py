"""The fake FAL for end-to-end tests, and a service stack that talks to it with a key it accepts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakes.fal_server import FakeFal
from tests.support.stack import Stack

KEY = "fal-test-key"


@contextmanager
def running_fake(key: str = KEY) -> Iterator[FakeFal]:
    """A fake FAL on loopback that accepts `key`, stopped on exit."""
    fake = FakeFal().start()
    fake.accept_keys([key])
    try:
        yield fake
    finally:
        fake.stop()


def fal_stack(path: Path, fal: FakeFal, key: str = KEY, io_threads: int = 4, **settings: str) -> Stack:
    """API, io worker (`io_threads` threads) and one CPU worker (converts fetched meshes, renders previews,
    runs the reaper) on `path`, with `key` as the FAL key and `fal` as FAL; `settings` are more `Stack`
    settings."""
    stack = Stack(path, fal_key=key, fal_base_url=fal.base_url, fal_poll_interval="0.2", **settings)
    stack.start_api()
    stack.start_io_worker(threads=io_threads)
    stack.start_worker(workers=1)
    return stack
