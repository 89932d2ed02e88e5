"""The Discord client: `create_bot(settings)` builds it with its command tree, persistent components, per-user
limits, its job runner and its own `AsyncClient` of the job API (the only way it reaches the service).
Commands and components reach the shared parts through `interaction.client`."""

from __future__ import annotations

import logging
import time

import discord
from discord import app_commands

from image2model.core.client import AsyncClient
from image2model.core.models import GeneratorInfo, ModelsAvailable
from image2model.core.settings import Settings

from . import commands
from .export_menu import ExportButton, ExportSelect
from .history import PickSelect
from .messages import UserLimits
from .records import JobRecords
from .runner import JobRunner
from .view_choice import ViewsChoice
from .views import DYNAMIC_ITEMS

log = logging.getLogger("image2model.bot")

MODELS_CACHE_SECONDS = 60.0


class ModelBot(discord.Client):
    """A `discord.Client` whose `tree` holds `/model` and `/models`. Slash commands and components arrive over the gateway
    without privileged intents; it asks only for guilds."""

    def __init__(
        self,
        settings: Settings,
        *,
        api: AsyncClient | None = None,
        sync_guild: int | None = None,
        sync_commands: bool = True,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # not privileged; lets the library resolve channels
        super().__init__(intents=intents)
        self.settings = settings
        self.api = api or AsyncClient(settings.server_url, settings.api_key)
        self.tree = app_commands.CommandTree(self)
        self.limits = UserLimits(settings.bot_max_jobs_per_user, settings.bot_cooldown_seconds)
        self.records = JobRecords(settings.bot_data_dir, float(settings.retention_seconds))
        self.sync_guild = sync_guild if sync_guild is not None else (settings.discord_guild_id or None)
        self.sync_on_start = sync_commands
        self.runner = JobRunner(self)
        self._models: tuple[float, ModelsAvailable] | None = None
        commands.register(self)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS, ExportSelect, ExportButton, PickSelect, ViewsChoice)
        removed = self.records.prune()
        if removed:
            log.info("pruned old job records count=%d", removed)
        if self.sync_on_start:
            synced = await self.sync_commands()
            log.info("synced commands count=%d scope=%s", len(synced), self.sync_guild or "global")

    async def sync_commands(self) -> list[app_commands.AppCommand]:
        """Register the commands with Discord: in one guild (instant, for development) or globally."""
        if self.sync_guild:
            guild = discord.Object(id=self.sync_guild)
            self.tree.copy_global_to(guild=guild)
            return await self.tree.sync(guild=guild)
        return await self.tree.sync()

    async def close(self) -> None:
        await super().close()
        await self.api.aclose()

    # -- what the API offers --

    async def models(self) -> ModelsAvailable:
        """The API's generators, cached for a minute (autocomplete calls this on every keystroke)."""
        now = time.monotonic()
        if self._models is None or now - self._models[0] > MODELS_CACHE_SECONDS:
            self._models = (now, await self.api.models())
        return self._models[1]

    async def generator(self, name: str | None) -> GeneratorInfo | None:
        available = await self.models()
        wanted = name or available.default
        return next((m for m in available.models if m.name == wanted), None)


def create_bot(
    settings: Settings,
    *,
    api: AsyncClient | None = None,
    sync_guild: int | None = None,
    sync_commands: bool = True,
) -> ModelBot:
    """The bot with its command tree. `api` defaults to an `AsyncClient` of `settings.server_url`;
    `sync_guild` (else `settings.discord_guild_id`) syncs commands to one guild instead of globally."""
    return ModelBot(settings, api=api, sync_guild=sync_guild, sync_commands=sync_commands)
