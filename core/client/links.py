"""The link to a job in the web UI: `<web UI URL>/?job=<job_id>` opens that job there. Every client that prints or
posts a job link builds it here; the web UI reads the same query parameter."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["JOB_QUERY", "web_ui_link"]

JOB_QUERY = "job"
"""The web UI's query parameter naming the job to open."""


def web_ui_link(ui_url: str, job_id: str) -> str:
    """The web UI's link to `job_id`, e.g. `http://127.0.0.1:7860/?job=3f2c...` for `ui_url` `http://127.0.0.1:7860`."""
    return f"{ui_url.rstrip('/')}/?{JOB_QUERY}={quote(job_id, safe='')}"
