"""The notebook viewer in a real JupyterLab: Run All on a notebook that calls generate() against a live stack,
then the GLB viewer's canvas shows the model, its turntable turns, screenshot() comes back as a PNG, and the
page asked nothing of any host but this one."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import nbformat
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("jupyterlab")
pytest.importorskip("playwright")

from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, Session  # noqa: E402
from tests.browser.lab import jupyter_lab  # noqa: E402
from tests.support.stack import REPO  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]

ARTIFACTS = REPO / "test-artifacts"
SAMPLE = REPO / "core" / "generators" / "local" / "samples" / "chair.png"
BACKGROUND = (244, 244, 244)  # GLBViewer's default background
CANVAS = ".jp-OutputArea-output canvas"
T = TypeVar("T")


def _notebook(server_url: str) -> nbformat.NotebookNode:
    cells = [
        "import os\nfrom pathlib import Path\n\nfrom image2model.notebook_ext import generate\n\n"
        'Path("kernel.pid").write_text(str(os.getpid()));',
        f'result = generate({str(SAMPLE)!r}, server_url={server_url!r}, generator="local", face_limit=3000)\n'
        "result",
        # The browser's answer to screenshot() reaches the kernel once it is idle; the observer saves it.
        "viewer = result.viewer()\n"
        'viewer.observe(lambda change: Path("screenshot.png").write_bytes(change["new"]), names="screenshot_png")\n'
        "viewer.turntable = True\n"
        "viewer.screenshot()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _coverage(png: bytes) -> float:
    """Share of the image's pixels that differ clearly from the viewer's background."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    differ = np.abs(rgb - np.array(BACKGROUND, dtype=np.int16)).sum(axis=2) > 40
    return float(differ.mean()) if differ.size else 0.0


def _png(path: Path) -> bytes | None:
    """The file's bytes once it holds a whole PNG."""
    data = path.read_bytes() if path.is_file() else b""
    return data if data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82") else None


def _wait(what: str, check: Callable[[], T], timeout: float) -> T:
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_run_all_renders_the_model_offline_turns_and_screenshots(stack, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab-root"
    root.mkdir()
    nbformat.write(_notebook(stack.url), root / "viewer.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)

    with jupyter_lab(root, tmp_path / "lab-home") as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        session = Session(stack, lab.url, page)
        errors: list[str] = []
        context.on("request", lambda r: session.requests.append(r.url))  # workers' requests too
        page.on("websocket", lambda ws: session.requests.append(ws.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(lab.notebook_url("viewer.ipynb"), wait_until="load")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=30_000)

            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

            canvas = page.locator(CANVAS).first
            canvas.wait_for(state="visible", timeout=45_000)
            _wait("the model on the canvas", lambda: _coverage(canvas.screenshot()) > 0.02, 30)

            shot = _wait("the kernel to save screenshot()'s PNG", lambda: _png(root / "screenshot.png"), 30)
            (ARTIFACTS / "notebook-viewer-screenshot.png").write_bytes(shot)
            assert _coverage(shot) > 0.02

            # The last cell, which ran before the screenshot came back, switched the turntable on.
            first = canvas.screenshot()
            _wait("the turntable to turn the model", lambda: canvas.screenshot() != first, 10)

            assert not errors, errors
            assert any(url.startswith(f"{lab.url}/api/kernels") for url in session.requests)
            assert session.external_requests() == [], session.external_requests()
            kernel_pid = int((root / "kernel.pid").read_text())
        finally:
            page.screenshot(path=str(ARTIFACTS / "notebook-viewer.png"), full_page=True)
            browser.close()

    with pytest.raises(ProcessLookupError):
        os.kill(kernel_pid, 0)  # the kernel went down with JupyterLab
