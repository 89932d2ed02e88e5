"""image2model's Discord bot: `/model` turns attached photos into a 3D model through the job API.

`create_bot(settings)` builds the client; `image2model bot` runs it. discord.py is imported only when the bot
itself is used, so the CLI works without the `discord` extra."""

from __future__ import annotations

from typing import Any

__all__ = ["create_bot"]


def __getattr__(name: str) -> Any:
    if name == "create_bot":
        from .bot import create_bot

        return create_bot
    raise AttributeError(name)
