"""Records real event streams for the clients' rendering tests: `python -m tests.support.record_streams` starts a
real API and worker (SQLite, the instant and local generators), runs each scenario and writes
`tests/support/recordings/<name>.json` with the upload response, the raw bytes of the job's event stream read from
its start (queue notices included) and the job's final listing. `tests/support/recordings.py` reads them back."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from image2model.core.client._sse import SSEDecoder
from tests.support.images import photo
from tests.support.stack import Stack

HERE = Path(__file__).parent / "recordings"
TERMINAL = {"task_completed", "task_failed", "task_cancelled"}
SAMPLES = Path(__file__).resolve().parents[2] / "core" / "generators" / "local" / "samples"


class Capture(threading.Thread):
    """Reads one job's stream from its first event to its terminal one, keeping the raw bytes."""

    def __init__(self, url: str, job_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}/api/v1/status/tasks/{job_id}/stream"
        self.raw = bytearray()
        self.notices = 0
        self.opened = threading.Event()

    def run(self) -> None:
        decoder = SSEDecoder()
        with httpx.stream("GET", self.url, timeout=60) as response:
            response.raise_for_status()
            self.opened.set()
            for chunk in response.iter_raw():
                self.raw += chunk
                for event in decoder.feed(chunk):
                    self.notices += event.event == "queue_position"
                    if event.event in TERMINAL:
                        return


def _upload(stack: Stack, files: list[tuple[str, bytes]], **fields: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.url}/api/v1/upload/",
        files=[
            ("files", (name, data, "image/png" if name.endswith(".png") else "image/jpeg"))
            for name, data in files
        ],
        data={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def _status(stack: Stack, job_id: str) -> dict[str, Any]:
    return httpx.get(f"{stack.url}/api/v1/status/tasks/{job_id}", timeout=10).json()


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _record(stack: Stack, name: str, upload: dict[str, Any], capture: Capture, note: str) -> None:
    capture.join(90)
    if capture.is_alive():
        raise TimeoutError(f"{name}: the stream did not end")
    listing = httpx.get(f"{stack.url}/api/v1/download/{upload['job_id']}/all", timeout=10).json()
    HERE.mkdir(exist_ok=True)
    body = {"note": note, "upload": upload, "stream": capture.raw.decode(), "listing": listing}
    (HERE / f"{name}.json").write_text(json.dumps(body, indent=1) + "\n")
    print(f"{name}: {len(capture.raw)} bytes, {capture.notices} queue notices")


def _follow(stack: Stack, upload: dict[str, Any]) -> Capture:
    capture = Capture(stack.url, upload["job_id"])
    capture.start()
    capture.opened.wait(10)
    return capture


def record_running(stack: Stack) -> None:
    shoe = (SAMPLES / "shoe.png").read_bytes()
    upload = _upload(stack, [("shoe.png", shoe)], generator="local", face_limit=2000, formats="glb,stl")
    _record(stack, "local_one_photo", upload, _follow(stack, upload), "the local generator, one sample photo")

    files = [
        ("red.jpg", photo(color=(200, 40, 40))),
        ("broken.jpg", photo()),
        ("blue.jpg", photo(color=(40, 40, 200))),
    ]
    upload = _upload(stack, files, generator="instant", fail_on="broken", delay=0.3, steps=2)
    _record(
        stack, "three_photos_one_fails", upload, _follow(stack, upload), "instant, the middle photo fails"
    )

    upload = _upload(stack, [("mug.jpg", photo())], generator="instant", fail=True)
    _record(stack, "every_photo_fails", upload, _follow(stack, upload), "instant with fail=true: task_failed")

    upload = _upload(stack, [("a.jpg", photo()), ("b.jpg", photo())], generator="instant", delay=3, steps=30)
    capture = _follow(stack, upload)
    _wait(lambda: _status(stack, upload["job_id"])["files"][0]["progress"] > 15, "first photo running")
    httpx.post(f"{stack.url}/api/v1/jobs/{upload['job_id']}/cancel", timeout=10).raise_for_status()
    _record(stack, "cancelled_while_running", upload, capture, "cancelled with one photo running, one queued")


def record_waiting(stack: Stack) -> None:
    """Jobs queued while no worker runs, so the recorded job hears its place move up."""
    ahead = [
        _upload(stack, [("ahead.jpg", photo())], generator="instant", delay=0.6, steps=2) for _ in range(2)
    ]
    upload = _upload(
        stack, [("late.jpg", photo(color=(60, 160, 60)))], generator="instant", delay=0.2, steps=2
    )
    capture = _follow(stack, upload)
    _wait(lambda: capture.notices > 0, "a first queue notice")
    stack.start_worker(1)
    _record(stack, "waited_in_queue", upload, capture, f"{len(ahead)} jobs ahead, the worker started late")


def record_retry(stack: Stack) -> None:
    """A worker killed mid-photo: the reaper puts the item back and a new worker makes it."""
    upload = _upload(stack, [("vase.jpg", photo())], generator="instant", delay=4, steps=20)
    capture = _follow(stack, upload)
    _wait(lambda: _status(stack, upload["job_id"])["files"][0]["progress"] > 20, "the photo running")
    stack.kill_worker()
    stack.start_worker(1)  # its reaper finds the dead worker's lease expired
    _record(stack, "retried_after_a_worker_crash", upload, capture, "SIGKILLed worker, attempt 2 completes")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for scenario, start in ((record_running, True), (record_waiting, False), (record_retry, True)):
            stack = Stack(Path(tmp) / scenario.__name__, "sqlite", queue_position_interval="0.2")
            try:
                stack.start_api()
                if start:
                    stack.start_worker(1)
                scenario(stack)
            finally:
                stack.stop()


if __name__ == "__main__":
    main()
