"""`/model` with two to four photos: are they views of one object (one model, multi-view) or one model each?
The photos wait in a pending record (on disk, like every job record) until the requester picks."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

import discord

from .messages import VIEWS_TEMPLATE, views_custom_id
from .records import JobRecord

if TYPE_CHECKING:
    from .bot import ModelBot

log = logging.getLogger("image2model.bot")

_LABELS = {"one": ("One object, several views", "🧊"), "each": ("One model per image", "🖼️")}


def choice_text(count: int) -> str:
    return (
        f"You attached {count} photos. Are they **views of one object** (in this order: front, left, back, right; "
        "the object turned a quarter turn clockwise between shots), making one model from all of them, "
        "or should **each photo make its own model**?"
    )


class ViewsChoice(discord.ui.DynamicItem[discord.ui.Button[Any]], template=VIEWS_TEMPLATE):
    """One answer to the multi-view question; starts the job with the kept photos."""

    def __init__(self, pending_id: str, owner_id: int, mode: str) -> None:
        self.pending_id, self.owner_id, self.mode = pending_id, owner_id, mode
        label, emoji = _LABELS[mode]
        super().__init__(
            discord.ui.Button(
                label=label,
                emoji=emoji,
                style=discord.ButtonStyle.primary if mode == "one" else discord.ButtonStyle.secondary,
                custom_id=views_custom_id(pending_id, owner_id, mode),
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ViewsChoice:
        return cls(match["job"], int(match["owner"]), match["mode"])

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "Only the person who sent the photos can choose.", ephemeral=True
        )
        return False

    async def callback(self, interaction: discord.Interaction[ModelBot]) -> None:  # type: ignore[override]
        bot = interaction.client
        record = bot.records.load(self.pending_id)
        if record is None or not record.pending:
            await interaction.response.send_message(
                "This choice was made already or has expired; run `/model` again.", ephemeral=True
            )
            return
        refusal = bot.limits.refusal(interaction.user.id, time.monotonic())
        if refusal:  # the photos stay: the user can choose again once allowed
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        images = bot.records.images(record)
        bot.records.delete(self.pending_id)

        async def load() -> list[tuple[str, bytes]]:
            return images

        await bot.runner.run(
            interaction,
            load,
            record.face_limit,
            record.format,
            record.generator or None,
            multiview=self.mode == "one",
        )


def choice_view(pending_id: str, owner_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for mode in _LABELS:
        view.add_item(ViewsChoice(pending_id, owner_id, mode))
    return view


def keep_pending(
    bot: ModelBot,
    interaction: discord.Interaction[Any],
    images: list[tuple[str, bytes]],
    face_limit: int | None,
    fmt: str,
    generator: str | None,
) -> str:
    """Keep the photos and options until the requester chooses; the pending request's id."""
    pending_id = f"pending-{secrets.token_hex(8)}"
    bot.records.save(
        JobRecord(
            pending_id,
            interaction.user.id,
            interaction.channel_id,
            generator or "",
            face_limit,
            fmt,
            pending=True,
        ),
        images,
    )
    return pending_id
