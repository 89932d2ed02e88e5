"""Following a job as `JobView`s, and fetching previews: the part of `Client` and `AsyncClient` that every
front-end uses to show a job. Mixed into both clients; it speaks to the server only through their methods."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from image2model.core.models import Event, FileEntry, FileListing, ItemStatus

from .jobview import JobView, preview_urls, url_filename

Dest = str | os.PathLike[str] | None


def _needs_entries(view: JobView) -> bool:
    """Whether a file has outputs its entries were not listed for (its model was just listed, or it completed),
    or completed with no entries."""
    return any(
        f.outputs != f.listed or (f.status == ItemStatus.COMPLETED and not f.entries and not f.listed)
        for f in view.files
    )


def preview_entry(entry: FileEntry, kind: str) -> FileEntry:
    """The preview of `kind` (png, gif, webp) of a model, as a downloadable entry of its own."""
    urls = preview_urls(entry)
    url = urls.get(kind)
    if not url:
        raise KeyError(
            f"{entry.filename} has no {kind} preview (it has: {', '.join(sorted(urls)) or 'none'})"
        )
    return entry.model_copy(update={"download_url": url, "filename": url_filename(url), "format": kind})


class SyncJobViews:
    """`watch()` and `download_preview()` of `Client`."""

    # Client's own methods, as this mixin calls them.
    events: Callable[..., Iterator[Event]]
    files: Callable[[str], FileListing]
    download: Callable[..., Path]

    def watch(
        self, job_id: str, view: JobView | None = None, *, timeout: float | None = None
    ) -> Iterator[JobView]:
        """The job as it changes, one `JobView` per change, ending with its terminal state.

        Starts from `view` (e.g. `JobView.from_upload(upload)`, or one a previous `watch` yielded: it resumes
        after `view.last_event_id`) or from nothing, replaying the job's history. Queue positions come too. When
        a file's model is listed (before the file completes: the model first) and again when it completes, its
        listing entries (download URLs, previews, metadata) are attached before the view is yielded. `timeout`
        bounds the whole watch (`TimeoutError`)."""
        view = view or JobView(job_id)
        if view.finished:
            return
        for event in self.events(job_id, view.last_event_id, timeout=timeout, queue_positions=True):
            changed = view.apply(event)
            if changed is view:
                continue
            if _needs_entries(changed):
                changed = changed.with_entries(self.files(job_id).files)
            view = changed
            yield view

    def download_preview(self, entry: FileEntry, kind: str = "png", dest_dir: Dest = None) -> Path:
        """Download the `kind` preview (png still, gif or webp turntable) of a model into `dest_dir`."""
        return self.download(preview_entry(entry, kind), dest_dir=dest_dir)


class AsyncJobViews:
    """`watch()` and `download_preview()` of `AsyncClient`."""

    # AsyncClient's own methods, as this mixin calls them.
    events: Callable[..., AsyncIterator[Event]]
    files: Callable[[str], Awaitable[FileListing]]
    download: Callable[..., Awaitable[Path]]

    async def watch(
        self, job_id: str, view: JobView | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[JobView]:
        """The job as it changes, one `JobView` per change; see `Client.watch`."""
        view = view or JobView(job_id)
        if view.finished:
            return
        async for event in self.events(job_id, view.last_event_id, timeout=timeout, queue_positions=True):
            changed = view.apply(event)
            if changed is view:
                continue
            if _needs_entries(changed):
                changed = changed.with_entries((await self.files(job_id)).files)
            view = changed
            yield view

    async def download_preview(self, entry: FileEntry, kind: str = "png", dest_dir: Dest = None) -> Path:
        """Download the `kind` preview (png still, gif or webp turntable) of a model into `dest_dir`."""
        return await self.download(preview_entry(entry, kind), dest_dir=dest_dir)
