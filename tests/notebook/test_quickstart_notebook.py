"""The example notebook executed by nbclient in a real kernel against a live API, widget state stored."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.support.stack import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOTEBOOK = REPO / "notebook_ext" / "examples" / "quickstart.ipynb"


def test_quickstart_runs_reaches_100_and_hands_the_viewer_the_model(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE2MODEL_SERVER_URL", stack.url)  # the kernel inherits the environment
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    nb = nbformat.read(NOTEBOOK, as_version=4)

    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=180,
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert (tmp_path / "chair.stl").stat().st_size > 10_000  # result.save() ran in the notebook's folder

    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    models = dict(state)
    bars = [m["state"] for m in models.values() if m["model_name"] == "IntProgressModel"]
    assert bars and bars[0]["value"] == 100  # generate()'s progress bar, set while the job ran

    anys = [m for m in models.values() if m["model_name"] == "AnyModel"]
    viewers = [m for m in anys if "turntable" in m["state"]]
    assert viewers, sorted({m["model_name"] for m in models.values()})
    # The viewer's GLB travels as a binary buffer; nbclient stores it base64-encoded next to the state.
    shown = [v for v in viewers if any(b["path"] == ["glb"] for b in v.get("buffers", []))]
    assert shown, [v.get("buffers") for v in viewers]
    glb = base64.b64decode(next(b for b in shown[0]["buffers"] if b["path"] == ["glb"])["data"])
    assert glb[:4] == b"glTF" and len(glb) > 10_000
    assert any(v["state"].get("turntable") is True for v in viewers)

    # The result cell's display: the viewer for widget front-ends, the PNG + stats + download elsewhere.
    result_cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.endswith("\nresult"))
    data = next(o for o in result_cell.outputs if o.output_type == "execute_result")["data"]
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "data:image/png;base64," in data["text/html"] and "image/png" in data

    batch_cell = next(c for c in nb.cells if "generate_many" in c.source and "batch =" in c.source)
    batch_out = next(o for o in batch_cell.outputs if o.output_type == "execute_result")["data"]["text/plain"]
    assert batch_out.count("True") == 4  # the four sample photos, each its own job
