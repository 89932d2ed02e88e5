"""Discord export menu → file attached: the time from a click on the export menu's face-budget button ("For
printing: STL, mm, Z up", all faces) until the wire double receives the bot's reply with the STL attached, for
a stored 20k-face model. The bot is real discord.py talking to the Discord wire double (tests/fakes) and, through
the core client, to a real API and worker.

Usage: python bench/bot_export.py [--quick] [--clicks 10]
Target (issue 16): <= 1.5 s, p50 of sequential clicks (each makes a new export: worker, download, upload to
Discord). The model is the local generator's chair at face_limit 20000 (bench/export.py's); one worker process.
It also prints the first step (the format menu → the face-budget buttons).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import Verdicts, pct, running_stack
from export import FACES, stored_model

from tests.fakes.discord_http import FakeDiscord, component, dispatch, route_to

TARGET_S = 1.5
OWNER = 111_111_111_111_111_111


def _replies(fake: FakeDiscord, payload: dict) -> list:
    token = payload["token"]
    return [
        c
        for c in fake.calls
        if f"/{token}" in c.path
        and (re.fullmatch(r"/webhooks/\d+/[^/]+", c.path) or c.path.endswith("/callback"))
        and c.method == "POST"
    ]


async def click(
    bot, fake: FakeDiscord, custom_id: str, kind: int, values: list[str] | None, done
) -> tuple[float, object]:  # noqa: ANN001
    """Seconds from dispatching a click until `done(replies)` holds, and that reply."""
    rows = [
        {
            "type": 1,
            "components": [
                {
                    "type": kind,
                    "custom_id": custom_id,
                    **({"options": []} if kind == 3 else {"style": 1, "label": "x"}),
                }
            ],
        }
    ]
    payload = component(fake, custom_id, rows, component_type=kind, values=values, user_id=OWNER + 1)
    start = time.monotonic()
    dispatch(bot, payload)
    reply = await fake.wait_for(lambda: done(_replies(fake, payload)), timeout=120)
    return reply.at - start, reply


async def measure(url: str, job_id: str, clicks: int, warmup: int) -> tuple[list[float], list[float], bytes]:
    from image2model.bot import create_bot
    from image2model.core.settings import Settings

    fake = await FakeDiscord().start()
    menu_s, export_s, stl = [], [], b""
    with route_to(fake), tempfile.TemporaryDirectory() as tmp:
        bot = create_bot(
            Settings(server_url=url, bot_data_dir=Path(tmp), discord_guild_id=0), sync_commands=False
        )
        await bot.login("fake.discord.token")
        try:
            for n in range(warmup + clicks):
                seconds, _ = await click(
                    bot, fake, f"i2m:exp:{job_id}:{OWNER}", 3, ["print"],
                    lambda rs: next((c for c in rs if c.path.endswith("/callback")), None),
                )  # fmt: skip
                took, reply = await click(
                    bot, fake, f"i2m:xf:{job_id}:{OWNER}:print:0", 2, None,
                    lambda rs: next((c for c in rs if c.files), None),
                )  # fmt: skip
                if n >= warmup:
                    menu_s.append(seconds)
                    export_s.append(took)
                stl = reply.files[0]["data"]
        finally:
            await bot.close()
            await fake.stop()
    return menu_s, export_s, stl


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 clicks")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    clicks = 4 if args.quick else args.clicks
    verdicts = Verdicts()
    with running_stack("bot-export", workers=1) as stack, httpx.Client(timeout=90) as client:
        job_id = stored_model(client, stack.url)
        menu_s, export_s, stl = asyncio.run(measure(stack.url, job_id, clicks, args.warmup))
    import trimesh

    mesh = trimesh.load(io.BytesIO(stl), file_type="stl")
    height = float(mesh.bounds[1][2] - mesh.bounds[0][2])
    print(f"Discord export menu → file attached, {clicks} sequential clicks, a {FACES}-face model:")
    print(f"  the attached STL: {len(stl) / 1e6:.2f} MB, {len(mesh.faces)} faces, {height:.1f} mm along Z")
    print(f"  format menu → face-budget buttons: p50 {pct(menu_s, 50) * 1000:.0f} ms")
    print(
        f"  face budget → file attached: p50 {pct(export_s, 50):.3f} s  p90 {pct(export_s, 90):.3f} s"
        f"  max {max(export_s):.3f} s"
    )
    verdicts.check("export menu → file attached p50", pct(export_s, 50), TARGET_S, "s")
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
