"""The web UI in a real browser: a local-generator stack, the app in-process, Debian's Chromium via Playwright.
Shared by the browser tests and `bench/ui_latency.py`."""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.stack import Stack, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LOCAL = ("127.0.0.1", "localhost")
BACKGROUND = (237, 240, 245)  # the viewer's clear_color, 0..255


@dataclass
class Session:
    stack: Stack
    url: str
    page: Any
    requests: list[str] = field(default_factory=list)

    def external_requests(self) -> list[str]:
        """Requests that went anywhere but this machine (blob:/data: never leave the page)."""
        from urllib.parse import urlsplit

        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("blob", "data", "about", "chrome", "chrome-extension"):
                continue
            if parts.hostname not in LOCAL:
                out.append(url)
        return out


@contextlib.contextmanager
def ui_session(data_dir: Path, **settings: str) -> Iterator[Session]:
    """A stack on the local generator, the UI on a free port and a fresh Chromium page on it."""
    from playwright.sync_api import sync_playwright

    from image2model.core.settings import Settings
    from image2model.ui_gradio.app import build_app, close_app, launch_options

    stack = Stack(data_dir, default_generator="local", **settings).start()
    demo = None
    try:
        demo = build_app(Settings(server_url=stack.url, api_key=""), files_root=data_dir.parent / "ui-files")
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_options())
        url = f"http://127.0.0.1:{port}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                session = Session(stack, url, page)
                page.on("request", lambda r: session.requests.append(r.url))
                page.goto(url, wait_until="load")
                page.get_by_role("button", name="Generate", exact=True).wait_for(timeout=30_000)
                yield session
            finally:
                browser.close()
    finally:
        if demo is not None:
            close_app(demo)
        stack.stop()


def upload(page: Any, path: str | os.PathLike[str]) -> None:
    page.set_input_files("input[type=file]", str(path))
    # The file list gets a row labelled with the name once Gradio has taken the upload.
    page.locator(f'td[aria-label="{Path(path).name}"]').first.wait_for(timeout=15_000)


def click_generate(page: Any) -> None:
    page.get_by_role("button", name="Generate", exact=True).click()


def canvas_coverage(page: Any) -> float:
    """Share of the viewer canvas's pixels that differ clearly from the background."""
    from PIL import Image

    canvas = page.locator("[data-testid=model3d] canvas").first
    png = canvas.screenshot()
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    differ = np.abs(rgb - np.array(BACKGROUND, dtype=np.int16)).sum(axis=2) > 40
    return float(differ.mean()) if differ.size else 0.0


def wait_for_model(page: Any, timeout: float = 30.0, min_coverage: float = 0.01) -> float:
    """Wait until the viewer's canvas shows something; returns the coverage seen."""
    page.locator("[data-testid=model3d] canvas").first.wait_for(state="visible", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    coverage = 0.0
    while time.monotonic() < deadline:
        coverage = canvas_coverage(page)
        if coverage >= min_coverage:
            return coverage
        time.sleep(0.05)
    raise AssertionError(f"the model viewer stayed blank (coverage {coverage:.4f})")
