"""The bot's slash commands: `/model` checks its attachments and hands the job to the bot's runner."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from image2model.core.errors import Image2ModelError

from .messages import FORMATS, attachment_problem
from .runner import say_privately

if TYPE_CHECKING:
    from .bot import ModelBot

log = logging.getLogger("image2model.bot")


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

        await interaction.client.runner.run(
            interaction, load, face_limit, format.value if format else "glb", generator
        )

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
