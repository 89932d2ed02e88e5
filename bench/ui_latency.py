"""Web UI latency: click Generate → the model visible (non-blank viewer canvas) in Chromium, for one 1024 px
photo on the local generator. Target from issue 5: ≤ 2 s. Prints each run with where its time went, the
median of every phase and a PASS/FAIL line.

Each run reloads the page and waits until it has loaded (the viewer drew its first, empty frame), uploads the
photo and clicks. The page times itself (`tests.browser.harness.LATENCY_PROBE`): the click, the viewer
receiving the model, and the first frame whose pixels show it; a screenshot of the canvas then confirms the
model is on screen. The app's debug log and the browser's request timings fill in the phases between."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_S = 0.7  # issue 16 (issue 5 asked for 2 s)
PHASES = {
    "join": "Gradio queue/join answered",
    "submitted": "API answered the upload",
    "listed": "model listed (event at the UI server)",
    "item": "model and previews downloaded, update yielded",
    "model": "viewer got the model's URL",
    "glb": "viewer fetched the GLB",
    "visible": "first frame showing the model",
}


def photo_1024(path: Path) -> Path:
    """A 1024 × 1024 product-style shot: a shaded mug-like shape on a light backdrop."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (1024, 1024), (236, 236, 236))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle((300, 260, 700, 800), radius=60, fill=(40, 110, 190))
    d.ellipse((660, 400, 820, 640), outline=(40, 110, 190), width=40)
    im.save(path, quality=92)
    return path


class _Phases(logging.Handler):
    """Collects the UI server's `phase=` debug lines with their wall-clock times."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "phase=" in message:
            phase = message.split("phase=", 1)[1].split()[0]
            self.seen.setdefault({"model_listed": "listed"}.get(phase, phase), record.created)


def _request_times(finished: list[Any]) -> dict[str, float]:
    """Wall-clock end times of the queue/join POST and of the viewer's GLB fetch."""
    out: dict[str, float] = {}
    for request in finished:
        timing = request.timing
        end = (timing["startTime"] + timing["responseEnd"]) / 1000
        if "queue/join" in request.url:
            out.setdefault("join", end)
        elif request.url.endswith(".glb") and request.method == "GET":
            out.setdefault("glb", end)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="two runs")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs

    from tests.browser.harness import (
        canvas_coverage,
        click_generate,
        install_latency_probe,
        ui_session,
        upload,
        wait_for_probe,
        wait_for_viewer,
    )

    phases = _Phases()
    ui_log = logging.getLogger("image2model.ui")
    ui_log.setLevel(logging.DEBUG)
    ui_log.addHandler(phases)
    times: list[float] = []
    table: dict[str, list[float]] = {p: [] for p in PHASES}
    with tempfile.TemporaryDirectory() as tmp:
        image = photo_1024(Path(tmp) / "mug-1024.jpg")
        with ui_session(Path(tmp) / "data") as s:
            page = s.page
            install_latency_probe(page)
            finished: list[Any] = []
            page.on("requestfinished", lambda request: finished.append(request))
            for i in range(runs + 1):  # the first run warms up the worker and the viewer
                page.reload()
                page.get_by_role("button", name="Generate", exact=True).wait_for()
                wait_for_viewer(page)
                upload(page, image)
                finished.clear()
                phases.seen.clear()
                click_generate(page)
                probe = wait_for_probe(page, timeout=30)
                shown = canvas_coverage(page)
                if shown < 0.01:
                    raise SystemExit(f"run {i}: the probe saw the model drawn but the screenshot is blank")
                page.get_by_text("Done").first.wait_for(timeout=30_000)
                click = probe["click"]
                marks = {
                    **phases.seen,
                    **_request_times(finished),
                    "model": probe["model"],
                    "visible": probe["visible"],
                }
                rel = {p: marks[p] - click for p in PHASES if p in marks}
                elapsed = rel["visible"]
                print(
                    f"run {i}{' (warm-up)' if not i else ''}: click → model visible {elapsed:.2f} s  ("
                    + ", ".join(f"{p} {t:.2f}" for p, t in rel.items())
                    + ")",
                    flush=True,
                )
                if i:
                    times.append(elapsed)
                    for p, t in rel.items():
                        table[p].append(t)
            external = s.external_requests()
    print("median time since the click, per phase:")
    for p, what in PHASES.items():
        if table[p]:
            print(f"  {p:<10} {statistics.median(table[p]):5.2f} s  {what}")
    median = statistics.median(times)
    print(
        f"click Generate → model visible (1024 px, local generator): median {median:.2f} s, max {max(times):.2f} s"
    )
    print(f"requests that left 127.0.0.1: {len(external)}")
    ok = median <= TARGET_S
    print(f"{'PASS' if ok else 'FAIL'} median ≤ {TARGET_S:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
