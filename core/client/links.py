"""The link to a job in the web UI: `<web UI URL>/?job=<job_id>` opens that job there. Every client that prints or
posts a job link (CLI `open`, the bot's replies, the notebook) builds it here; the web UI reads the same query
parameter."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["JOB_QUERY", "job_link", "job_query"]

JOB_QUERY = "job"
"""The web UI's query parameter naming the job to open."""


def job_query(job_id: str) -> str:
    """The query part of a job's link, `?job=<quoted job_id>` (a link relative to the web UI's own page)."""
    return f"?{JOB_QUERY}={quote(job_id, safe='')}"


def job_link(job_id: str, web_url: str | None = None) -> str:
    """`<web_url>/?job=<job_id>`: the web UI opened on that job, e.g. `http://127.0.0.1:7860/?job=3f2c...`.
    `web_url` defaults to IMAGE2MODEL_WEB_URL."""
    if web_url is None:
        from image2model.core.settings import Settings

        web_url = Settings().web_url
    return f"{web_url.rstrip('/')}/{job_query(job_id)}"
