"""The bot's slash commands: `/model` checks its attachments and hands the job to the bot's runner (asking first,
for several photos, whether they are views of one object); `/models` lists the requester's recent models."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from image2model.core.errors import Image2ModelError

from .history import show_models
from .messages import FORMATS, attachment_problem, error_text
from .runner import ImageLoader, say_privately
from .view_choice import choice_text, choice_view, keep_pending

if TYPE_CHECKING:
    from .bot import ModelBot

log = logging.getLogger("image2model.bot")


def register(bot: ModelBot) -> None:
    """Add the bot's slash commands to its tree."""

    @bot.tree.command(name="model", description="Turn a photo into a textured 3D model.")
    @app_commands.describe(
        image="A photo of the object (PNG, JPEG or WebP)",
        image2="Another photo: another view of the same object, or another object",
        image3="A third photo",
        image4="A fourth photo",
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

        fmt = format.value if format else "glb"
        if len(attachments) > 1 and await _offer_views(
            interaction, load, len(attachments), face_limit, fmt, generator
        ):
            return
        await interaction.client.runner.run(interaction, load, face_limit, fmt, generator)

    @bot.tree.command(name="models", description="Your recent 3D models, with their previews.")
    async def models(interaction: discord.Interaction[ModelBot]) -> None:
        await show_models(interaction)

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

    async def _offer_views(
        interaction: discord.Interaction[ModelBot],
        load: ImageLoader,
        count: int,
        face_limit: int | None,
        fmt: str,
        generator: str | None,
    ) -> bool:
        """Ask whether several photos show one object, when the generator can take them as views; True when
        asked (or when asking failed and the user was told), False to make one model per photo right away."""
        try:
            info = await bot.generator(generator)
        except Image2ModelError as exc:
            await say_privately(interaction, error_text(exc.error_code, exc.message))
            return True
        if info is None or info.max_images_per_item < count:
            return False  # the runner names a missing generator; one that takes single photos makes one each
        refusal = bot.limits.refusal(interaction.user.id, time.monotonic())
        if refusal:
            await interaction.response.send_message(refusal, ephemeral=True)
            return True
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            images = await load()
        except discord.HTTPException:
            await say_privately(
                interaction, "Discord would not hand over the attachments; try uploading them again."
            )
            return True
        pending_id = keep_pending(bot, interaction, images, face_limit, fmt, info.name)
        await interaction.followup.send(
            choice_text(count), view=choice_view(pending_id, interaction.user.id), ephemeral=True
        )
        return True

    @bot.tree.error
    async def _on_error(
        interaction: discord.Interaction[ModelBot], error: app_commands.AppCommandError
    ) -> None:
        log.exception("command failed user=%s", interaction.user.id, exc_info=error)
        await say_privately(interaction, "Something went wrong on the bot's side; try again later.")
