"""`image2model bot` arguments and its refusal to start without a token."""

from __future__ import annotations

import argparse

from image2model.bot.cli import add_bot_arguments, run_bot


def test_arguments_default_to_settings_and_take_a_sync_guild():
    parser = argparse.ArgumentParser()
    add_bot_arguments(parser)
    args = parser.parse_args(["--sync-guild", "123", "--server", "http://127.0.0.1:9"])
    assert (args.sync_guild, args.server, args.api_key, args.token) == (123, "http://127.0.0.1:9", None, None)
    assert parser.parse_args([]).sync_guild is None  # global sync by default


def test_no_token_exits_2_without_connecting(monkeypatch, caplog):
    monkeypatch.delenv("IMAGE2MODEL_DISCORD_TOKEN", raising=False)
    assert run_bot(None, "http://127.0.0.1:9", "sk-secret", None) == 2
    assert "IMAGE2MODEL_DISCORD_TOKEN" in caplog.text and "sk-secret" not in caplog.text
