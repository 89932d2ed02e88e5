"""generate() and generate_many() against a live API and worker (outside a kernel: tqdm progress)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from image2model.notebook_ext import Batch, generate, generate_many
from tests.support.images import photo

pytestmark = pytest.mark.e2e


def test_generate_returns_a_textured_watertight_mesh_with_metadata(stack, tmp_path: Path) -> None:
    result = generate(photo(), server_url=stack.url, generator="local", face_limit=3000)

    assert result.ok, result.error
    assert result.glb_bytes[:4] == b"glTF"
    mesh = result.mesh
    assert isinstance(mesh, trimesh.Trimesh)
    assert mesh.visual.kind == "texture"
    # The GLB's UV seams duplicate vertices at equal positions: closed once they are merged.
    closed = mesh.copy()
    closed.merge_vertices(merge_tex=True, merge_norm=True)
    assert closed.is_watertight
    assert len(mesh.faces) == result.metadata["faces"] <= 3000
    assert result.metadata["parameters"]["generator"] == "local"
    assert result.metadata["parameters"]["face_limit"] == 3000
    assert {f.format for f in result.files} >= {"glb", "stl"}
    assert result.preview_png[:8] == b"\x89PNG\r\n\x1a\n"

    for fmt in ("stl", "ply", "obj", "glb"):
        saved = result.save(tmp_path / f"model.{fmt}")
        loaded = trimesh.load(saved, force="mesh")
        assert len(loaded.faces) == len(mesh.faces), fmt
    assert result.save(tmp_path / "as_ply", format="ply").read_bytes()[:3] == b"ply"


def test_static_display_carries_preview_stats_and_download(stack) -> None:
    result = generate(photo(), server_url=stack.url, generator="local", face_limit=2000, progress=False)

    bundle = result._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle  # no kernel here: the static fallback
    assert base64.b64decode(bundle["image/png"]) == result.preview_png
    page = bundle["text/html"]
    assert "data:image/png;base64," in page
    assert "data:model/gltf-binary;base64," in page
    assert f"<td>{result.metadata['faces']}</td>" in page
    assert "faces=" in bundle["text/plain"]


def test_generate_accepts_numpy_arrays_and_pil_images(stack) -> None:
    array = np.asarray(Image.open(io.BytesIO(photo())))
    from_array = generate(array, server_url=stack.url, progress=False)
    from_float = generate(array / 255.0, server_url=stack.url, progress=False)
    from_pil = generate(Image.open(io.BytesIO(photo())), server_url=stack.url, progress=False)

    for result in (from_array, from_float, from_pil):
        assert result.ok, result.error
        assert result.metadata["parameters"]["generator"] == "instant"


def test_a_failed_job_returns_a_failed_result_instead_of_raising(stack) -> None:
    result = generate(photo(), server_url=stack.url, fail=True, progress=False)

    assert not result.ok
    assert result.status == "failed"
    assert result.error
    with pytest.raises(ValueError):
        _ = result.mesh
    assert "error=" in repr(result)


def test_generate_many_reports_failures_per_item(stack, tmp_path: Path) -> None:
    for i, color in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
        (tmp_path / f"p{i}.jpg").write_bytes(photo(color=color))
    (tmp_path / "zz_broken.png").write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")

    batch = generate_many(
        tmp_path, server_url=stack.url, max_concurrency=2, generator="local", face_limit=1500
    )

    assert isinstance(batch, Batch)
    assert [r.source for r in batch] == ["p0.jpg", "p1.jpg", "p2.jpg", "zz_broken.png"]
    assert [r.ok for r in batch] == [True, True, True, False]
    assert batch.failures == [batch[3]]
    assert "image" in (batch[3].error or "").lower()
    assert all(r.metadata["faces"] <= 1500 for r in batch[:3])
    stats = batch.stats()
    assert stats[0]["watertight"] is True and stats[3]["status"] == "failed"
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            batch.to_dataframe()
    else:
        frame = batch.to_dataframe()
        assert list(frame["source"]) == ["p0.jpg", "p1.jpg", "p2.jpg", "zz_broken.png"]
