"""`/model` end to end: real discord.py command tree and Interaction objects from gateway payloads, a real API
and worker, every Discord call recorded by the wire double (tests/fakes/discord_http.py)."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from image2model.bot.messages import UPLOAD_MARGIN, parse_custom_id
from tests.fakes.discord_http import Call, FakeDiscord, component, dispatch, slash_command
from tests.support.images import photo
from tests.support.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

USER = 111_111_111_111_111_111
OTHER_USER = 444_444_444_444_444_444
CHANNEL = 333_333_333_333_333_333
STAGE_PREFIXES = ("⏳ Queued", "⚙️", "✂️", "🧱", "🎨", "📦", "🔁")


def of(fake: FakeDiscord, payload: dict[str, Any]) -> list[Call]:
    """The calls made for one interaction (its token is in every webhook path)."""
    token = payload["token"]
    return [c for c in fake.calls if f"/{token}" in c.path]


def callback(calls: list[Call]) -> dict[str, Any]:
    found = [c for c in calls if c.path.endswith("/callback")]
    assert len(found) == 1, [c.path for c in calls]
    return found[0].payload


def edits(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.method == "PATCH" and c.path.endswith("/messages/@original")]


def followups(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.method == "POST" and re.fullmatch(r"/webhooks/\d+/[^/]+", c.path)]


def custom_ids(components: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in components:
        for item in row.get("components", []):
            if "custom_id" in item:
                out.append(item["custom_id"])
    return out


def link_urls(components: list[dict[str, Any]]) -> list[str]:
    return [i["url"] for row in components for i in row.get("components", []) if i.get("style") == 5]


async def run(
    bot: Any, fake: FakeDiscord, options: dict[str, Any], *, image: bytes | None = None, **kw: Any
) -> tuple[dict[str, Any], list[Call]]:
    """Dispatch `/model` with one photo and wait for the mention that ends a job, and for the bot to count the
    job as finished (it does so just after the mention is sent; a next `/model` sooner would be refused)."""
    attachment = fake.attachment("mug.jpg", image or photo(), "image/jpeg")
    payload = slash_command(fake, "model", options, {"image": attachment}, **kw)
    dispatch(bot, payload)
    await fake.wait_for(lambda: followups(of(fake, payload)), timeout=60)
    await fake.wait_for(lambda: not any(bot.limits.running.values()), timeout=10)
    return payload, of(fake, payload)


async def test_defer_first_then_throttled_stage_edits_then_turntable_and_model(make_bot, discord_fake):
    # The local generator's stages take ~0.3 s in all: a shorter interval leaves room for an edit between them.
    bot = await make_bot(bot_progress_interval=0.1, web_url="http://ui.test:7860/")
    payload, calls = await run(bot, discord_fake, {"face_limit": 2000, "generator": "local", "format": "glb"})

    # The first call for the interaction is the deferral (type 5), before the attachment is even fetched.
    assert calls[0].path.endswith("/callback") and calls[0].payload["type"] == 5
    first_fetch = next(c for c in discord_fake.calls if c.path.startswith("/attachments/"))
    assert first_fetch.at >= calls[0].at

    progress = [c for c in edits(calls) if not c.files]
    texts = [c.payload["content"] for c in progress]
    assert texts[0] == "⏳ Queued…"
    assert all(t.startswith(STAGE_PREFIXES) for t in texts), texts
    assert all(a != b for a, b in zip(texts, texts[1:], strict=False)), "edited without a stage change"
    assert any(t.startswith(("✂️", "🧱", "🎨", "📦")) for t in texts), texts
    gaps = [b.at - a.at for a, b in zip(progress, progress[1:], strict=False)]
    assert all(g >= 0.1 * 0.9 for g in gaps), gaps

    final = edits(calls)[-1]
    assert final.file_names == ["turntable.gif", "image1.glb"]
    gif, model = final.files
    assert gif["data"].startswith(b"GIF8") and model["data"][:4] == b"glTF"
    embed = final.payload["embeds"][0]
    assert embed["image"]["url"] == "attachment://turntable.gif"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert int(fields["Faces"].replace(",", "")) <= 2000 and fields["Watertight"] == "yes"
    assert "face limit 2,000" in embed["description"]
    ids = [parse_custom_id(i) for i in custom_ids(final.payload["components"])]
    assert {i.action for i in ids if i} == {"fmt", "del", "rerun", "exp"}
    job_id = ids[0].job_id
    assert all(i is not None and i.job_id == job_id and i.owner_id == USER for i in ids)
    assert link_urls(final.payload["components"]) == [
        f"http://ui.test:7860/?job={job_id}"
    ]  # no download link
    assert embed["url"] == f"http://ui.test:7860/?job={job_id}"

    mention = followups(calls)[-1]
    assert f"<@{USER}>" in mention.payload["content"]
    assert mention.payload["allowed_mentions"]["parse"] == ["users"]
    assert mention.at >= final.at


async def test_model_attached_when_it_fits_else_linked(make_bot, discord_fake):
    bot = await make_bot()
    _, calls = await run(bot, discord_fake, {"face_limit": 100})
    attached = edits(calls)[-1]
    assert attached.file_names == ["turntable.png", "image1.glb"]
    preview_size, model_size = (len(f["data"]) for f in attached.files)

    # One byte short of room for both: the preview still goes, the model becomes a link.
    limit = UPLOAD_MARGIN + preview_size + model_size - 1
    _, calls = await run(bot, discord_fake, {"face_limit": 100}, filesize_limit=limit)
    linked = edits(calls)[-1]
    assert linked.file_names == ["turntable.png"]
    urls = [u for u in link_urls(linked.payload["components"]) if "?job=" not in u]
    assert len(urls) == 1 and "/api/v1/download/" in urls[0] and "token=" in urls[0]
    assert urls[0].endswith(".glb") or ".glb?" in urls[0]


@pytest.mark.parametrize(
    ("filename", "content_type", "size", "words"),
    [
        ("notes.txt", "text/plain", 100, "text/plain"),
        ("huge.jpg", "image/jpeg", 11 * 1024 * 1024, "11.0 MiB"),
        ("mystery", None, 100, "unknown type"),
    ],
)
async def test_bad_attachment_refused_before_any_work(
    make_bot, discord_fake, api_stack, filename, content_type, size, words
):
    bot = await make_bot()
    jobs_before = api_stack.stored_jobs()
    attachment = discord_fake.attachment(filename, b"not an image", content_type, size=size)
    payload = slash_command(discord_fake, "model", {}, {"image": attachment})
    dispatch(bot, payload)
    await discord_fake.wait_for(lambda: of(discord_fake, payload))
    answer = callback(of(discord_fake, payload))
    assert answer["type"] == 4 and answer["data"]["flags"] == 64  # an ephemeral message, not a deferral
    assert words in answer["data"]["content"]
    assert not [c for c in discord_fake.calls if c.path.startswith("/attachments/")], "attachment fetched"
    assert api_stack.stored_jobs() == jobs_before


async def test_one_running_job_per_user_then_cooldown(make_bot, discord_fake):
    bot = await make_bot(bot_max_jobs_per_user=1, bot_cooldown_seconds=0)
    first = slash_command(
        discord_fake,
        "model",
        {"generator": "local"},
        {"image": discord_fake.attachment("a.jpg", photo(), "image/jpeg")},
    )
    dispatch(bot, first)
    await discord_fake.wait_for(lambda: edits(of(discord_fake, first)))
    second = slash_command(
        discord_fake, "model", {}, {"image": discord_fake.attachment("b.jpg", photo(), "image/jpeg")}
    )
    dispatch(bot, second)
    await discord_fake.wait_for(lambda: of(discord_fake, second))
    refused = callback(of(discord_fake, second))
    assert refused["type"] == 4 and refused["data"]["flags"] == 64
    assert "already have a model in the making" in refused["data"]["content"]

    other = slash_command(
        discord_fake,
        "model",
        {},
        {"image": discord_fake.attachment("c.jpg", photo(), "image/jpeg")},
        user_id=OTHER_USER,
    )
    dispatch(bot, other)
    await discord_fake.wait_for(lambda: followups(of(discord_fake, other)), timeout=60)
    assert callback(of(discord_fake, other))["type"] == 5  # another user is not held up
    await discord_fake.wait_for(lambda: followups(of(discord_fake, first)), timeout=60)

    cooled = await make_bot(data_dir="bot2", bot_max_jobs_per_user=3, bot_cooldown_seconds=120)
    _, calls = await run(cooled, discord_fake, {})
    assert callback(calls)["type"] == 5
    again = slash_command(
        discord_fake, "model", {}, {"image": discord_fake.attachment("d.jpg", photo(), "image/jpeg")}
    )
    dispatch(cooled, again)
    await discord_fake.wait_for(lambda: of(discord_fake, again))
    answer = callback(of(discord_fake, again))
    assert answer["data"]["flags"] == 64 and re.search(r"Slow down: .* in \d+ s", answer["data"]["content"])


async def test_api_refusal_becomes_an_ephemeral_message_and_costs_no_cooldown(make_bot, discord_fake):
    bot = await make_bot(bot_cooldown_seconds=120)
    # The instant test generator takes face_limit 12..200000: the API refuses 5 with VALIDATION_ERROR.
    attachment = discord_fake.attachment("mug.jpg", photo(), "image/jpeg")
    payload = slash_command(discord_fake, "model", {"face_limit": 5}, {"image": attachment})
    dispatch(bot, payload)
    await discord_fake.wait_for(lambda: followups(of(discord_fake, payload)))
    await discord_fake.wait_for(lambda: not any(bot.limits.running.values()), timeout=10)
    calls = of(discord_fake, payload)
    assert [c.method for c in calls] == [
        "POST",
        "DELETE",
        "POST",
    ]  # defer, drop the placeholder, tell privately
    assert calls[0].payload["type"] == 5 and calls[1].path.endswith("/messages/@original")
    message = calls[2].payload
    assert message["flags"] == 64 and message["content"].startswith("The model service refused the request:")
    assert "face_limit" in message["content"]

    _, calls = await run(bot, discord_fake, {"face_limit": 100})  # the refused request started no cooldown
    assert callback(calls)["type"] == 5 and edits(calls)[-1].file_names[-1] == "image1.glb"


async def test_api_down_is_an_ephemeral_message_without_the_address(make_bot, discord_fake):
    port = free_port()
    bot = await make_bot(server_url=f"http://127.0.0.1:{port}")
    attachment = discord_fake.attachment("mug.jpg", photo(), "image/jpeg")
    payload = slash_command(discord_fake, "model", {}, {"image": attachment})
    dispatch(bot, payload)
    await discord_fake.wait_for(lambda: followups(of(discord_fake, payload)), timeout=30)
    message = followups(of(discord_fake, payload))[-1].payload
    assert message["flags"] == 64 and "not reachable" in message["content"]
    assert str(port) not in message["content"] and "127.0.0.1" not in message["content"]


async def test_expired_token_result_goes_to_the_channel(make_bot, discord_fake):
    bot = await make_bot()
    # Created 14 min 50 s ago: the token is within the bot's margin of its 15-minute end from the start.
    created = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=14, seconds=50)
    attachment = discord_fake.attachment("mug.jpg", photo(), "image/jpeg")
    payload = slash_command(discord_fake, "model", {}, {"image": attachment}, created=created)
    dispatch(bot, payload)
    posts = await discord_fake.wait_for(
        lambda: discord_fake.find("POST", rf"^/channels/{CHANNEL}/messages$"), 60
    )
    calls = of(discord_fake, payload)
    assert [c.payload["type"] for c in calls] == [5]  # deferred, then never touched with the dead token
    post = posts[0]
    assert post.payload["content"].startswith(f"<@{USER}> ✅")
    assert post.file_names == ["turntable.png", "image1.glb"]
    assert post.payload["embeds"][0]["image"]["url"] == "attachment://turntable.png"


async def test_rejected_edit_falls_back_to_the_channel_then_to_a_dm(make_bot, discord_fake):
    bot = await make_bot()
    discord_fake.fail(
        "PATCH", r"/messages/@original$", 401, {"message": "Invalid Webhook Token", "code": 50027}, times=50
    )
    discord_fake.fail(
        "POST", rf"^/channels/{CHANNEL}/messages$", 403, {"message": "Missing Access", "code": 50001}
    )
    attachment = discord_fake.attachment("mug.jpg", photo(), "image/jpeg")
    dispatch(bot, slash_command(discord_fake, "model", {}, {"image": attachment}))
    dm = await discord_fake.wait_for(lambda: discord_fake.find("POST", "^/users/@me/channels$"), 60)
    assert int(dm[0].payload["recipient_id"]) == USER
    sent = await discord_fake.wait_for(
        lambda: [
            c
            for c in discord_fake.find("POST", r"^/channels/\d+/messages$")
            if int(c.path.split("/")[2]) != CHANNEL
        ]
    )
    assert sent[0].payload["content"].startswith("✅") and sent[0].file_names[-1] == "image1.glb"


async def test_buttons_work_after_a_restart(make_bot, discord_fake):
    first = await make_bot(data_dir="restart")
    _, calls = await run(first, discord_fake, {"face_limit": 100, "format": "stl"})
    components = edits(calls)[-1].payload["components"]
    by_action = {parse_custom_id(i).action: i for i in custom_ids(components)}
    await first.close()

    bot = await make_bot(data_dir="restart")  # a new process as far as the bot knows: only the records dir

    formats = component(discord_fake, by_action["fmt"], components, user_id=OTHER_USER)
    dispatch(bot, formats)
    await discord_fake.wait_for(lambda: followups(of(discord_fake, formats)))
    assert callback(of(discord_fake, formats)) == {"type": 5, "data": {"flags": 64}}
    listing = followups(of(discord_fake, formats))[-1].payload
    assert listing["flags"] == 64
    urls = link_urls(listing["components"])
    assert sorted(u.split("?")[0].rsplit(".", 1)[-1] for u in urls) == ["glb", "stl"]
    assert all("token=" in u for u in urls)

    rerun = component(discord_fake, by_action["rerun"], components, component_type=3, values=["2000"])
    dispatch(bot, rerun)
    await discord_fake.wait_for(lambda: followups(of(discord_fake, rerun)), timeout=60)
    final = edits(of(discord_fake, rerun))[-1]
    assert "face limit 2,000" in final.payload["embeds"][0]["description"]
    assert final.file_names[-1] == "image1.stl"  # the stored format and photo were used
    new_job = parse_custom_id(custom_ids(final.payload["components"])[0]).job_id
    assert new_job != parse_custom_id(by_action["del"]).job_id

    stranger = component(discord_fake, by_action["del"], components, user_id=OTHER_USER)
    dispatch(bot, stranger)
    await discord_fake.wait_for(lambda: of(discord_fake, stranger))
    refused = callback(of(discord_fake, stranger))
    assert (
        refused["type"] == 4
        and refused["data"]["flags"] == 64
        and "Only the person" in refused["data"]["content"]
    )

    owner = component(discord_fake, by_action["del"], components)
    dispatch(bot, owner)
    deleted = await discord_fake.wait_for(
        lambda: [c for c in of(discord_fake, owner) if c.method == "DELETE"]
    )
    assert callback(of(discord_fake, owner))["type"] == 6 and deleted[0].path.endswith("/messages/@original")


@pytest.mark.parametrize(
    ("guild", "path"),
    [(0, r"^/applications/\d+/commands$"), (555, r"^/applications/\d+/guilds/555/commands$")],
)
async def test_commands_sync_globally_or_to_one_guild(make_bot, discord_fake, guild, path):
    await make_bot(discord_guild_id=guild)
    puts = discord_fake.find("PUT", r"/commands$")
    assert len(puts) == 1 and re.search(path, puts[0].path)
    assert [c["name"] for c in puts[0].payload] == ["model", "models"]
