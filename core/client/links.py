"""The web UI link of a job, the one every client prints (CLI `open`, the bot's replies, the notebook)."""

from __future__ import annotations

from urllib.parse import quote


def job_link(job_id: str, web_url: str | None = None) -> str:
    """`<web_url>/?job=<job_id>`: the web UI opened on that job. `web_url` defaults to IMAGE2MODEL_WEB_URL."""
    if web_url is None:
        from image2model.core.settings import Settings

        web_url = Settings().web_url
    return f"{web_url.rstrip('/')}/?job={quote(job_id, safe='')}"
