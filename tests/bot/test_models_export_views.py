"""`/models`, the result's export menu and the multi-view question, end to end: real discord.py, a real API and
workers, every Discord call recorded by the wire double."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import trimesh

from image2model.bot.messages import parse_custom_id
from tests.bot.test_model_command import (
    OTHER_USER,
    USER,
    callback,
    custom_ids,
    edits,
    followups,
    link_urls,
    of,
    run,
)
from tests.fakes.discord_http import FakeDiscord, component, dispatch, slash_command
from tests.support.images import photo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

WEB = "http://ui.test:7860"


def _select(components: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    return next(
        i for row in components for i in row["components"] if i.get("custom_id", "").startswith(prefix)
    )


async def _click(bot: Any, fake: FakeDiscord, custom_id: str, components: list, **kw: Any) -> list:
    """Dispatch a component interaction and wait for its first follow-up (or its one-step answer)."""
    payload = component(fake, custom_id, components, **kw)
    dispatch(bot, payload)
    await fake.wait_for(
        lambda: (
            followups(of(fake, payload))
            or [c for c in of(fake, payload) if c.path.endswith("/callback") and c.payload["type"] == 4]
        ),
        timeout=60,
    )
    return of(fake, payload)


async def test_export_menu_answers_with_an_stl_for_printing_within_the_face_budget(make_bot, discord_fake):
    bot = await make_bot(web_url=WEB)
    _, calls = await run(bot, discord_fake, {"generator": "local", "face_limit": 3000})
    components = edits(calls)[-1].payload["components"]
    menu = _select(components, "i2m:exp:")
    assert [o["value"] for o in menu["options"]] == ["print", "stl", "3mf", "obj", "ply", "glb"]
    assert menu["options"][0]["label"] == "For printing: STL, mm (80 mm tall), Z up"
    job_id = parse_custom_id(menu["custom_id"]).job_id

    picked = await _click(
        bot,
        discord_fake,
        menu["custom_id"],
        components,
        component_type=3,
        values=["print"],
        user_id=OTHER_USER,
    )
    answer = callback(picked)
    assert answer["type"] == 4 and answer["data"]["flags"] == 64
    budgets = answer["data"]["components"]
    ids = custom_ids(budgets)
    assert ids == [f"i2m:xf:{job_id}:{USER}:print:{n}" for n in (0, 50000, 20000, 5000, 1000)]

    done = await _click(bot, discord_fake, ids[-1], budgets, user_id=OTHER_USER)
    assert callback(done) == {"type": 5, "data": {"flags": 64}}
    reply = followups(done)[-1]
    assert reply.payload["flags"] == 64
    (stl,) = reply.files
    assert (
        stl["filename"].endswith(".stl")
        and "80mm" in stl["filename"]
        and "`" + stl["filename"] + "`" in reply.payload["content"]
    )
    mesh = trimesh.load(io.BytesIO(stl["data"]), file_type="stl")
    low, high = mesh.bounds
    assert abs((high[2] - low[2]) - 80.0) < 0.5 and abs(low[2]) < 1e-3  # 80 mm tall along Z, on the plate
    assert len(mesh.faces) <= 1000


async def test_an_export_of_a_job_the_service_no_longer_keeps_says_so(make_bot, discord_fake):
    bot = await make_bot()
    custom_id = f"i2m:xf:no-such-job:{USER}:stl:0"
    done = await _click(
        bot,
        discord_fake,
        custom_id,
        [{"type": 1, "components": [{"type": 2, "style": 1, "label": "All faces", "custom_id": custom_id}]}],
    )
    reply = followups(done)[-1].payload
    assert reply["flags"] == 64 and reply["content"] == "That model is no longer kept by the service."
    assert not followups(done)[-1].files


async def test_models_lists_the_callers_models_newest_first_with_previews_and_opens_one(
    make_bot, discord_fake
):
    bot = await make_bot(web_url=WEB)
    _, first = await run(bot, discord_fake, {"face_limit": 100})
    _, second = await run(bot, discord_fake, {"face_limit": 200, "format": "stl"})
    await run(bot, discord_fake, {}, user_id=OTHER_USER)
    mine = [
        parse_custom_id(custom_ids(edits(c)[-1].payload["components"])[0]).job_id for c in (second, first)
    ]

    payload = slash_command(discord_fake, "models", {})
    dispatch(bot, payload)
    await discord_fake.wait_for(lambda: followups(of(discord_fake, payload)), timeout=30)
    assert callback(of(discord_fake, payload)) == {"type": 5, "data": {"flags": 64}}
    listing = followups(of(discord_fake, payload))[-1]
    assert listing.payload["flags"] == 64
    embeds = listing.payload["embeds"]
    assert [e["footer"]["text"] for e in embeds] == [f"job {j}" for j in mine]  # newest first, only mine
    assert [e["url"] for e in embeds] == [f"{WEB}/?job={j}" for j in mine]
    assert [e["thumbnail"]["url"] for e in embeds] == [
        "attachment://preview1.png",
        "attachment://preview2.png",
    ]
    assert listing.file_names == ["preview1.png", "preview2.png"]
    assert all(f["data"].startswith(b"\x89PNG") for f in listing.files)
    assert "face limit 200" in embeds[0]["description"] and "completed" in embeds[0]["description"]
    menu = _select(listing.payload["components"], "i2m:pick:")
    assert [o["value"] for o in menu["options"]] == mine

    stranger = await _click(
        bot,
        discord_fake,
        menu["custom_id"],
        listing.payload["components"],
        component_type=3,
        values=[mine[1]],
        user_id=OTHER_USER,
    )
    assert "someone else's" in callback(stranger)["data"]["content"]

    opened = await _click(
        bot,
        discord_fake,
        menu["custom_id"],
        listing.payload["components"],
        component_type=3,
        values=[mine[0]],
    )
    card = followups(opened)[-1]
    assert card.payload["flags"] == 64 and card.file_names == ["turntable.png"]
    assert card.payload["embeds"][0]["url"] == f"{WEB}/?job={mine[0]}"
    urls = link_urls(card.payload["components"])
    assert f"{WEB}/?job={mine[0]}" in urls and any(".stl" in u and "token=" in u for u in urls)
    assert {
        parse_custom_id(i).action for i in custom_ids(card.payload["components"]) if parse_custom_id(i)
    } >= {"exp", "fmt", "del"}

    nobody = slash_command(discord_fake, "models", {}, user_id=555_555_555_555_555_555)
    dispatch(bot, nobody)
    await discord_fake.wait_for(lambda: followups(of(discord_fake, nobody)), timeout=30)
    assert "no models" in followups(of(discord_fake, nobody))[-1].payload["content"]


@pytest.fixture(scope="module")
def remote_worker(api_stack):
    """The io-queue worker that drives `remote-test`, the test generator that takes up to four views."""
    api_stack.start_io_worker(threads=2)
    return api_stack


def _submissions(stack) -> list[dict]:
    folder = stack.data_dir / "fake-remote" / "submitted"
    found = [json.loads(p.read_text()) for p in folder.iterdir()] if folder.exists() else []
    return sorted(found, key=lambda s: s["t"])  # in the order they were submitted


async def _ask(bot: Any, fake: FakeDiscord, generator: str, **kw: Any) -> tuple[dict, list]:
    views = {
        name: fake.attachment(f"{name}.jpg", photo(color=(40 * i, 90, 160)), "image/jpeg")
        for i, name in enumerate(("image", "image2"), 1)
    }
    payload = slash_command(fake, "model", {"generator": generator}, views, **kw)
    dispatch(bot, payload)
    await fake.wait_for(lambda: followups(of(fake, payload)), timeout=60)
    return payload, of(fake, payload)


async def test_two_photos_ask_one_object_or_one_model_each_and_each_answer_is_sent(
    make_bot, discord_fake, remote_worker
):
    bot = await make_bot()
    before = len(_submissions(remote_worker))
    _, asked = await _ask(bot, discord_fake, "remote-test")
    assert callback(asked) == {"type": 5, "data": {"flags": 64}}
    question = followups(asked)[-1].payload
    assert (
        question["flags"] == 64
        and "views of one object" in question["content"]
        and "front, left, back, right" in question["content"]
    )
    one, each = custom_ids(question["components"])
    assert (
        re.fullmatch(rf"i2m:mv:pending-[0-9a-f]{{16}}:{USER}:one", one)
        and each == one[: -len("one")] + "each"
    )

    stranger = await _click(bot, discord_fake, one, question["components"], user_id=OTHER_USER)
    assert "Only the person who sent the photos" in callback(stranger)["data"]["content"]

    chosen = await _click(bot, discord_fake, one, question["components"])
    assert callback(chosen)["type"] == 5  # a public reply now: the job's progress and result
    final = edits(chosen)[-1].payload
    assert final["content"] == "✅ Your 3D model is ready."
    assert [s["views"] for s in _submissions(remote_worker)[before:]] == [2]  # one item holding both views

    again = await _click(bot, discord_fake, each, question["components"])
    assert "made already" in callback(again)["data"]["content"]

    # remote-test takes no face limit: no 'run again with another face limit' menu that it would refuse
    assert not [i for i in custom_ids(final["components"]) if i.startswith("i2m:rerun:")]

    _, asked = await _ask(bot, discord_fake, "remote-test")
    question = followups(asked)[-1].payload
    each = custom_ids(question["components"])[1]
    chosen = await _click(bot, discord_fake, each, question["components"])
    final = edits(chosen)[-1]
    assert final.payload["content"] == "✅ Your 2 3D models are ready."
    assert [n for n in final.file_names if n.endswith(".glb")] == ["image1.glb", "image2.glb"]
    assert [s["views"] for s in _submissions(remote_worker)[before + 1 :]] == [1, 1]


async def test_two_photos_for_a_single_view_generator_make_one_model_each_without_asking(
    make_bot, discord_fake
):
    bot = await make_bot()
    _, calls = await _ask(bot, discord_fake, "instant")
    assert callback(calls)["type"] == 5 and "flags" not in callback(calls).get("data", {})
    final = edits(calls)[-1]
    assert final.payload["content"] == "✅ Your 2 3D models are ready."
    assert [n for n in final.file_names if n.endswith(".glb")] == ["image1.glb", "image2.glb"]
