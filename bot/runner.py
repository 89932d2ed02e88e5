"""The bot's job runner, shared by `/model` and the 'run again' menu: check the user's limits, defer, submit,
watch the job with throttled edits of the reply, then post the result (or say why not). Commands and components
reach it as `interaction.client.runner`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from image2model.core.client import JobView
from image2model.core.client.links import job_link
from image2model.core.errors import Image2ModelError
from image2model.core.models import FileEntry, JobStatus

from .messages import (
    UPLOAD_MARGIN,
    EditThrottle,
    choose_delivery,
    error_text,
    face_limit_presets,
    fit_count,
    pick_preview,
    progress_text,
    stats_fields,
)
from .records import JobRecord
from .views import progress_view, result_view

if TYPE_CHECKING:
    from .bot import ModelBot

log = logging.getLogger("image2model.bot")

# Stop editing the original response this long before its token expires; the result then goes to the channel.
TOKEN_MARGIN = datetime.timedelta(seconds=30)
ImageLoader = Callable[[], Awaitable[list[tuple[str, bytes]]]]


async def say_privately(interaction: discord.Interaction[Any], text: str) -> None:
    """An ephemeral message, whether or not the interaction was answered already. A public 'thinking…'
    placeholder is removed first, so only the requester sees the problem."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
            return
        if not interaction.is_expired():
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell user=%s about a problem", interaction.user.id)


def _token_alive(interaction: discord.Interaction[Any]) -> bool:
    return discord.utils.utcnow() < interaction.expires_at - TOKEN_MARGIN


