"""The web UI's tabs in Debian's Chromium: My models (history pages, opening a job), the Export panel, the
multi-view tab and `?job=<id>` links."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("playwright")

from image2model.core.client import Client  # noqa: E402
from tests.browser.harness import (  # noqa: E402
    Session,
    browser_marks,
    ui_session,
    viewer_href,
    wait_for_model,
    wait_for_viewer_change,
)
from tests.support import solids  # noqa: E402
from tests.support.images import photo  # noqa: E402

pytestmark = browser_marks()

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """One stack (with the worker of remote generators: `remote-test` takes several views) and one page."""
    with ui_session(tmp_path_factory.mktemp("tabs") / "data", io_worker=True) as session:
        yield session


def _jobs(s: Session, n: int, generator: str = "instant") -> list[str]:
    """`n` finished jobs, oldest first; each photo has its own size, so each box model is another file."""
    with Client(s.stack.url) as api:
        ids = []
        for i in range(n):
            job = api.submit([photo(320 + 40 * i, 240, color=(60 * i % 255, 120, 200))], generator=generator)
            assert api.wait(job.job_id, timeout=60).status.value == "completed"
            ids.append(job.job_id)
    return ids


def _home(s: Session, query: str = "") -> None:
    s.page.goto(s.url + query, wait_until="load")
    s.page.get_by_role("button", name="Generate", exact=True).wait_for(timeout=30_000)


def _job_link(s: Session, job_id: str) -> None:
    s.page.locator("#i2m-job-link").get_by_text(job_id).wait_for(timeout=30_000)


def test_my_models_lists_jobs_newest_first_pages_and_opens_one(
    s: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from image2model.ui_gradio import history

    monkeypatch.setattr(history, "PAGE_SIZE", 2)
    ids = _jobs(s, 3)
    with Client(s.stack.url) as api:
        listed = [j.job_id for j in api.jobs(100).jobs]
    _home(s)
    page = s.page
    page.get_by_role("tab", name="My models").click()
    thumbs = page.locator("#i2m-history .thumbnail-item")
    thumbs.nth(1).wait_for(timeout=20_000)
    assert thumbs.count() == 2
    more = page.get_by_role("button", name="More", exact=True)
    more.click()
    thumbs.nth(2).wait_for(timeout=20_000)
    assert thumbs.count() == 3 == min(3, len(listed))
    page.locator("#i2m-history-note").get_by_text("3 models").wait_for(timeout=10_000)
    # Every tile is an image the browser loaded (the job's preview shrunk, not a broken link).
    widths = page.eval_on_selector_all(
        "#i2m-history .thumbnail-item img", "els => els.map(e => e.complete ? e.naturalWidth : 0)"
    )
    assert len(widths) == 3 and all(w > 0 for w in widths), widths
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-my-models.png"), full_page=True)
    # Newest first: the first tile is the last job made; picking it opens it in the viewer with its downloads.
    assert listed[:3] == ids[::-1]
    before = viewer_href(page)
    thumbs.nth(0).click()
    _job_link(s, ids[-1])
    newest = wait_for_viewer_change(page, before)
    page.get_by_text("Done").first.wait_for(timeout=20_000)
    page.get_by_role("button", name=re.compile(r"^GLB · ")).wait_for(timeout=10_000)
    thumbs.nth(2).click()
    _job_link(s, ids[0])
    wait_for_viewer_change(page, newest)
    assert s.external_requests() == []


def test_export_panel_makes_a_file_for_printing_and_says_what_went_wrong(s: Session) -> None:
    import trimesh

    (job_id,) = _jobs(s, 1)
    _home(s, f"?job={job_id}")
    page = s.page
    _job_link(s, job_id)
    wait_for_viewer_change(page, "")
    panel = page.locator("#i2m-export")
    panel.get_by_text("Export:").first.click()  # open the panel
    panel.get_by_text("STL", exact=True).click()
    panel.get_by_label("Height (mm)").fill("80")
    panel.get_by_label("Face count").fill("")
    page.get_by_role("button", name="Export", exact=True).click()
    status = page.locator("#i2m-export-status")
    status.get_by_text("Exported STL").wait_for(timeout=60_000)
    assert "80 mm tall" in status.inner_text() and "Z up" in status.inner_text()
    with page.expect_download(timeout=15_000) as info:
        page.get_by_role("button", name=re.compile(r"Download .*\.stl")).click()
    mesh = trimesh.load(io.BytesIO(Path(info.value.path()).read_bytes()), file_type="stl")
    assert mesh.extents[2] == pytest.approx(80, rel=1e-3)  # Z up, in millimetres
    assert mesh.bounds[0][2] == pytest.approx(0, abs=1e-6)  # standing on the plate
    page.screenshot(path=str(ARTIFACTS / "ui-export.png"), full_page=True)

    # A face count the server would refuse is caught with the range to use; nothing is sent.
    panel.get_by_label("Face count").fill("5")
    page.get_by_role("button", name="Export", exact=True).click()
    status.get_by_text("Face count must be a whole number from 12").wait_for(timeout=15_000)
    # The API's own refusal reaches the user as a sentence: the job was deleted meanwhile.
    with Client(s.stack.url) as api:
        api.delete(job_id)
    panel.get_by_label("Face count").fill("")
    page.get_by_role("button", name="Export", exact=True).click()
    status.get_by_text("Export failed").wait_for(timeout=30_000)
    text = status.inner_text()
    assert job_id in text or "not found" in text.lower(), text
    assert "Traceback" not in text


def test_multi_view_tab_needs_two_views_and_makes_one_model_of_them(s: Session, tmp_path: Path) -> None:
    views = {}
    shots = solids.photographs(solids.SOLIDS["l-block"], (0, 1, 2))
    for name, image in zip(("front", "left", "back"), shots, strict=True):
        views[name] = tmp_path / f"{name}.jpg"
        image.convert("RGB").save(views[name], quality=90)
    _home(s)
    page = s.page
    page.get_by_role("tab", name="Multi-view").click()
    page.set_input_files("#i2m-view-front input[type=file]", str(views["front"]))
    page.locator("#i2m-view-front img").first.wait_for(timeout=15_000)
    page.get_by_role("button", name="Generate from views").click()
    page.locator("#i2m-stage").get_by_text("at least 2 views").wait_for(timeout=15_000)
    assert "only the front view" in page.locator("#i2m-stage").inner_text()
    with Client(s.stack.url) as api:
        before = {j.job_id for j in api.jobs(100).jobs}

    for name in ("left", "back"):
        page.set_input_files(f"#i2m-view-{name} input[type=file]", str(views[name]))
        page.locator(f"#i2m-view-{name} img").first.wait_for(timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "ui-multiview.png"), full_page=True)
    page.get_by_role("button", name="Generate from views").click()
    wait_for_viewer_change(page, viewer_href(page))
    page.get_by_text("Done").first.wait_for(timeout=30_000)
    with Client(s.stack.url) as api:
        (job,) = [j for j in api.jobs(100).jobs if j.job_id not in before]
        listing = api.files(job.job_id)
    # One model made of the three views, in the order of the zones, by the local generator's multi-view path.
    assert job.generator == "local" and job.total_files == 1
    glb = next(f for f in listing.files if f.format == "glb")
    assert glb.metadata["views"] == 3 and glb.metadata["views_used"] == ["front", "left", "back"]
    page.screenshot(path=str(ARTIFACTS / "ui-multiview-model.png"), full_page=True)
    _job_link(s, job.job_id)


def test_job_link_opens_the_job_on_load_and_an_unknown_one_says_so(s: Session) -> None:
    (job_id,) = _jobs(s, 1, generator="local")
    _home(s, f"?job={job_id}")
    page = s.page
    _job_link(s, job_id)
    coverage = wait_for_model(page)
    assert coverage > 0.01
    href = page.locator("#i2m-job-link a", has_text="link to this model").get_attribute("href")
    assert href == f"?job={job_id}"
    page.screenshot(path=str(ARTIFACTS / "ui-job-link.png"), full_page=True)

    _home(s, "?job=no-such-job")
    page.locator("#i2m-stage").get_by_text("Error:").wait_for(timeout=20_000)
    assert "no-such-job" in page.locator("#i2m-stage").inner_text() or "not found" in (
        page.locator("#i2m-stage").inner_text().lower()
    )
