"""Bot fixtures: a real API + worker with an API key, the Discord wire double, and bots logged in to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from image2model.core.settings import Settings
from tests.fakes.discord_http import FakeDiscord, route_to
from tests.support.stack import Stack

pytest.importorskip("discord")

API_KEY = "sk-bot-test-5f0e2c9a7b1d4e63"
DISCORD_TOKEN = "fake.discord.token-never-sent-anywhere"


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One API + worker with auth on (the bot's key), shared by a test module."""
    s = Stack(tmp_path_factory.mktemp("botstack") / "data", api_keys=API_KEY).start(workers=1)
    yield s
    s.stop()


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    """The Discord double, with discord.py routed to it. After every test: the API key appeared in no
    recorded request (body, headers or query) and the bot token went only in Authorization headers."""
    fake = await FakeDiscord().start()
    with route_to(fake):
        yield fake
    await fake.stop()
    assert fake.calls, "the test made no Discord call at all"
    for call in fake.calls:
        seen = call.raw + repr(call.headers).encode() + repr(call.query).encode() + call.path.encode()
        assert API_KEY.encode() not in seen, f"API key sent to Discord in {call.method} {call.path}"
        assert DISCORD_TOKEN.encode() not in call.raw, f"bot token in the body of {call.method} {call.path}"


BotFactory = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make_bot(api_stack: Stack, discord_fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotFactory]:
    """`await make_bot(**settings)`: a bot logged in to the fake (setup_hook run), talking to `api_stack`.
    Bots made with the same `data_dir` name share their job records (a restart)."""
    from image2model.bot import create_bot

    bots: list[Any] = []

    async def factory(data_dir: str = "bot", server_url: str | None = None, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "server_url": server_url or api_stack.url,
            "api_key": API_KEY,
            "bot_data_dir": tmp_path / data_dir,
            "bot_cooldown_seconds": 0.0,
            "bot_max_jobs_per_user": 1,
            "bot_progress_interval": 0.3,
            "bot_job_timeout_seconds": 60.0,
            "max_file_size": 10 * 1024 * 1024,
            "discord_guild_id": 0,
            **overrides,
        }
        bot = create_bot(Settings(**values))
        await bot.login(DISCORD_TOKEN)
        bots.append(bot)
        return bot

    yield factory
    for bot in bots:
        await bot.close()
