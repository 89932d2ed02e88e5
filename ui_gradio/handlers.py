"""The web UI's work, free of Gradio: submit photos (or the views of one object) to the job API, or reopen a job
made earlier, watch it (`AsyncClient.watch`), download each result into a per-session directory as soon as it is
made. Everything goes through `image2model.core.client` over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from image2model.core.client import AsyncClient, FileView, JobView
from image2model.core.errors import Image2ModelError
from image2model.core.models import FileEntry, ModelsAvailable

log = logging.getLogger("image2model.ui")

_SESSION_RE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class ItemResult:
    """One item's outputs (a photo's, or a multi-view object's), downloaded for this session."""

    index: int
    source_filename: str
    job_id: str = ""
    file_id: str = ""
    model: Path | None = None  # the GLB shown in the viewer
    previews: dict[str, Path] = field(default_factory=dict)  # every preview downloaded, by kind
    listed: tuple[str, ...] = ()  # the outputs its downloads were listed for (`FileView.listed`)
    downloads: dict[str, Path] = field(default_factory=dict)  # format -> file
    sizes: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def preview(self) -> Path | None:
        """The still render (PNG), used in the gallery."""
        return self.previews.get("png")

    @property
    def turntable(self) -> Path | None:
        """The animated WebP (or GIF)."""
        return self.previews.get("webp") or self.previews.get("gif")


@dataclass
class Update:
    """What `JobRunner.run` and `JobRunner.open` yield: `kind` is submitted, progress, item (an item's model is
    ready), previews (the item completed: its previews and figures are ready), downloads (its other formats are
    ready) or done; `view` is the job as it stands."""

    kind: str
    view: JobView
    item: ItemResult | None = None

    @property
    def job_id(self) -> str:
        return self.view.job_id


