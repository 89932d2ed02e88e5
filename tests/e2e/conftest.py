"""The end-to-end suite runs once per backend: every test here is parametrized with `backend`, and the stacks it
starts (fixtures or `Stack(...)` in the test) use that backend unless they name one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import stack as stack_module


@pytest.fixture(
    scope="module",
    autouse=True,
    params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)],
)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = stack_module.default_backend
    stack_module.default_backend = request.param
    yield request.param
    stack_module.default_backend = previous
