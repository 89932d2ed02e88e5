"""The web UI in Debian's Chromium: upload, generate, a rendered model, downloads, errors, nothing external."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("playwright")

from tests.browser.harness import (  # noqa: E402
    browser_marks,
    canvas_coverage,
    click_generate,
    install_latency_probe,
    ui_session,
    upload,
    wait_for_model,
    wait_for_probe,
    wait_for_viewer,
)
from tests.support.images import photo  # noqa: E402

pytestmark = browser_marks()

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def test_upload_generate_view_download_and_errors(tmp_path: Path) -> None:
    shoe = REPO / "core" / "generators" / "local" / "samples" / "shoe.png"
    fake = tmp_path / "holiday.png"
    fake.write_text("not an image, just text with a .png name\n")
    with ui_session(tmp_path / "data") as s:
        page = s.page
        ARTIFACTS.mkdir(exist_ok=True)
        # Before any job the viewer is set up on its empty scene: a blank canvas and no download link.
        page.locator("[data-testid=model3d] canvas").first.wait_for(state="visible", timeout=20_000)
        deadline = time.monotonic() + 20
        while canvas_coverage(page) >= 0.02:  # the label and the reset button overlap the canvas
            assert time.monotonic() < deadline, "the empty viewer never showed its blank background"
            page.wait_for_timeout(200)
        assert not page.locator("[data-testid=model3d-download-link]").first.is_visible()
        # Error path first: the API's message is shown, not a traceback.
        upload(page, fake)
        click_generate(page)
        error = page.locator("#i2m-stage")
        error.get_by_text("Error:").wait_for(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "ui-error.png"))
        text = error.inner_text()
        assert "image" in text.lower() and "Traceback" not in text

        # With the bench's latency probe: the empty scene draws at load, the model's frame follows the click.
        install_latency_probe(page)
        page.reload()
        page.get_by_role("button", name="Generate", exact=True).wait_for()
        wait_for_viewer(page)
        upload(page, shoe)
        click_generate(page)
        probe = wait_for_probe(page)
        assert probe["ready"] < probe["click"] < probe["model"] < probe["visible"]
        assert probe["coverage"] >= 0.01
        coverage = wait_for_model(page)
        assert coverage > 0.01
        page.get_by_text("Done").first.wait_for(timeout=20_000)
        page.get_by_text("watertight").first.wait_for(timeout=10_000)

        # The viewer's own download link and the GLB button both give the model.
        href = page.locator("[data-testid=model3d-download-link]").first.get_attribute("href")
        assert href
        body = page.request.get(href if href.startswith("http") else s.url.rstrip("/") + href).body()
        assert body[:4] == b"glTF", (href, body[:300])
        button = page.get_by_role("button", name="GLB", exact=False).first
        with page.expect_download(timeout=15_000) as info:
            button.click()
        saved = Path(info.value.path())
        assert saved.read_bytes()[:4] == b"glTF"

        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "ui-result.png"), full_page=True)
        assert s.external_requests() == [], s.external_requests()


def test_several_photos_make_a_gallery(tmp_path: Path) -> None:
    photos = []
    for i, color in enumerate([(200, 40, 40), (40, 160, 60)]):
        p = tmp_path / f"object{i}.jpg"
        p.write_bytes(photo(400, 300, color=color))
        photos.append(p)
    with ui_session(tmp_path / "data") as s:
        page = s.page
        page.set_input_files("input[type=file]", [str(p) for p in photos])
        page.locator('td[aria-label="object1.jpg"]').wait_for(timeout=15_000)
        click_generate(page)
        # The first model is in the viewer and drawn. How much of the canvas it fills is the first test's to
        # check: here the gallery appears beside it while the second photo is still generating.
        wait_for_model(page, min_coverage=0.003)
        page.get_by_text("Done").first.wait_for(timeout=30_000)
        thumbs = page.locator(".thumbnail-item")
        thumbs.nth(1).wait_for(timeout=10_000)
        assert thumbs.count() == 2
        thumbs.nth(1).click()
        page.locator("strong", has_text="object1.jpg").wait_for(timeout=10_000)
        assert s.external_requests() == []
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
