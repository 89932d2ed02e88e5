"""Notebook fixtures: a stack with the io worker that drives `remote-test`, the test generator taking 2..4 views."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack


@pytest.fixture(scope="module")
def views_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("nbviews") / "data")
    stack.start_api()
    stack.start_io_worker(threads=2)
    stack.start_worker(workers=1)
    yield stack
    stack.stop()
