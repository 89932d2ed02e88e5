"""`image2model bot`: its arguments and its entry point (the main CLI registers the subcommand)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("image2model.bot")


def add_bot_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `image2model bot`; each defaults to its IMAGE2MODEL_* setting."""
    parser.add_argument(
        "--token",
        default=None,
        help="Discord bot token (default: IMAGE2MODEL_DISCORD_TOKEN; prefer the variable, "
        "command lines are visible to other users of the machine)",
    )
    parser.add_argument("--server", default=None, help="API base URL (default: IMAGE2MODEL_SERVER_URL)")
    parser.add_argument(
        "--api-key", default=None, help="API key for the server (default: IMAGE2MODEL_API_KEY)"
    )
    parser.add_argument(
        "--sync-guild",
        type=int,
        default=None,
        metavar="GUILD_ID",
        help="sync the commands to this one guild, where they appear at once (development); "
        "default: IMAGE2MODEL_DISCORD_GUILD_ID, else a global sync",
    )


def run_bot(token: str | None, server: str | None, api_key: str | None, sync_guild: int | None) -> int:
    """Run the bot until interrupted; 2 when no token is configured."""
    from image2model.core.logs import configure_logging
    from image2model.core.settings import Settings

    overrides: dict[str, object] = {}
    if server is not None:
        overrides["server_url"] = server
    if api_key is not None:
        overrides["api_key"] = api_key
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_level, settings.log_file)
    token = token or settings.discord_token
    if not token:
        log.error("no Discord token: set IMAGE2MODEL_DISCORD_TOKEN or pass --token")
        return 2

    from .bot import create_bot

    bot = create_bot(settings, sync_guild=sync_guild)
    log.info("bot starting server=%s sync=%s", settings.server_url, bot.sync_guild or "global")
    # log_handler=None: our key=value logging is already configured (discord.py would add its own).
    bot.run(token, log_handler=None)
    return 0
