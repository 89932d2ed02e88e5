"""Your jobs in a notebook: `jobs()` (a pandas DataFrame of the key's jobs, newest first) and `Job.get(id)`, which
reopens any job, whichever client made it, as `Result`s to view, save and export."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from image2model.core.client import Client, JobView
from image2model.core.client.links import job_link
from image2model.core.models import FileEntry, JobSnapshot, JobStatus

from .api import Result, load_model

COLUMNS = ("job_id", "status", "created", "files", "generator", "face_limit", "preview_url", "link")


def jobs(
    limit: int | None = 100,
    *,
    status: JobStatus | str | None = None,
    server_url: str | None = None,
    api_key: str | None = None,
) -> Any:
    """This key's jobs, newest first, as a pandas DataFrame (one row per job: id, status, when it was created,
    how many files, generator, face limit, preview and web UI link). `limit=None` fetches them all;
    `status` keeps only jobs in that state. Open one with `Job.get(frame.job_id[0])`."""
    import pandas as pd

    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1 (or None for every job)")
    rows = []
    with Client(server_url, api_key) as client:
        for job in client.iter_jobs(status, page_size=min(limit or 100, 100)):
            rows.append(
                {
                    "job_id": job.job_id,
                    "status": job.status.value,
                    "created": datetime.datetime.fromtimestamp(job.created_at, datetime.UTC),
                    "files": job.total_files,
                    "generator": job.generator,
                    "face_limit": job.face_limit,
                    "preview_url": job.preview_url,
                    "link": job_link(job.job_id),
                }
            )
            if limit is not None and len(rows) >= limit:
                break
    return pd.DataFrame(rows, columns=list(COLUMNS))


@dataclass
class Job:
    """A job reopened by id: its snapshot and one `Result` per model it made (`results`, `result` the first).
    Displays as its first model."""

    job_id: str
    snapshot: JobSnapshot
    results: list[Result] = field(default_factory=list)

    @classmethod
    def get(
        cls,
        job_id: str,
        *,
        server_url: str | None = None,
        api_key: str | None = None,
        wait: bool = True,
        timeout: float | None = 600.0,
    ) -> Job:
        """Reopen a job (made by the CLI, the bot, the web UI or another notebook) by its id. A job still running
        is followed to its end first unless `wait=False`. Raises `JobNotFound` for an unknown id (or another
        key's job)."""
        with Client(server_url, api_key) as client:
            snapshot = client.status(job_id)
            if wait and not snapshot.status.terminal:
                for _ in client.watch(job_id, JobView(job_id), timeout=timeout):
                    pass
                snapshot = client.status(job_id)
            job = cls(job_id, snapshot)
            if snapshot.status == JobStatus.COMPLETED:
                job.results = _results(client, snapshot, api_key)
        return job

    @property
    def status(self) -> str:
        return self.snapshot.status.value

    @property
    def result(self) -> Result:
        """The job's first model."""
        if not self.results:
            raise ValueError(f"job {self.job_id} has no model ({self.snapshot.error or self.status})")
        return self.results[0]

    @property
    def link(self) -> str:
        """The job in the web UI (`IMAGE2MODEL_WEB_URL/?job=<id>`)."""
        return job_link(self.job_id)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if self.results:
            return self.results[0]._repr_mimebundle_(include, exclude)
        return {"text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"Job(job_id={self.job_id!r}, status={self.status!r}, models={len(self.results)})"


def _results(client: Client, snapshot: JobSnapshot, api_key: str | None) -> list[Result]:
    """One Result per generated model of a finished job (exports made later are not models of their own)."""
    by_item: dict[str, list[FileEntry]] = {}
    for entry in client.files(snapshot.job_id).files:
        if not entry.metadata.get("export"):
            by_item.setdefault(entry.file_id, []).append(entry)
    results = []
    for entries in by_item.values():
        result = Result(
            job_id=snapshot.job_id,
            source=entries[0].source_filename,
            status="completed",
            server_url=client.server_url,
            api_key=api_key,
        )
        recipe = entries[0].metadata.get("recipe")
        parameters = dict(recipe.get("options") or {}) if isinstance(recipe, dict) else {}
        results.append(load_model(client, result, entries, parameters))
    return results
