"""Fixtures: the scripted API of `fakeapi`, served by uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
import uvicorn
from fakeapi import FakeAPI, _Holder, app


@pytest.fixture(scope="session")
def _server() -> Any:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def fake(_server: int) -> FakeAPI:
    _Holder.api = FakeAPI()
    _Holder.api.port = _server  # type: ignore[attr-defined]
    return _Holder.api


@pytest.fixture
def url(_server: int) -> str:
    return f"http://127.0.0.1:{_server}"


@pytest.fixture
def dead_url() -> str:
    """A URL nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
