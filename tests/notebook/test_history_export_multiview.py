"""`jobs()`, `Job.get`, `Result.export` and multi-view `generate` in a real kernel (nbclient), against a live API
with the io worker that drives `remote-test`, the test generator that takes up to four views."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from image2model.notebook_ext import generate
from tests.support.images import photo
from tests.support.stack import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CELLS = [
    """
import json, io, trimesh
from image2model.notebook_ext import Job, generate, jobs
views = [f"{name}.jpg" for name in ("front", "left", "back", "right")]
made = generate(views, multiview=True, generator="remote-test", seconds=0.2, progress=False)
single = generate("front.jpg", generator="local", face_limit=3000, progress=False)
print(json.dumps({"multiview": [made.ok, made.source], "single": single.ok}))
""",
    """
frame = jobs()
print(json.dumps({"columns": list(frame.columns), "ids": list(frame.job_id), "status": list(frame.status),
                  "link": frame.link[0], "one": len(jobs(1))}))
""",
    """
again = Job.get(frame.job_id[0])
path = again.result.export("stl", height_mm=80, up="z", origin="bottom", face_limit=1000)
mesh = trimesh.load(path)
low, high = mesh.bounds
print(json.dumps({"source": again.result.source, "glb": again.result.glb_bytes[:4].decode(), "path": str(path),
                  "height": float(high[2] - low[2]), "zmin": float(low[2]), "faces": len(mesh.faces),
                  "exports": [e.format for e in again.result.exports]}))
""",
    "again",
]


def test_jobs_reopen_export_and_multiview_in_a_kernel(views_stack, tmp_path: Path, monkeypatch) -> None:
    for i, name in enumerate(("front", "left", "back", "right")):
        (tmp_path / f"{name}.jpg").write_bytes(photo(color=(40 + 50 * i, 120, 200)))
    monkeypatch.setenv("IMAGE2MODEL_SERVER_URL", views_stack.url)
    monkeypatch.setenv("IMAGE2MODEL_WEB_URL", "http://ui.test:7860")
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.strip()) for c in CELLS])

    NotebookClient(
        nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    made, listed, reopened = (json.loads(nb.cells[i].outputs[0]["text"]) for i in range(3))
    assert made == {"multiview": [True, "front.jpg (+3 views)"], "single": True}
    submitted = [
        json.loads(p.read_text()) for p in (views_stack.data_dir / "fake-remote" / "submitted").iterdir()
    ]
    assert [s["views"] for s in submitted] == [4]  # one item holding the four views

    assert listed["columns"] == [
        "job_id",
        "status",
        "created",
        "files",
        "generator",
        "face_limit",
        "preview_url",
        "link",
    ]
    assert listed["status"] == ["completed", "completed"] and listed["one"] == 1
    assert listed["link"] == f"http://ui.test:7860/?job={listed['ids'][0]}"  # newest first: the single photo

    assert reopened["source"] == "front.jpg" and reopened["glb"] == "glTF"
    assert (tmp_path / reopened["path"]).is_file() and reopened["path"].endswith(
        ".stl"
    )  # in the notebook's folder
    assert abs(reopened["height"] - 80.0) < 0.5 and abs(reopened["zmin"]) < 1e-3
    assert reopened["faces"] <= 1000 and reopened["exports"] == ["stl"]
    shown = nb.cells[3].outputs[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in shown and "image/png" in shown


def test_generate_refuses_a_list_without_multiview_and_a_wrong_number_of_views(stack) -> None:
    with pytest.raises(TypeError, match="multiview=True for 2 to 4 views"):
        generate([photo(), photo()], server_url=stack.url)
    with pytest.raises(ValueError, match="takes 2 to 4 views of one object .* got 5"):
        generate([photo()] * 5, server_url=stack.url, multiview=True)
    assert stack.stored_jobs() == 0


def test_a_generator_without_multiview_refuses_the_views_with_its_reason(stack) -> None:
    from image2model.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="does not take several views") as refused:
        generate(
            [photo(), photo()], server_url=stack.url, multiview=True, generator="instant", progress=False
        )
    assert refused.value.details["errors"][0]["field"] == "multiview"
