"""Persistent components of the bot's replies. Each is a `DynamicItem` whose custom id carries the job and the
requester (`i2m:<action>:<job_id>:<owner_id>`), so a click works after a restart with nothing in memory."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from image2model.core.errors import Image2ModelError, JobFinished, JobNotFound

from .export_menu import ExportSelect
from .messages import custom_id_template, error_text, human_size, make_custom_id, picked

if TYPE_CHECKING:
    from .bot import ModelBot

log = logging.getLogger("image2model.bot")


class _OwnedItem:
    job_id: str
    owner_id: int

    async def _only_owner(self, interaction: discord.Interaction[Any], what: str) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            f"Only the person who asked for this model can {what}.", ephemeral=True
        )
        return False


class FormatsButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=custom_id_template("fmt")):
    """⬇️ Other formats: an ephemeral list of links to every format the job produced (no regeneration)."""

    def __init__(self, job_id: str, owner_id: int) -> None:
        self.job_id, self.owner_id = job_id, owner_id
        super().__init__(
            discord.ui.Button(
                label="Other formats",
                emoji="⬇️",
                style=discord.ButtonStyle.secondary,
                custom_id=make_custom_id("fmt", job_id, owner_id),
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> FormatsButton:
        return cls(match["job"], int(match["owner"]))

    async def callback(self, interaction: discord.Interaction[ModelBot]) -> None:  # type: ignore[override]
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            listing = await interaction.client.api.files(self.job_id)
        except Image2ModelError as exc:
            await interaction.followup.send(error_text(exc.error_code, exc.message), ephemeral=True)
            return
        if not listing.files:
            await interaction.followup.send("This job has no model files.", ephemeral=True)
            return
        view = discord.ui.View(timeout=None)
        for entry in listing.files[:25]:
            view.add_item(
                discord.ui.Button(
                    label=f"{entry.format.upper()} ({human_size(entry.size)})",
                    style=discord.ButtonStyle.link,
                    url=entry.download_url,
                )
            )
        await interaction.followup.send("Download the model in another format:", view=view, ephemeral=True)


class RerunSelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=custom_id_template("rerun")):
    """🔁 Run again with another face limit, from the photos the bot kept; a new job of whoever picks."""

    def __init__(self, job_id: str, owner_id: int, face_limits: list[int] | None = None) -> None:
        self.job_id, self.owner_id = job_id, owner_id
        options = [discord.SelectOption(label=f"{n:,} faces", value=str(n)) for n in face_limits or []]
        super().__init__(
            discord.ui.Select(
                placeholder="🔁 Run again with a different face limit…",
                custom_id=make_custom_id("rerun", job_id, owner_id),
                options=options,
                min_values=1,
                max_values=1,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RerunSelect:
        return cls(match["job"], int(match["owner"]))

    async def callback(self, interaction: discord.Interaction[ModelBot]) -> None:  # type: ignore[override]
        try:
            face_limit = int(picked(interaction.data))
        except ValueError:
            await interaction.response.send_message("Pick a face limit from the list.", ephemeral=True)
            return
        bot = interaction.client
        record = bot.records.load(self.job_id)
        if record is None:
            await interaction.response.send_message(
                "I no longer keep the photos of this model; run `/model` again.", ephemeral=True
            )
            return

        async def load() -> list[tuple[str, bytes]]:
            return bot.records.images(record)

        await bot.runner.run(interaction, load, face_limit, record.format, record.generator, record.multiview)


class DeleteButton(
    _OwnedItem, discord.ui.DynamicItem[discord.ui.Button[Any]], template=custom_id_template("del")
):
    """🗑️ Delete the reply (and cancel the job if it is still running); only the requester may."""

    def __init__(self, job_id: str, owner_id: int) -> None:
        self.job_id, self.owner_id = job_id, owner_id
        super().__init__(
            discord.ui.Button(
                label="Delete",
                emoji="🗑️",
                style=discord.ButtonStyle.danger,
                custom_id=make_custom_id("del", job_id, owner_id),
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> DeleteButton:
        return cls(match["job"], int(match["owner"]))

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await self._only_owner(interaction, "delete it")

    async def callback(self, interaction: discord.Interaction[ModelBot]) -> None:  # type: ignore[override]
        bot = interaction.client
        bot.runner.deleted.add(self.job_id)
        await interaction.response.defer()
        with contextlib.suppress(JobFinished, JobNotFound):
            try:
                await bot.api.cancel(self.job_id)
            except Image2ModelError as exc:
                log.warning("cancel on delete failed job_id=%s code=%s", self.job_id, exc.error_code)
        bot.records.delete(self.job_id)
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.warning("delete failed job_id=%s status=%s", self.job_id, exc.status)
            await interaction.followup.send("I could not delete that message.", ephemeral=True)


DYNAMIC_ITEMS = (FormatsButton, RerunSelect, DeleteButton)


def progress_view(job_id: str, owner_id: int, web_link: str) -> discord.ui.View:
    """Components while the job runs: the job in the web UI, and delete (cancels it)."""
    view = discord.ui.View(timeout=None)
    view.add_item(_web_button(web_link))
    view.add_item(DeleteButton(job_id, owner_id))
    return view


def result_view(
    job_id: str, owner_id: int, download_url: str | None, face_limits: list[int], web_link: str
) -> discord.ui.View:
    """Components of the result: a download link when the model was too big to attach, the job in the web UI,
    other formats, delete, the export menu and the 'run again' menu."""
    view = discord.ui.View(timeout=None)
    if download_url:
        view.add_item(
            discord.ui.Button(
                label="Download model", emoji="📥", style=discord.ButtonStyle.link, url=download_url, row=0
            )
        )
    view.add_item(_web_button(web_link))
    view.add_item(FormatsButton(job_id, owner_id))
    view.add_item(DeleteButton(job_id, owner_id))
    view.add_item(ExportSelect(job_id, owner_id))
    if face_limits:
        view.add_item(RerunSelect(job_id, owner_id, face_limits))
    return view


def _web_button(web_link: str) -> discord.ui.Button[Any]:
    return discord.ui.Button(
        label="Open in the web UI", emoji="🌐", style=discord.ButtonStyle.link, url=web_link, row=0
    )
