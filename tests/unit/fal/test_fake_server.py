"""The fake FAL's control routes (for tests in other processes) and its standalone command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.fakes.fal_server import FakeFal
from tests.unit.fal.conftest import no_progress

ROOT = Path(__file__).resolve().parents[3]


def test_faults_and_scripts_over_http(fake: FakeFal, make_generator, request_for, images) -> None:
    with httpx.Client(base_url=fake.base_url) as http:
        assert http.get("/__fake__/health").json()["ok"] is True
        assert (
            http.post("/__fake__/faults", json={"route": "submit", "code": 503, "times": 1}).status_code
            == 200
        )
        assert http.post("/__fake__/faults", json={"route": "nope"}).status_code == 400
        assert http.post("/__fake__/script", json={"next": [{"queue_polls": 3}]}).status_code == 200
        gen = make_generator()
        gen.generate(request_for(gen, images[:1]), no_progress)
        (job,) = http.get("/__fake__/jobs").json()
        assert job["polls"] >= 5 and job["auth"].startswith("Key ")
        submits = http.get("/__fake__/requests", params={"route": "submit"}).json()
        assert len(submits) == 2 and submits[1]["json"]["image_url"].startswith("data:image/png;base64,...")
        http.post("/__fake__/script", json={"default": {"stuck": True}})
        request = request_for(gen, images[:1])
        state = gen.start(request)
        for _ in range(3):
            state = gen.poll(request, state, no_progress).state  # type: ignore[union-attr]
        assert http.post(f"/__fake__/jobs/{state['request_id']}/complete").status_code == 200
        assert gen.poll(request, state, no_progress).files  # type: ignore[union-attr]
        http.post("/__fake__/reset")
        assert http.get("/__fake__/jobs").json() == []


def test_standalone_server_runs_and_stops() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fal_server", "--port", "0", "--queue-s", "0", "--run-s", "0.2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake FAL listening on http://127.0.0.1:")
        base = line.split()[-1]
        assert httpx.get(f"{base}/__fake__/health", timeout=5).json()["ok"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=10)
