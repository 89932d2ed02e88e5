"""image2model in Jupyter: `generate()`, `generate_many()`, the `Studio` widget and the `GLBViewer`.

    from image2model.notebook_ext import generate
    result = generate("chair.jpg", generator="local")   # progress bar, then the 3D viewer
    result.save("chair.stl")
    result.export("stl", height_mm=80, up="z")           # made by the server from the kept mesh
    jobs()                                              # your jobs as a DataFrame; Job.get(id) reopens one

A thin client of the HTTP API (`image2model.core.client`); the widgets need the `notebook` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Batch, Result, generate, generate_many
    from .history import Job, jobs
    from .viewer import GLBViewer
    from .widgets import Studio

__all__ = ["Batch", "GLBViewer", "Job", "Result", "Studio", "generate", "generate_many", "jobs"]

_WHERE = {
    "Batch": ".api",
    "Result": ".api",
    "generate": ".api",
    "generate_many": ".api",
    "Job": ".history",
    "jobs": ".history",
    "GLBViewer": ".viewer",
    "Studio": ".widgets",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
