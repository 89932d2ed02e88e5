"""The "My models" tab's work, free of Gradio: pages of the caller's jobs (`GET /jobs`, newest first) with a
small thumbnail of each, made once per job from its preview and kept for every session of this UI process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from image2model.core.client import AsyncClient
from image2model.core.client.jobview import url_filename
from image2model.core.errors import Image2ModelError
from image2model.core.models import JobSummary

log = logging.getLogger("image2model.ui")

PAGE_SIZE = 50
"""Jobs per page ("More" fetches the next)."""
THUMB_SIZE = 192
"""Longest side of a thumbnail, in pixels (the previews are 512 px PNGs; a page of those is megabytes)."""
FETCHES = 8
"""Preview downloads at once."""


@dataclass
class HistoryPage:
    """The jobs shown so far and where the next page starts (None: there is none)."""

    jobs: list[JobSummary] = field(default_factory=list)
    thumbs: list[Path] = field(default_factory=list)
    next_cursor: str | None = None


def caption(job: JobSummary, now: float | None = None) -> str:
    """A job's line under its thumbnail: when it was made (the time alone today) and how many photos when more
    than one. Its state is on the thumbnail itself when it has no model to show."""
    stamp = time.localtime(job.created_at)
    today = time.localtime(now if now is not None else time.time())
    if stamp[:3] == today[:3]:
        text = time.strftime("%H:%M", stamp)
    else:
        text = time.strftime("%d %b %H:%M" if stamp.tm_year == today.tm_year else "%d %b %Y", stamp)
    return text + (f" · {job.total_files} photos" if job.total_files > 1 else "")


class Thumbnails:
    """Thumbnails of jobs under `root`: a job's preview shrunk to `THUMB_SIZE` (JPEG), or a card naming its state
    when it has no preview (failed, cancelled, still running)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._gate = asyncio.Semaphore(FETCHES)

    async def page(self, client: AsyncClient, shown: HistoryPage, cursor: str | None = None) -> HistoryPage:
        """`shown` with the page of jobs at `cursor` (the first page when None) appended, thumbnails made."""
        page = await client.jobs(PAGE_SIZE, cursor=cursor)
        thumbs = await asyncio.gather(*(self.thumbnail(client, job) for job in page.jobs))
        return HistoryPage(shown.jobs + page.jobs, shown.thumbs + list(thumbs), page.next_cursor)

    async def thumbnail(self, client: AsyncClient, job: JobSummary) -> Path:
        """The job's thumbnail, made on first use."""
        if not job.preview_url:
            return self.card("running" if not job.status.terminal else job.status.value)
        target = self.root / f"{job.job_id}.jpg"
        if target.exists():
            return target
        async with self._gate:
            tmp = self.root / "downloads" / job.job_id
            try:
                preview = await client.download(job.job_id, url_filename(job.preview_url), dest_dir=tmp)
                await asyncio.to_thread(_shrink, preview, target)
            except (Image2ModelError, OSError) as exc:
                log.warning("thumbnail job=%s failed: %s", job.job_id, exc)
                return self.card("no preview")
            finally:
                with contextlib.suppress(OSError):
                    for p in tmp.iterdir():
                        p.unlink()
                    tmp.rmdir()
        return target

    def card(self, text: str) -> Path:
        """A plain card with `text` on it, for jobs without a preview."""
        path = self.root / f"_{text.replace(' ', '-')}.png"
        if not path.exists():
            image = Image.new("RGB", (THUMB_SIZE, THUMB_SIZE), (226, 229, 235))
            draw = ImageDraw.Draw(image)
            box = draw.textbbox((0, 0), text, font_size=22)
            w, h = box[2] - box[0], box[3] - box[1]
            draw.text(((THUMB_SIZE - w) / 2, (THUMB_SIZE - h) / 2), text, fill=(90, 96, 110), font_size=22)
            image.save(path)
        return path


def _shrink(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image.draft("RGB", (THUMB_SIZE, THUMB_SIZE))
        small = image.convert("RGB")
        small.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    part = target.with_suffix(".part")
    small.save(part, format="JPEG", quality=85)
    part.replace(target)
