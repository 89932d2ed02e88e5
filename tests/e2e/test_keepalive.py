"""Quiet streams get keep-alive comments, and close right after the terminal event."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.images import photo
from tests.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_quiet_stream_gets_keepalive_comments_then_closes_after_terminal_event(tmp_path):
    stack = Stack(tmp_path / "data", sse_ping_seconds="1").start(workers=1)
    try:
        job = httpx.post(
            f"{stack.url}/api/v1/upload/",
            files=[("files", ("q.jpg", photo(), "image/jpeg"))],
            data={"delay": "3", "steps": "1"},
        ).json()
        raw = b""
        started = time.monotonic()
        with httpx.stream(
            "GET", f"{stack.url}/api/v1/status/tasks/{job['job_id']}/stream", timeout=30
        ) as response:
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            for chunk in response.iter_raw():
                raw += chunk
                assert time.monotonic() - started < 30
        text = raw.decode()
        assert text.count(": ping") >= 2, text
        assert text.rstrip().splitlines()[-1].startswith("data:")
        assert "event: task_completed" in text
    finally:
        stack.stop()
