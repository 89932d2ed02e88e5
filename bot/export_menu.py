"""The result message's export menu: pick a form (for printing: STL in mm, Z up; or a format), then a face
budget; the bot asks the job API's exports endpoint for it (no generation) and answers with the file attached.
Both steps are `DynamicItem`s whose custom ids carry everything, so they work after a restart."""

from __future__ import annotations

import logging
import re
import tempfile
from typing import TYPE_CHECKING, Any

import discord

from image2model.core.errors import Image2ModelError

from .messages import (
    EXPORT_FORMATS,
    EXPORT_TEMPLATE,
    FACE_BUDGETS,
    PRINT,
    UPLOAD_MARGIN,
    budget_label,
    custom_id_template,
    error_text,
    export_choice,
    export_custom_id,
    export_label,
    fit_count,
    human_size,
    make_custom_id,
    picked,
)

if TYPE_CHECKING:
    from .bot import ModelBot

log = logging.getLogger("image2model.bot")


class ExportSelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=custom_id_template("exp")):
    """📤 Export as…: the forms a stored model can be made in; picking one asks for the face budget."""

    def __init__(self, job_id: str, owner_id: int) -> None:
        self.job_id, self.owner_id = job_id, owner_id
        super().__init__(
            discord.ui.Select(
                placeholder="📤 Export as… (STL for printing, 3MF, OBJ, PLY, GLB)",
                custom_id=make_custom_id("exp", job_id, owner_id),
                options=[
                    discord.SelectOption(label=export_label(kind), value=kind)
                    for kind in (PRINT, *EXPORT_FORMATS)
                ],
                min_values=1,
                max_values=1,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ExportSelect:
        return cls(match["job"], int(match["owner"]))

    async def callback(self, interaction: discord.Interaction[ModelBot]) -> None:  # type: ignore[override]
        kind = picked(interaction.data)
        if kind not in (PRINT, *EXPORT_FORMATS):
            await interaction.response.send_message("Pick a format from the list.", ephemeral=True)
            return
        await interaction.response.send_message(
            f"**{export_label(kind)}**: how many faces at most?",
            view=budget_view(self.job_id, self.owner_id, kind),
            ephemeral=True,
        )


class ExportButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=EXPORT_TEMPLATE):
    """One face budget of the export menu: makes the export and answers with its file."""

    def __init__(self, job_id: str, owner_id: int, kind: str, faces: int) -> None:
        self.job_id, self.owner_id, self.kind, self.faces = job_id, owner_id, kind, faces
        super().__init__(
            discord.ui.Button(
                label=budget_label(faces),
                style=discord.ButtonStyle.primary if faces == 0 else discord.ButtonStyle.secondary,
                custom_id=export_custom_id(job_id, owner_id, kind, faces),
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ExportButton:
        return cls(match["job"], int(match["owner"]), match["kind"], int(match["faces"]))

    async def callback(self, interaction: discord.Interaction[ModelBot]) -> None:  # type: ignore[override]
        await interaction.response.defer(ephemeral=True, thinking=True)
        choice = export_choice(self.kind, self.faces)
        api = interaction.client.api
        try:
            export = await api.export(
                self.job_id,
                choice.formats,
                face_limit=choice.face_limit,
                height_mm=choice.height_mm,
                up=choice.up,
                origin=choice.origin,
            )
            if not export.files:
                await interaction.followup.send("This job has no finished model to export.", ephemeral=True)
                return
            room = interaction.filesize_limit - UPLOAD_MARGIN
            attached = fit_count((e.size for e in export.files), room)
            with tempfile.TemporaryDirectory(prefix="i2m-export-") as tmp:
                paths = [await api.download(e, dest_dir=tmp) for e in export.files[:attached]]
                links = discord.ui.View(timeout=None)
                for entry in export.files[attached:][:25]:
                    links.add_item(
                        discord.ui.Button(
                            label=f"{entry.filename} ({human_size(entry.size)})",
                            style=discord.ButtonStyle.link,
                            url=entry.download_url,
                        )
                    )
                kwargs: dict[str, Any] = {"view": links} if links.children else {}
                await interaction.followup.send(
                    f"📤 {export_label(self.kind)}, {budget_label(self.faces).lower()}: "
                    + ", ".join(f"`{e.filename}` ({human_size(e.size)})" for e in export.files),
                    files=[
                        discord.File(p, filename=e.filename)
                        for p, e in zip(paths, export.files, strict=False)
                    ],
                    ephemeral=True,
                    **kwargs,
                )
        except Image2ModelError as exc:
            log.info("export refused job_id=%s code=%s", self.job_id, exc.error_code)
            await interaction.followup.send(error_text(exc.error_code, exc.message), ephemeral=True)
        except TimeoutError:
            await interaction.followup.send("The export is taking too long; try again later.", ephemeral=True)


def budget_view(job_id: str, owner_id: int, kind: str) -> discord.ui.View:
    """The face budgets of one export entry, as buttons."""
    view = discord.ui.View(timeout=None)
    for faces in FACE_BUDGETS:
        view.add_item(ExportButton(job_id, owner_id, kind, faces))
    return view
