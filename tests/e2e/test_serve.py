"""`image2model serve` starts API and workers, prints the URLs, and stops everything on SIGTERM/Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.images import photo
from tests.support.sse import wait_status
from tests.support.stack import REPO, TEST_ENV, free_port
from tests.support.webhooks import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def backend() -> str:
    """`serve` is the embedded mode: SQLite only."""
    return "sqlite"


def _descendants(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [d for c in map(int, children) for d in (c, *_descendants(c))]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["sigterm", "sigint", "terminal-ctrl-c"])
def test_serve_runs_a_job_and_shuts_down_cleanly(tmp_path, how):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMAGE2MODEL_")},
        **TEST_ENV,
        "IMAGE2MODEL_DATA_DIR": str(tmp_path / "data"),
        "IMAGE2MODEL_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "image2model.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-ui",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        banner = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            banner.append(line)
            if "Press Ctrl-C" in line or not line:
                break
        assert any(f"http://127.0.0.1:{port}" in line for line in banner), banner
        base = f"http://127.0.0.1:{port}"
        key = tmp_path / "data" / "webhook.key"  # made by the webhook worker serve started
        for _ in range(300):
            if key.exists():
                break
            time.sleep(0.1)
        with Receiver(key.read_text().strip()) as receiver:
            job = httpx.post(
                f"{base}/api/v1/upload/",
                files=[("files", ("s.jpg", photo(), "image/jpeg"))],
                data={"webhook_url": receiver.url},
            ).json()
            assert wait_status(base, job["job_id"], {"completed"}, timeout=30)["completed_files"] == 1
            assert receiver.wait_for(lambda r: len(r.application) == 1, 30)

        family = _descendants(proc.pid)
        assert len(family) >= 3, family  # api, consumer and its worker process at least
        if how == "terminal-ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        terminal = "".join(banner) + proc.stdout.read()
        assert "image2model stopped." in terminal
        # the terminal: the URLs, the job's one line, warnings; not huey's three lines every five seconds
        assert f"event=job_finished job_id={job['job_id']} status=completed files=1 failed=0" in terminal
        chatter = [
            ln for ln in terminal.splitlines() if "level=info" in ln and "event=job_finished" not in ln
        ]
        assert chatter == [], terminal
        log = (tmp_path / "data" / "logs" / "image2model.log").read_text()
        assert f"event=item_completed job_id={job['job_id']}" in log and "Executing" not in log
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/api/v1/health", timeout=2)
        leftover = subprocess.run(
            ["pgrep", "-s", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert leftover == [], f"processes left behind: {leftover}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_serve_starts_the_web_ui_too(tmp_path):
    port, ui_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMAGE2MODEL_")},
        **TEST_ENV,
        "IMAGE2MODEL_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO),
    }
    command = [
        sys.executable,
        "-m",
        "image2model.cli",
        "serve",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
    ]
    proc = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline, banner = time.monotonic() + 60, []
        while time.monotonic() < deadline and not any("Press Ctrl-C" in line for line in banner):
            banner.append(proc.stdout.readline())
        assert any(f"image2model UI   http://127.0.0.1:{ui_port}" in line for line in banner), banner
        page = None
        while time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200 and "gradio" in page.text.lower()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
