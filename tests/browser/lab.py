"""JupyterLab on loopback for browser tests: a temp root, its own config/data/runtime/settings dirs, nothing
fetched from the network (no news, no update check, a read-only extension manager), shut down cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.stack import free_port

# Server-side fetches that JupyterLab makes on its own unless told not to.
_SERVER_CONFIG = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "extension_manager": "readonly",
    },
}
# The front-end's own (read from the user settings dir): no news prompt, no update check, and a notebook starts
# the kernel its metadata names without asking (the kernel picker shows when the kernel specs load late).
_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
}


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def jupyter_lab(root: Path, home: Path, env: dict[str, str] | None = None) -> Iterator[Lab]:
    """`jupyter lab` serving `root` on 127.0.0.1 with a random token; its state lives under `home`.
    The kernels it starts inherit `env` (on top of this process's environment)."""
    config, settings = home / "config", home / "settings"
    for path, content in [
        (config / "jupyter_server_config.json", _SERVER_CONFIG),
        *((settings / name, value) for name, value in _USER_SETTINGS.items()),
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    port, token = free_port(), secrets.token_hex(16)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, home / "lab.log")
    process_env = {
        **os.environ,
        **(env or {}),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
    ]
    with open(lab.log, "ab") as log:
        process = subprocess.Popen(
            args, env=process_env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_up(lab, process)
        yield lab
    finally:
        _shut_down(lab, process)


def _wait_until_up(lab: Lab, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited: {lab.log_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{lab.url}/api/status", params={"token": lab.token}, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"jupyter lab did not answer in {timeout:.0f} s: {lab.log_text()[-3000:]}")


def _shut_down(lab: Lab, process: subprocess.Popen) -> None:
    """Shut the kernels down, then ask the server to stop; signal it only if it does not."""
    if process.poll() is None:
        headers = {"Authorization": f"token {lab.token}"}
        with contextlib.suppress(httpx.HTTPError), httpx.Client(base_url=lab.url, headers=headers) as http:
            for kernel in http.get("/api/kernels", timeout=5).json():
                http.delete(f"/api/kernels/{kernel['id']}", timeout=20)
            http.post("/api/shutdown", timeout=5)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    """Signal the server's process group (kernels run in sessions of their own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
