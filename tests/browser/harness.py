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


def browser_marks() -> list[Any]:
    """The marks of a browser test module: browser, slow, e2e, and skipped where Debian's Chromium is missing."""
    import pytest

    return [
        pytest.mark.browser,
        pytest.mark.slow,
        pytest.mark.e2e,
        pytest.mark.skipif(
            not os.path.exists(CHROMIUM), reason="needs Debian's chromium (apt-get install chromium)"
        ),
    ]


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
def ui_session(
    data_dir: Path, *, io_worker: bool = False, query: str = "", **settings: str
) -> Iterator[Session]:
    """A stack on the local generator, the UI on a free port and a fresh Chromium page on it. `io_worker` also
    starts the worker of remote generators (the test's `remote-test` takes several views); `query` is appended
    to the first page's URL (e.g. `?job=...`)."""
    from playwright.sync_api import sync_playwright

    from image2model.core.settings import Settings
    from image2model.ui_gradio.app import build_app, close_app, launch_options

    stack = Stack(data_dir, default_generator="local", **settings).start()
    demo = None
    try:
        if io_worker:
            stack.start_io_worker()
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
                page.goto(url + query, wait_until="load")
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


LATENCY_PROBE = """
(() => {
  // Latency probe for the bench: when Generate was clicked, when the viewer got its model, and the first frame
  // whose pixels show it. WebGL canvases keep their drawing buffer, so a frame can be read after it was shown.
  const now = () => performance.timeOrigin + performance.now();
  const bg = %(background)s, minCoverage = %(min_coverage)s, W = 96, H = 48;
  const probe = (window.__i2m = {});
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, attrs) {
    if (/^(webgl|webgl2|experimental-webgl)$/.test(kind)) attrs = { ...(attrs || {}), preserveDrawingBuffer: true };
    return getContext.call(this, kind, attrs);
  };
  for (const proto of [WebGLRenderingContext.prototype, WebGL2RenderingContext.prototype]) {
    for (const name of ["drawElements", "drawArrays", "drawElementsInstanced", "drawArraysInstanced"]) {
      const draw = proto[name];
      if (draw) proto[name] = function (...args) { probe.drawn = true; probe.ready ||= now(); return draw.apply(this, args); };
    }
  }
  let ctx = null;
  const coverage = (canvas) => {
    if (!ctx) {
      const c = document.createElement("canvas");
      c.width = W; c.height = H;
      ctx = c.getContext("2d", { willReadFrequently: true });
    }
    ctx.clearRect(0, 0, W, H);
    ctx.drawImage(canvas, 0, 0, W, H);
    const d = ctx.getImageData(0, 0, W, H).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 250 && Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]) > 40) n++;
    }
    return n / (W * H);
  };
  const watch = () => {
    if (probe.visible) return;
    const link = document.querySelector("[data-testid=model3d-download-link]");
    const href = link && link.getAttribute("href");
    if (href && href !== probe.startHref && !probe.model) { probe.model = now(); probe.modelHref = href; }
    const canvas = document.querySelector("[data-testid=model3d] canvas");
    if (probe.model && canvas && probe.drawn) {
      probe.drawn = false;
      probe.checks = (probe.checks || 0) + 1;
      const seen = coverage(canvas);
      if (seen >= minCoverage) { probe.visible = now(); probe.coverage = seen; return; }
    }
    requestAnimationFrame(watch);
  };
  document.addEventListener("click", (e) => {
    const button = e.target.closest && e.target.closest("button");
    if (!button || button.textContent.trim() !== "Generate" || probe.click) return;
    probe.click = now();
    const link = document.querySelector("[data-testid=model3d-download-link]");
    probe.startHref = link && link.getAttribute("href");
    requestAnimationFrame(watch);
  }, true);
})();
"""


def install_latency_probe(page: Any, min_coverage: float = 0.01) -> None:
    """Load `LATENCY_PROBE` into every page the tab opens from now on (reload to apply it)."""
    page.add_init_script(LATENCY_PROBE % {"background": list(BACKGROUND), "min_coverage": min_coverage})


def wait_for_viewer(page: Any, timeout: float = 30.0) -> None:
    """Wait until the page's 3D viewer has drawn its first frame (the page has finished loading)."""
    page.wait_for_function("() => window.__i2m && window.__i2m.ready", timeout=timeout * 1000, polling=100)


def wait_for_probe(page: Any, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until the probe saw the model drawn; returns what it recorded: epoch times in seconds (ready,
    click, model, visible), the coverage of the first frame showing the model, the model's URL."""
    page.wait_for_function("() => window.__i2m && window.__i2m.visible", timeout=timeout * 1000, polling=100)
    probe = page.evaluate("window.__i2m")
    return {k: (v / 1000 if k in ("ready", "click", "model", "visible") else v) for k, v in probe.items()}


def wait_for_model(page: Any, timeout: float = 30.0, min_coverage: float = 0.01) -> float:
    """Wait until the viewer holds a model (not its empty scene) and its canvas shows something; returns the
    coverage seen."""
    from image2model.ui_gradio.app import EMPTY_SCENE

    page.wait_for_function(
        """(empty) => {
            const link = document.querySelector("[data-testid=model3d-download-link]");
            const href = link && link.getAttribute("href");
            return href && !href.endsWith("/" + empty);
        }""",
        arg=EMPTY_SCENE,
        timeout=timeout * 1000,
    )
    page.locator("[data-testid=model3d] canvas").first.wait_for(state="visible", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    coverage = 0.0
    while time.monotonic() < deadline:
        coverage = canvas_coverage(page)
        if coverage >= min_coverage:
            return coverage
        time.sleep(0.05)
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "ui-blank-viewer.png"), full_page=True)
    raise AssertionError(
        f"the model viewer stayed blank (coverage {coverage:.4f}); page kept as test-artifacts/ui-blank-viewer.png"
    )


def viewer_href(page: Any) -> str:
    """The URL of the model in the viewer ("" when none)."""
    link = page.locator("[data-testid=model3d-download-link]").first
    return str(link.get_attribute("href") or "") if link.count() else ""


def wait_for_viewer_change(page: Any, before: str, timeout: float = 30.0) -> str:
    """Wait until the viewer holds a model other than `before` (an earlier `viewer_href`) and not its empty scene;
    returns its URL. For models too plain for `wait_for_model`'s pixel check (the test generator's white box)."""
    from image2model.ui_gradio.app import EMPTY_SCENE

    page.wait_for_function(
        """([before, empty]) => {
            const link = document.querySelector("[data-testid=model3d-download-link]");
            const href = link && link.getAttribute("href");
            return href && href !== before && !href.endsWith("/" + empty);
        }""",
        arg=[before, EMPTY_SCENE],
        timeout=timeout * 1000,
    )
    return viewer_href(page)
