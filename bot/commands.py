"""`/model` and the job runner it shares with the 'run again' menu: check, defer, submit, follow the events
with throttled edits, then post the result (or say why not)."""

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
from urllib.parse import unquote, urlsplit

import discord
from discord import app_commands

from image2model.core.errors import Image2ModelError
from image2model.core.models import FileEntry

from .messages import (
    FORMATS,
    EditThrottle,
    Progress,
    Stage,
    attachment_problem,
    choose_delivery,
    error_text,
    face_limit_presets,
    pick_preview,
    stats_fields,
)
from .records import JobRecord

if TYPE_CHECKING:
    from .bot import ModelBot

log = logging.getLogger("image2model.bot")

# Stop editing the original response this long before its token expires; the result then goes to the channel.
TOKEN_MARGIN = datetime.timedelta(seconds=30)
ImageLoader = Callable[[], Awaitable[list[tuple[str, bytes]]]]


def register(bot: ModelBot) -> None:
    """Add the bot's slash commands to its tree."""

    @bot.tree.command(name="model", description="Turn a photo into a textured 3D model.")
    @app_commands.describe(
        image="A photo of the object (PNG, JPEG or WebP)",
        image2="Another view of the same object (multi-view generators)",
        image3="A third view (multi-view generators)",
        image4="A fourth view (multi-view generators)",
        face_limit="Most triangles in the model (fewer: lighter file, less detail)",
        format="File format of the model attached to the reply",
        generator="Which generator makes the model (default: the server's)",
    )
    @app_commands.choices(format=[app_commands.Choice(name=f.upper(), value=f) for f in FORMATS])
    async def model(
        interaction: discord.Interaction[ModelBot],
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        face_limit: app_commands.Range[int, 1, 1_000_000] | None = None,
        format: app_commands.Choice[str] | None = None,
        generator: str | None = None,
    ) -> None:
        attachments = [a for a in (image, image2, image3, image4) if a is not None]
        limit = bot.settings.max_file_size
        for attachment in attachments:
            problem = attachment_problem(attachment.filename, attachment.content_type, attachment.size, limit)
            if problem:
                await interaction.response.send_message(problem, ephemeral=True)
                return

        async def load() -> list[tuple[str, bytes]]:
            return [(a.filename, await a.read()) for a in attachments]

        await run_model(interaction, load, face_limit, format.value if format else "glb", generator)

    @model.autocomplete("generator")
    async def _generators(
        interaction: discord.Interaction[ModelBot], current: str
    ) -> list[app_commands.Choice[str]]:
        try:
            available = await bot.models()
        except Image2ModelError:
            return []
        return [
            app_commands.Choice(name=f"{m.title} ({m.name})"[:100], value=m.name)
            for m in available.models
            if current.lower() in m.name.lower() or current.lower() in m.title.lower()
        ][:25]

    @bot.tree.error
    async def _on_error(
        interaction: discord.Interaction[ModelBot], error: app_commands.AppCommandError
    ) -> None:
        log.exception("command failed user=%s", interaction.user.id, exc_info=error)
        await say_privately(interaction, "Something went wrong on the bot's side; try again later.")


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


