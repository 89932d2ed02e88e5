"""The Python client of the image2model HTTP API: `Client` (sync), `AsyncClient` (asyncio) and `JobResult`.

    from image2model.core.client import Client

    with Client() as client:  # IMAGE2MODEL_SERVER_URL / IMAGE2MODEL_API_KEY, or pass them
        result = client.generate(["chair.jpg"], dest_dir="out", face_limit=20_000)

        job = client.submit(["mug.jpg"])
        for view in client.watch(job.job_id):  # a JobView per change: status, progress, stage, files
            print(view.status, view.progress, view.stage)

Names are imported on first use, so `image2model.core.client.cli` starts without loading httpx or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._async import AsyncClient
    from ._base import JobResult, ReconnectPolicy
    from ._sse import ServerSentEvent, SSEDecoder
    from ._sync import Client
    from .jobview import FileView, JobView
    from .links import job_link

__all__ = [
    "AsyncClient",
    "Client",
    "FileView",
    "JobResult",
    "JobView",
    "ReconnectPolicy",
    "SSEDecoder",
    "ServerSentEvent",
    "job_link",
]

_WHERE = {
    "Client": "._sync",
    "AsyncClient": "._async",
    "JobResult": "._base",
    "ReconnectPolicy": "._base",
    "SSEDecoder": "._sse",
    "ServerSentEvent": "._sse",
    "JobView": ".jobview",
    "FileView": ".jobview",
    "job_link": ".links",
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
