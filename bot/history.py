"""`/models`: the requester's recent models (the bot's records of who asked, matched against `GET /jobs`), each
with its preview; a menu opens one of them as a result card with its downloads and the export menu."""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from image2model.core.client.jobview import preview_urls, url_filename
from image2model.core.client.links import job_link
from image2model.core.errors import Image2ModelError
from image2model.core.models import FileEntry, JobStatus, JobSummary

from .messages import JOB_ID_PATTERN, PICK_TEMPLATE, error_text, pick_custom_id, pick_preview, picked
from .records import JobRecord
from .runner import result_embed
from .views import result_view

if TYPE_CHECKING:
    from .bot import ModelBot

log = logging.getLogger("image2model.bot")

MODELS_SHOWN = 10  # Discord's most embeds in one message
JOB_PAGES = 10
"""Pages of 100 of the bot's jobs searched for the requester's (the bot's key holds every user's jobs)."""
_STATUS_ICON = {
    JobStatus.COMPLETED: "✅",
    JobStatus.FAILED: "❌",
    JobStatus.CANCELLED: "🛑",
    JobStatus.QUEUED: "⏳",
    JobStatus.PROCESSING: "⚙️",
}


async def recent_models(bot: ModelBot, owner_id: int) -> list[tuple[JobRecord, JobSummary]]:
    """The user's recent jobs that the service still keeps, newest first: their records and summaries."""
    records = bot.records.owned_by(owner_id, MODELS_SHOWN)
    wanted = {r.job_id for r in records}
    found: dict[str, JobSummary] = {}
    cursor: str | None = None
    for _ in range(JOB_PAGES):
        if not wanted - set(found):
            break
        page = await bot.api.jobs(100, cursor=cursor)
        found.update((job.job_id, job) for job in page.jobs if job.job_id in wanted)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return [(r, found[r.job_id]) for r in records if r.job_id in found]


def model_embed(record: JobRecord, job: JobSummary, thumbnail: str | None, web_url: str) -> discord.Embed:
    """One line of `/models`: the photos, how the job ended, when, and the link to it in the web UI."""
    names = ", ".join(record.sources or record.image_names) or "photo"
    kind = " (one object, several views)" if record.multiview else ""
    embed = discord.Embed(
        title=f"{_STATUS_ICON.get(job.status, '')} {names}"[:256],
        description=f"{job.status.value}{kind} · {job.generator}"
        + (f" · face limit {job.face_limit:,}" if job.face_limit else "")
        + f" · {discord.utils.format_dt(datetime.datetime.fromtimestamp(job.created_at, datetime.UTC), 'R')}",
        url=job_link(job.job_id, web_url),
        colour=0x2B8A3E if job.status == JobStatus.COMPLETED else 0x868E96,
    )
    if thumbnail:
        embed.set_thumbnail(url=f"attachment://{thumbnail}")
    embed.set_footer(text=f"job {job.job_id}")
    return embed


async def show_models(interaction: discord.Interaction[ModelBot]) -> None:
    """Answer `/models` (privately): the requester's recent models with their previews, and a menu to open one."""
    bot = interaction.client
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        models = await recent_models(bot, interaction.user.id)
    except Image2ModelError as exc:
        await interaction.followup.send(error_text(exc.error_code, exc.message), ephemeral=True)
        return
    if not models:
        await interaction.followup.send(
            "You have no models I still know of; make one with `/model`.", ephemeral=True
        )
        return
    with tempfile.TemporaryDirectory(prefix="i2m-models-") as tmp:
        embeds, files = [], []
        for n, (record, job) in enumerate(models, start=1):
            thumbnail = None
            if job.preview_url:
                with contextlib.suppress(Image2ModelError, ValueError):
                    path = await bot.api.download(
                        job.job_id, url_filename(job.preview_url), Path(tmp) / str(n)
                    )
                    thumbnail = f"preview{n}{path.suffix}"
                    files.append(discord.File(path, filename=thumbnail))
            embeds.append(model_embed(record, job, thumbnail, bot.settings.web_url))
        view = discord.ui.View(timeout=None)
        choices = [
            (f"{', '.join(r.sources or r.image_names) or 'photo'}", j.job_id)
            for r, j in models
            if j.status == JobStatus.COMPLETED
        ]
        if choices:
            view.add_item(PickSelect(interaction.user.id, choices))
        await interaction.followup.send(
            f"Your {len(models)} most recent model request(s):",
            embeds=embeds,
            files=files,
            view=view,
            ephemeral=True,
        )


def _shown_entry(files: list[FileEntry], fmt: str) -> FileEntry | None:
    """The model file a card shows: the generated one in the requested format (not an export), else any model."""
    made = [f for f in files if not f.metadata.get("export")]
    return next((f for f in made if f.format == fmt), None) or next(iter(made), None)


class PickSelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=PICK_TEMPLATE):
    """`/models`' menu: open one model as its result card (preview, figures, downloads, export menu)."""

    def __init__(self, owner_id: int, choices: list[tuple[str, str]] | None = None) -> None:
        self.owner_id = owner_id
        super().__init__(
            discord.ui.Select(
                placeholder="Open one of these models…",
                custom_id=pick_custom_id(owner_id),
                options=[
                    discord.SelectOption(label=label[:100], value=job_id, description=f"job {job_id}"[:100])
                    for label, job_id in (choices or [])[:25]
                ],
                min_values=1,
                max_values=1,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> PickSelect:
        return cls(int(match["owner"]))

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message("This list is someone else's; run `/models`.", ephemeral=True)
        return False

    async def callback(self, interaction: discord.Interaction[ModelBot]) -> None:  # type: ignore[override]
        job_id = picked(interaction.data)
        bot = interaction.client
        record = bot.records.load(job_id) if re.fullmatch(JOB_ID_PATTERN, job_id) else None
        if record is None or record.owner_id != self.owner_id:
            await interaction.response.send_message("Pick one of your models from the list.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            listing = await bot.api.files(job_id)
            entry = _shown_entry(listing.files, record.format)
            if entry is None:
                await interaction.followup.send("This job has no model files.", ephemeral=True)
                return
            with tempfile.TemporaryDirectory(prefix="i2m-card-") as tmp:
                kind = pick_preview(preview_urls(entry))
                shown, files = None, []
                if kind is not None:
                    with contextlib.suppress(Image2ModelError):
                        path = await bot.api.download_preview(entry, kind, tmp)
                        shown = f"turntable.{kind}"
                        files.append(discord.File(path, filename=shown))
                await interaction.followup.send(
                    embed=result_embed(job_id, entry, None, shown, bot.settings.web_url),
                    files=files,
                    view=result_view(
                        job_id,
                        self.owner_id,
                        entry.download_url,
                        await bot.runner.face_limit_choices(job_id),
                        job_link(job_id, bot.settings.web_url),
                    ),
                    ephemeral=True,
                )
        except Image2ModelError as exc:
            await interaction.followup.send(error_text(exc.error_code, exc.message), ephemeral=True)
