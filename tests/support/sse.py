"""Reading a job's event stream straight off the wire (to check the framing itself)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from image2model.core.client._sse import SSEDecoder

TERMINAL = {"task_completed", "task_failed", "task_cancelled"}


@dataclass
class WireEvent:
    id: int | None
    """The frame's id; a `queue_position` notice has none of its own and shows the last one (SSE keeps it), or
    None before any."""
    event: str
    data: dict
    retry: int | None


def read_events(
    url: str,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    stop_after: int | None = None,
    notices: bool = False,
) -> list[WireEvent]:
    """Read SSE frames until the server closes the stream (or `stop_after` events, or `timeout` seconds).
    `queue_position` notices, which have no id, are left out unless `notices` is set."""
    out: list[WireEvent] = []
    decoder = SSEDecoder()
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, headers=headers or {}, timeout=httpx.Timeout(timeout)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            for ev in decoder.feed(chunk):
                if ev.event == "queue_position" and not notices:
                    continue
                out.append(WireEvent(int(ev.id) if ev.id else None, ev.event, json.loads(ev.data), ev.retry))
                if stop_after is not None and len(out) >= stop_after:
                    return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream still open after {timeout} s; got {[e.event for e in out]}")
    return out


def wait_status(base: str, job_id: str, statuses: set[str], timeout: float = 30, headers=None) -> dict:
    """Poll the job snapshot until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{base}/api/v1/status/tasks/{job_id}", headers=headers or {}, timeout=5)
        assert response.status_code == 200, response.text
        snap = response.json()
        if snap["status"] in statuses:
            return snap
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {snap['status']} after {timeout} s: {str(snap)[:800]}")


def wait_file_status(base: str, job_id: str, index: int, status: str, timeout: float = 30) -> dict:
    """Poll until one file of the job reaches `status`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = httpx.get(f"{base}/api/v1/status/jobs/{job_id}/progress", timeout=5).json()
        if snap["files"][index]["status"] == status:
            return snap
        time.sleep(0.05)
    raise TimeoutError(f"file {index} of {job_id} never reached {status}")