class SessionFiles:
    """Per-session download directories under one root; a session's files go when it ends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, session: str, job_id: str) -> Path:
        d = self.root / self._safe(session) / self._safe(job_id)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def drop(self, session: str) -> None:
        shutil.rmtree(self.root / self._safe(session), ignore_errors=True)

    def drop_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _safe(name: str) -> str:
        return _SESSION_RE.sub("_", name)[:80] or "anonymous"


class JobRunner:
    """Runs jobs for UI sessions and remembers which job each session has in flight (to cancel it when
    the session ends). The API key stays here, on the server side; nothing it returns contains it."""

    def __init__(self, server_url: str, api_key: str, files: SessionFiles) -> None:
        self.server_url = server_url
        self._api_key = api_key
        self.files = files
        self.active: dict[str, str] = {}

    def client(self) -> AsyncClient:
        return AsyncClient(self.server_url, self._api_key)

    async def models(self) -> ModelsAvailable:
        async with self.client() as client:
            return await client.models()

    async def cancel(self, job_id: str) -> str:
        """Cancel a job; returns the status it ended in."""
        async with self.client() as client:
            snapshot = await client.cancel(job_id)
        return snapshot.status.value

    async def end_session(self, session: str) -> None:
        """Cancel the session's running job (its results would be unreachable) and delete its files."""
        job_id = self.active.pop(session, None)
        if job_id:
            with contextlib.suppress(Image2ModelError, OSError):
                await self.cancel(job_id)
        self.files.drop(session)

    async def run(
        self,
        images: Sequence[str | Path],
        *,
        session: str,
        generator: str | None,
        formats: Sequence[str],
        face_limit: int | None,
        options: dict[str, Any],
        multiview: bool = False,
    ) -> AsyncIterator[Update]:
        """Submit `images` as one job (with `multiview`, as the views of one object, in the contract's order) and
        yield updates until it ends. API errors raise the client's typed exceptions (`Image2ModelError`); the
        caller turns them into messages."""
        async with self.client() as client:
            upload = await client.submit(
                list(images),
                generator=generator or None,
                formats=list(formats) or None,
                face_limit=face_limit,
                multiview=True if multiview else None,
                **options,
            )
            async for update in self._follow(client, JobView.from_upload(upload), session, own=True):
                yield update

    async def open(self, job_id: str, *, session: str) -> AsyncIterator[Update]:
        """Reopen a job made earlier (by any client): its history is replayed into a `JobView`, its results are
        downloaded, and a job still running is followed to its end. `JobNotFound` for an unknown job."""
        async with self.client() as client:
            async for update in self._follow(client, JobView(job_id), session, own=False):
                yield update

    async def _follow(
        self, client: AsyncClient, start: JobView, session: str, *, own: bool
    ) -> AsyncIterator[Update]:
        """Updates of the job until it ends. `own`: the session submitted it, so it is cancelled if the session
        ends first (a job reopened from My models or a link may belong to another client: it is left alone)."""
        job_id = start.job_id
        if own:
            self.active[session] = job_id
        try:
            view = start
            yield Update("submitted", view)
            out_dir = self.files.job_dir(session, job_id)
            items: dict[int, ItemResult] = {}
            async for view in client.watch(job_id, start):
                changed = False
                for file in view.files:
                    if not file.entries:
                        continue
                    item = items.get(file.index)
                    if item is None:
                        log.debug("generate job=%s phase=model_listed", job_id)
                        item = items[file.index] = await self._fetch_model(client, job_id, file, out_dir)
                        yield Update("item", view, item)
                        changed = True
                    elif file.listed != item.listed:  # the item completed since its model was listed
                        await self._fetch_previews(client, file, item, out_dir / str(file.index))
                        yield Update("previews", view, item)
                        changed = True
                if not changed and not view.finished:
                    yield Update("progress", view)
            # The other formats after the stream ended, so the first model shows as early as possible.
            for item in sorted(items.values(), key=lambda i: i.index):
                await self._fetch_downloads(client, view.files[item.index], item, out_dir)
                yield Update("downloads", view, item)
            yield Update("done", view)
        finally:
            if self.active.get(session) == job_id:
                del self.active[session]

    async def _fetch_model(
        self, client: AsyncClient, job_id: str, file: FileView, out_dir: Path
    ) -> ItemResult:
        """Download the item's GLB (what the page shows first) and the previews listed with it."""
        item = ItemResult(file.index, file.filename, job_id, file.file_id)
        item_dir = out_dir / str(file.index)
        glb = next((e for e in generated(file.entries) if e.format == "glb"), None)
        previews = self._fetch_previews(client, file, item, item_dir)
        if glb is None:
            await previews
        else:
            _, item.model = await asyncio.gather(previews, client.download(glb, dest_dir=item_dir))
            item.downloads["glb"] = item.model
        return item

    async def _fetch_previews(
        self, client: AsyncClient, file: FileView, item: ItemResult, item_dir: Path
    ) -> None:
        """Bring `item` up to the file's listing: its figures and sizes, and the previews not downloaded yet."""
        made = generated(file.entries)
        item.listed = file.listed
        item.metadata = dict(made[0].metadata)
        item.sizes = {e.format: e.size for e in made}
        kinds = [kind for kind in file.previews if kind not in item.previews]
        paths = await asyncio.gather(
            *(client.download_preview(made[0], kind, item_dir / "previews") for kind in kinds)
        )
        item.previews.update(zip(kinds, paths, strict=True))

    async def _fetch_downloads(
        self, client: AsyncClient, file: FileView, item: ItemResult, out_dir: Path
    ) -> None:
        entries = [e for e in generated(file.entries) if e.format not in item.downloads]
        paths = await asyncio.gather(
            *(client.download(e, dest_dir=out_dir / str(item.index)) for e in entries)
        )
        for entry, p in zip(entries, paths, strict=True):
            item.downloads[entry.format] = p


def generated(entries: Sequence[FileEntry]) -> list[FileEntry]:
    """The entries the job itself made, without the exports made from them later (`metadata.export`); all of
    them if every one is an export."""
    made = [e for e in entries if "export" not in e.metadata]
    return made or list(entries)
