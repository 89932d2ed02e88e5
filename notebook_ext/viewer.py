"""`GLBViewer`: an anywidget that renders a GLB (textures, orbit controls, turntable, screenshot to PNG) with
the three.js bundle shipped in this package (`static/viewer.js`, built from `js/` by the package build), so
nothing is fetched from a CDN."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anywidget
import traitlets

BUNDLE = Path(__file__).parent / "static" / "viewer.js"

# Shown instead of the viewer when the bundle was not built: code run from a checkout that was never installed
# (the package build bundles it, see setup.py).
_MISSING_BUNDLE = """
export default { render({ el }) {
  el.textContent = "image2model viewer: static/viewer.js is missing; install image2model (pip install -e .) " +
    "where npm is available: the build bundles the viewer";
} };
"""


def bundle_source() -> str:
    """The viewer's ES module (a stub that says how to build it when the bundle is missing)."""
    return BUNDLE.read_text(encoding="utf-8") if BUNDLE.is_file() else _MISSING_BUNDLE


class GLBViewer(anywidget.AnyWidget):
    """A 3D viewer for GLB bytes. Set `glb` (from any thread) to show a model; `status` reports what the
    browser did with it (`empty`, `loading`, `loaded:<meshes>`, `error:<why>`)."""

    _esm = bundle_source()

    glb = traitlets.Bytes(b"").tag(sync=True)
    status = traitlets.Unicode("empty").tag(sync=True)
    turntable = traitlets.Bool(False).tag(sync=True)
    wireframe = traitlets.Bool(False).tag(sync=True)
    background = traitlets.Unicode("#f4f4f4").tag(sync=True)
    height = traitlets.Int(420).tag(sync=True)
    screenshot_png = traitlets.Bytes(b"")  # filled by the browser's answer to `screenshot()`; not synced
    # screenshot() counts requests up; the first view that has loaded the model answers and counts it done.
    # State rather than a message, so a request made before any view has rendered is not lost.
    _screenshot_request = traitlets.Int(0).tag(sync=True)
    _screenshot_answered = traitlets.Int(0).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._on_custom_msg)

    def screenshot(self) -> None:
        """Ask the browser for a PNG of the view once it shows the model. The answer arrives asynchronously (the
        kernel must be idle to receive it) in `screenshot_png`; observe that trait or read it in a later cell."""
        self._screenshot_request += 1

    def save_screenshot(self, path: str | Path) -> Path:
        """Write the last screenshot received to `path`."""
        if not self.screenshot_png:
            raise ValueError("no screenshot yet: call screenshot() and read it once the browser answered")
        target = Path(path)
        target.write_bytes(self.screenshot_png)
        return target

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "screenshot":
            self.screenshot_png = base64.b64decode(content.get("data", ""))
