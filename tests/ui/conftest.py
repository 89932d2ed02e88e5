"""The web UI in-process against a live test API (the `stack` fixture's API and worker)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from image2model.core.settings import Settings  # noqa: E402
from tests.support.stack import Stack, free_port  # noqa: E402


@dataclass
class UI:
    url: str
    demo: object
    root: Path


@pytest.fixture(scope="module")
def ui(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    from image2model.ui_gradio.app import build_app, close_app, launch_options

    root = tmp_path_factory.mktemp("ui")
    demo = build_app(Settings(server_url=stack.url, api_key=""), files_root=root)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_options())
    try:
        yield UI(f"http://127.0.0.1:{port}/", demo, root)
    finally:
        close_app(demo)