async def run_model(
    interaction: discord.Interaction[ModelBot],
    load_images: ImageLoader,
    face_limit: int | None,
    fmt: str,
    generator: str | None,
) -> None:
    """One job from request to result, under the user's limits."""
    bot = interaction.client
    user_id = interaction.user.id
    refusal = bot.limits.refusal(user_id, time.monotonic())
    if refusal:
        await interaction.response.send_message(refusal, ephemeral=True)
        return
    previous_start = bot.limits.start(user_id, time.monotonic())
    job_id: str | None = None
    try:
        await interaction.response.defer(thinking=True)
        try:
            images = await load_images()
            info = await bot.generator(generator)
            if info is None:
                names = ", ".join(m.name for m in (await bot.models()).models)
                await say_privately(interaction, f"There is no generator `{generator}`; try one of: {names}.")
                bot.limits.forget_start(user_id, previous_start)
                return
            formats = [fmt] + [f for f in info.supported_formats if f != fmt]
            upload = await bot.api.submit(
                [data for _, data in images],
                face_limit=face_limit,
                generator=info.name,
                formats=formats,
                multiview=True if len(images) > 1 else None,
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
        job_id = upload.job_id
        channel_id = interaction.channel_id
        bot.records.save(
            JobRecord(job_id, user_id, channel_id, upload.generator, upload.face_limit, fmt), images
        )
        bot.waiting.append(job_id)
        log.info("job submitted job_id=%s user=%s generator=%s", job_id, user_id, upload.generator)
        await follow(interaction, job_id, fmt, started=time.monotonic())
    finally:
        if job_id is not None:
            bot.leave_queue(job_id)
        bot.limits.finish(user_id)


def _token_alive(interaction: discord.Interaction[Any]) -> bool:
    return discord.utils.utcnow() < interaction.expires_at - TOKEN_MARGIN


async def follow(interaction: discord.Interaction[ModelBot], job_id: str, fmt: str, started: float) -> None:
    """Follow the job's events, editing the reply when the stage changes (at most every interval), then
    post the outcome."""
    bot = interaction.client
    from .views import progress_view

    progress = Progress(position=bot.queue_position(job_id))
    changed = asyncio.Event()
    throttle = EditThrottle(bot.settings.bot_progress_interval)
    interval = bot.settings.bot_progress_interval

    async def consume() -> None:
        async for event in bot.api.events(
            job_id, timeout=bot.settings.bot_job_timeout_seconds, queue_positions=True
        ):
            progress.apply(event.type.value, event.data)
            if progress.stage != Stage.QUEUED:
                bot.leave_queue(job_id)
            changed.set()

    consumer = asyncio.create_task(consume())
    try:
        while not consumer.done() and not progress.finished:
            changed.clear()
            if progress.stage == Stage.QUEUED:
                progress.position = bot.queue_position(job_id) or progress.position
            text = progress.text()
            loop_now = time.monotonic()
            wait = throttle.wait_for(text, loop_now) if _token_alive(interaction) else None
            if wait == 0:
                throttle.sent(text, loop_now)
                try:
                    await interaction.edit_original_response(
                        content=text, view=progress_view(job_id, interaction.user.id)
                    )
                except discord.HTTPException as exc:
                    log.warning("progress edit failed job_id=%s status=%s", job_id, exc.status)
                continue
            if wait is None and progress.stage == Stage.QUEUED:
                wait = interval  # the position may change without an event of ours
            waiter = asyncio.create_task(changed.wait())
            await asyncio.wait({consumer, waiter}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        await consumer
    except Image2ModelError as exc:
        consumer.cancel()
        log.warning("lost the job job_id=%s code=%s", job_id, exc.error_code)
        await deliver(
            interaction,
            job_id,
            content=f"⚠️ I lost track of this model: {error_text(exc.error_code, exc.message)}",
        )
        return
    except TimeoutError:
        log.warning("gave up following job_id=%s", job_id)
        await deliver(
            interaction, job_id, content="⚠️ This model is taking too long; I stopped waiting for it."
        )
        return
    finally:
        if not consumer.done():
            consumer.cancel()
    if progress.stage == Stage.COMPLETED:
        await finish(interaction, job_id, fmt, time.monotonic() - started)
    elif progress.stage == Stage.CANCELLED:
        await deliver(interaction, job_id, content="🛑 This model was cancelled.")
    else:
        reason = progress.error or "the generator could not make a model from this photo"
        await deliver(interaction, job_id, content=f"❌ No model this time: {reason}")


def _name_in(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


async def finish(interaction: discord.Interaction[ModelBot], job_id: str, fmt: str, seconds: float) -> None:
    """The result: an embed with the turntable and the stats, the model attached when it fits, else linked."""
    from .views import result_view

    bot = interaction.client
    try:
        listing = await bot.api.files(job_id)
        entry = next((e for e in listing.files if e.format == fmt), None) or listing.files[0]
    except (Image2ModelError, IndexError) as exc:
        code = getattr(exc, "error_code", "FILE_NOT_FOUND")
        await deliver(
            interaction,
            job_id,
            content=f"⚠️ The model was made but I cannot fetch it: {error_text(code, str(exc))}",
        )
        return
    with tempfile.TemporaryDirectory(prefix="i2m-bot-") as tmp:
        preview = pick_preview(entry.previews)
        preview_path: Path | None = None
        if preview is not None:
            try:
                preview_path = await bot.api.download(job_id, _name_in(preview[1]), tmp)
            except Image2ModelError:
                preview_path = None
        delivery = choose_delivery(
            entry.size, preview_path.stat().st_size if preview_path else None, interaction.filesize_limit
        )
        model_path = await bot.api.download(entry, dest_dir=tmp) if delivery.attach_model else None

        def files() -> list[discord.File]:
            out = []
            if delivery.attach_preview and preview_path is not None and preview is not None:
                out.append(discord.File(preview_path, filename=f"turntable.{preview[0]}"))
            if model_path is not None:
                out.append(discord.File(model_path, filename=entry.filename))
            return out

        embed = result_embed(
            job_id, entry, seconds, f"turntable.{preview[0]}" if delivery.attach_preview and preview else None
        )
        view = result_view(
            job_id,
            interaction.user.id,
            None if delivery.attach_model else entry.download_url,
            await _face_limit_choices(bot, job_id),
        )
        await deliver(
            interaction, job_id, content="✅ Your 3D model is ready.", embed=embed, files=files, view=view
        )


async def _face_limit_choices(bot: ModelBot, job_id: str) -> list[int]:
    """Face limits the 'run again' menu offers: round numbers in the generator's range, not this job's."""
    record = bot.records.load(job_id)
    minimum, maximum = 12, 200_000
    with contextlib.suppress(Image2ModelError):
        info = await bot.generator(record.generator if record else None)
        spec = next((o for o in info.options if o.name == "face_limit"), None) if info else None
        if spec is not None:
            minimum = int(spec.minimum if spec.minimum is not None else minimum)
            maximum = int(spec.maximum if spec.maximum is not None else maximum)
    return face_limit_presets(record.face_limit if record else None, minimum, maximum)


def result_embed(job_id: str, entry: FileEntry, seconds: float, image_name: str | None) -> discord.Embed:
    options = entry.metadata.get("options")
    face_limit = options.get("face_limit") if isinstance(options, dict) else None
    description = f"From `{entry.source_filename}`"
    if isinstance(face_limit, int):
        description += f" · face limit {face_limit:,}"
    embed = discord.Embed(title="Your 3D model", description=description, colour=0x2B8A3E)
    for name, value in stats_fields(entry.metadata, entry.format, entry.size, seconds):
        embed.add_field(name=name, value=value, inline=True)
    if image_name:
        embed.set_image(url=f"attachment://{image_name}")
    embed.set_footer(text=f"job {job_id}")
    return embed


async def deliver(
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
    bot = interaction.client
    if job_id in bot.deleted:
        return
    mention = interaction.user.mention
    allowed = discord.AllowedMentions(users=True, roles=False, everyone=False)
    kwargs: dict[str, Any] = {"embed": embed} if embed is not None else {}
    if view is not None:
        kwargs["view"] = view
    if _token_alive(interaction):
        try:
            await interaction.edit_original_response(content=content, attachments=files(), **kwargs)
            await interaction.followup.send(f"{mention} {_mention_line(content)}", allowed_mentions=allowed)
            return
        except discord.HTTPException as exc:
            log.warning("final edit failed job_id=%s status=%s; posting in the channel", job_id, exc.status)
    text = f"{mention} {content}"
    if interaction.channel_id is not None:
        try:
            channel = bot.get_partial_messageable(interaction.channel_id)
            await channel.send(text, files=files(), allowed_mentions=allowed, **kwargs)
            return
        except discord.HTTPException as exc:
            log.warning("channel post failed job_id=%s status=%s; sending a DM", job_id, exc.status)
    try:
        await interaction.user.send(content, files=files(), **kwargs)
    except discord.HTTPException as exc:
        log.error("could not deliver job_id=%s status=%s", job_id, exc.status)


def _mention_line(content: str) -> str:
    return "your model is ready ⬆️" if content.startswith("✅") else "your model request finished ⬆️"
