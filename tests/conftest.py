"""Shared fixtures: real service stacks on loopback with the test generator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.s3_server import S3Server
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    """One API + one worker (2 processes) shared by a test module; auth off."""
    s = Stack(tmp_path_factory.mktemp("stack") / "data", backend).start(workers=2)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One `redis-server` on a free loopback port for the whole session (`.ci/run` installs it)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3-compatible server process (moto) on a free loopback port for the whole session."""
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend() -> str:
    """The job store and queue backend of the stacks a test starts (the e2e suite runs on both)."""
    return "sqlite"


@pytest.fixture
def fresh_stack(tmp_path: Path, backend: str) -> Iterator[Stack]:
    """A stack of the test's own (not started), for tests that kill or restart processes."""
    s = Stack(tmp_path / "data", backend)
    yield s
    s.stop()


def stored_files(data_dir: Path) -> list[Path]:
    """Every file under blobs/ and staging/."""
    return [p for d in ("blobs", "staging") for p in (data_dir / d).rglob("*") if p.is_file()]