class JobRunner:
    """Runs the bot's jobs from request to result, under each user's limits."""

    def __init__(self, bot: ModelBot) -> None:
        self.bot = bot
        self.deleted: set[str] = set()
        """Jobs whose message the requester deleted: their result is not posted."""

    async def run(
        self,
        interaction: discord.Interaction[ModelBot],
        load_images: ImageLoader,
        face_limit: int | None,
        fmt: str,
        generator: str | None,
        multiview: bool = False,
    ) -> None:
        """One job from request to result: refused, or deferred, submitted, watched and delivered. With
        `multiview`, the photos are views of one object (front, left, back, right) and make one model; else each
        photo makes its own."""
        bot = self.bot
        user_id = interaction.user.id
        refusal = bot.limits.refusal(user_id, time.monotonic())
        if refusal:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        previous_start = bot.limits.start(user_id, time.monotonic())
        try:
            await interaction.response.defer(thinking=True)
            try:
                images = await load_images()
                info = await bot.generator(generator)
                if info is None:
                    names = ", ".join(m.name for m in (await bot.models()).models)
                    await say_privately(
                        interaction, f"There is no generator `{generator}`; try one of: {names}."
                    )
                    bot.limits.forget_start(user_id, previous_start)
                    return
                formats = [fmt] + [f for f in info.supported_formats if f != fmt]
                upload = await bot.api.submit(
                    [data for _, data in images],
                    face_limit=face_limit,
                    generator=info.name,
                    formats=formats,
                    multiview=True if multiview else None,
                )
            except Image2ModelError as exc:
                log.info("request refused user=%s code=%s", user_id, exc.error_code)
                await say_privately(interaction, error_text(exc.error_code, exc.message))
                bot.limits.forget_start(user_id, previous_start)
                return
            except discord.HTTPException:
                await say_privately(
                    interaction, "Discord would not hand over the attachment; try uploading it again."
                )
                bot.limits.forget_start(user_id, previous_start)
                return
            bot.records.save(
                JobRecord(
                    upload.job_id,
                    user_id,
                    interaction.channel_id,
                    upload.generator,
                    upload.face_limit,
                    fmt,
                    multiview=multiview,
                ),
                images,
            )
            log.info("job submitted job_id=%s user=%s generator=%s", upload.job_id, user_id, upload.generator)
            await self.follow(interaction, JobView.from_upload(upload), fmt, started=time.monotonic())
        finally:
            bot.limits.finish(user_id)

    async def follow(
        self, interaction: discord.Interaction[ModelBot], view: JobView, fmt: str, started: float
    ) -> None:
        """Watch the job, editing the reply when its progress text changes (at most every interval), then
        post the outcome."""
        bot, job_id = self.bot, view.job_id
        latest = view
        changed = asyncio.Event()
        throttle = EditThrottle(bot.settings.bot_progress_interval)

        async def consume() -> None:
            nonlocal latest
            async for update in bot.api.watch(job_id, view, timeout=bot.settings.bot_job_timeout_seconds):
                latest = update
                changed.set()

        consumer = asyncio.create_task(consume())
        try:
            while not consumer.done() and not latest.finished:
                changed.clear()
                text = progress_text(latest)
                loop_now = time.monotonic()
                wait = throttle.wait_for(text, loop_now) if _token_alive(interaction) else None
                if wait == 0:
                    try:
                        await interaction.edit_original_response(
                            content=text,
                            view=progress_view(
                                job_id, interaction.user.id, job_link(job_id, bot.settings.web_url)
                            ),
                        )
                    except discord.HTTPException as exc:
                        log.warning("progress edit failed job_id=%s status=%s", job_id, exc.status)
                    # Counted from when Discord has the edit, so two edits reach it an interval apart at least.
                    throttle.sent(text, time.monotonic())
                    continue
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait({consumer, waiter}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            await consumer
        except Image2ModelError as exc:
            log.warning("lost the job job_id=%s code=%s", job_id, exc.error_code)
            await self.deliver(
                interaction,
                job_id,
                content=f"⚠️ I lost track of this model: {error_text(exc.error_code, exc.message)}",
            )
            return
        except TimeoutError:
            log.warning("gave up following job_id=%s", job_id)
            await self.deliver(
                interaction, job_id, content="⚠️ This model is taking too long; I stopped waiting for it."
            )
            return
        finally:
            if not consumer.done():
                consumer.cancel()
        if latest.status == JobStatus.COMPLETED:
            await self.finish(interaction, latest, fmt, time.monotonic() - started)
        elif latest.status == JobStatus.CANCELLED:
            await self.deliver(interaction, job_id, content="🛑 This model was cancelled.")
        else:
            reason = latest.error or "the generator could not make a model from this photo"
            await self.deliver(interaction, job_id, content=f"❌ No model this time: {reason}")

    async def finish(
        self, interaction: discord.Interaction[ModelBot], view: JobView, fmt: str, seconds: float
    ) -> None:
        """The result: an embed with the turntable and the stats, the model attached when it fits, else linked."""
        bot, job_id = self.bot, view.job_id
        models = [f for f in view.files if f.entries]
        made = models[0] if models else None
        if made is None:
            await self.deliver(
                interaction, job_id, content="⚠️ The model was made but the service lists no file for it."
            )
            return
        entry = made.entry(fmt) or made.entries[0]
        with tempfile.TemporaryDirectory(prefix="i2m-bot-") as tmp:
            kind = pick_preview(made.previews)
            preview_path: Path | None = None
            if kind is not None:
                try:
                    preview_path = await bot.api.download_preview(entry, kind, tmp)
                except Image2ModelError:
                    preview_path = None
            delivery = choose_delivery(
                entry.size, preview_path.stat().st_size if preview_path else None, interaction.filesize_limit
            )
            entries = [f.entry(fmt) or f.entries[0] for f in models]
            attached = 0
            if delivery.attach_model:
                room = (
                    interaction.filesize_limit
                    - UPLOAD_MARGIN
                    - (preview_path.stat().st_size if delivery.attach_preview and preview_path else 0)
                )
                attached = fit_count((e.size for e in entries), room)
            model_paths = [await bot.api.download(e, dest_dir=tmp) for e in entries[:attached]]
            shown = f"turntable.{kind}" if delivery.attach_preview and preview_path is not None else None

            def files() -> list[discord.File]:
                out = []
                if shown is not None and preview_path is not None:
                    out.append(discord.File(preview_path, filename=shown))
                out.extend(
                    discord.File(p, filename=e.filename) for p, e in zip(model_paths, entries, strict=False)
                )
                return out

            components = result_view(
                job_id,
                interaction.user.id,
                None if delivery.attach_model else entry.download_url,
                await self.face_limit_choices(job_id),
                job_link(job_id, bot.settings.web_url),
            )
            ready = (
                "✅ Your 3D model is ready."
                if len(entries) == 1
                else f"✅ Your {len(entries)} 3D models are ready."
            )
            if 1 < len(entries) != attached:
                ready += " The ones not attached are under **Other formats**."
            await self.deliver(
                interaction,
                job_id,
                content=ready,
                embed=result_embed(job_id, entry, seconds, shown, bot.settings.web_url),
                files=files,
                view=components,
            )

    async def face_limit_choices(self, job_id: str) -> list[int]:
        """Face limits the 'run again' menu offers: round numbers in the generator's range, not this job's; none
        for a generator that takes no face limit."""
        record = self.bot.records.load(job_id)
        minimum, maximum = 12, 200_000
        with contextlib.suppress(Image2ModelError):
            info = await self.bot.generator(record.generator if record else None)
            spec = next((o for o in info.options if o.name == "face_limit"), None) if info else None
            if info is not None and spec is None:
                return []
            if spec is not None:
                minimum = int(spec.minimum if spec.minimum is not None else minimum)
                maximum = int(spec.maximum if spec.maximum is not None else maximum)
        return face_limit_presets(record.face_limit if record else None, minimum, maximum)

    async def deliver(
        self,
        interaction: discord.Interaction[ModelBot],
        job_id: str,
        *,
        content: str,
        embed: discord.Embed | None = None,
        files: Callable[[], list[discord.File]] = list,
        view: discord.ui.View | None = None,
    ) -> None:
        """Put the outcome in the original reply and mention the user (edits do not notify). When the
        interaction token has expired (or the edit fails), post it in the channel instead, or DM the user."""
        if job_id in self.deleted:
            return
        mention = interaction.user.mention
        allowed = discord.AllowedMentions(users=True, roles=False, everyone=False)
        kwargs: dict[str, Any] = {"embed": embed} if embed is not None else {}
        if view is not None:
            kwargs["view"] = view
        if _token_alive(interaction):
            try:
                await interaction.edit_original_response(content=content, attachments=files(), **kwargs)
                await interaction.followup.send(
                    f"{mention} {_mention_line(content)}", allowed_mentions=allowed
                )
                return
            except discord.HTTPException as exc:
                log.warning(
                    "final edit failed job_id=%s status=%s; posting in the channel", job_id, exc.status
                )
        text = f"{mention} {content}"
        if interaction.channel_id is not None:
            try:
                channel = self.bot.get_partial_messageable(interaction.channel_id)
                await channel.send(text, files=files(), allowed_mentions=allowed, **kwargs)
                return
            except discord.HTTPException as exc:
                log.warning("channel post failed job_id=%s status=%s; sending a DM", job_id, exc.status)
        try:
            await interaction.user.send(content, files=files(), **kwargs)
        except discord.HTTPException as exc:
            log.error("could not deliver job_id=%s status=%s", job_id, exc.status)


def result_embed(
    job_id: str, entry: FileEntry, seconds: float | None, image_name: str | None, web_url: str
) -> discord.Embed:
    """The result card: where the model came from, its figures, the preview, and the title linking to the job
    in the web UI."""
    options = entry.metadata.get("options")
    face_limit = options.get("face_limit") if isinstance(options, dict) else None
    description = f"From `{entry.source_filename}`"
    if isinstance(face_limit, int):
        description += f" · face limit {face_limit:,}"
    embed = discord.Embed(
        title="Your 3D model", description=description, colour=0x2B8A3E, url=job_link(job_id, web_url)
    )
    for name, value in stats_fields(entry.metadata, entry.format, entry.size, seconds):
        embed.add_field(name=name, value=value, inline=True)
    if image_name:
        embed.set_image(url=f"attachment://{image_name}")
    embed.set_footer(text=f"job {job_id}")
    return embed


def _mention_line(content: str) -> str:
    return "your model is ready ⬆️" if content.startswith("✅") else "your model request finished ⬆️"
