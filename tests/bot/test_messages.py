"""The bot's pure logic, without Discord: a job's view as the reply's text, limits, ids, delivery."""

from __future__ import annotations

import re

import pytest

from image2model.bot.messages import (
    UPLOAD_MARGIN,
    EditThrottle,
    Stage,
    UserLimits,
    attachment_problem,
    choose_delivery,
    error_text,
    face_limit_presets,
    job_stage,
    make_custom_id,
    parse_custom_id,
    pick_preview,
    progress_text,
    stage_for,
    stage_text,
)
from tests.support.recordings import NAMES, load

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("content_type", "size", "expected"),
    [
        ("image/png", 1000, None),
        ("image/jpeg; charset=binary", 1000, None),
        ("image/webp", 10 * MiB, None),
        ("image/gif", 1000, "image/gif"),
        (None, 1000, "unknown type"),
        ("image/png", 0, "empty"),
        ("image/png", 10 * MiB + 1, "up to 10.0 MiB"),
    ],
)
def test_attachment_problem(content_type, size, expected):
    problem = attachment_problem("x.png", content_type, size, 10 * MiB)
    assert problem is None if expected is None else expected in problem


@pytest.mark.parametrize(
    ("message", "stage"),
    [
        ("reading image", Stage.CUTTING_OUT),
        ("cutting out", Stage.CUTTING_OUT),
        ("shaping", Stage.SHAPING),
        ("texturing", Stage.TEXTURING),
        ("exporting", Stage.EXPORTING),
        ("rendering turntable", Stage.EXPORTING),
        ("queued at FAL, position 3", None),
    ],
)
def test_stage_for(message, stage):
    assert stage_for(message) == stage


@pytest.mark.parametrize("name", NAMES)
def test_the_reply_renders_each_recorded_stream(name):
    """The same recorded streams every client renders: from the queue through the stages to how it ended."""
    rec = load(name)
    texts = [progress_text(v) for v in rec.views()]
    assert texts[0] == "⏳ Queued…"
    assert (
        texts[-1]
        == {"completed": "✅ Done.", "failed": "❌ Failed.", "cancelled": "🛑 Cancelled."}[
            rec.events[-1].data["status"]
        ]
    )
    shown = _edits(texts)
    assert all(t.startswith(("⏳", "⚙️", "✂️", "🧱", "🎨", "📦", "🔁", "✅", "❌", "🛑")) for t in shown), shown
    positions = [v.queue_position for v in rec.views() if v.queue_position]
    assert [t for t in shown if "position" in t] == [
        f"⏳ Queued (position {p})…" for p in dict.fromkeys(positions)
    ]


def _edits(texts):
    """The texts in a row that differ from the one before (what the reply is edited to)."""
    return [t for n, t in enumerate(texts) if n == 0 or t != texts[n - 1]]


def test_the_local_generators_words_become_the_replys_stages_in_order():
    shown = _edits([progress_text(v) for v in load("local_one_photo").views()])
    assert shown == [
        "⏳ Queued…",
        "⏳ Queued (position 1)…",
        stage_text(Stage.GENERATING),
        stage_text(Stage.CUTTING_OUT),
        stage_text(Stage.SHAPING),
        stage_text(Stage.TEXTURING),
        stage_text(Stage.EXPORTING),
        "✅ Done.",
    ]


def test_a_retry_after_a_worker_crash_says_so():
    texts = [progress_text(v) for v in load("retried_after_a_worker_crash").views()]
    retry = texts.index(stage_text(Stage.RETRYING))
    assert texts[retry - 1] == stage_text(Stage.SHAPING) and texts[retry + 1] == stage_text(Stage.GENERATING)
    assert job_stage(load("retried_after_a_worker_crash").views()[-1]) == Stage.COMPLETED


def test_edit_throttle_sends_new_text_at_most_once_per_interval():
    t = EditThrottle(2.0)
    assert t.wait_for("a", 100.0) == 0.0
    t.sent("a", 100.0)
    assert t.wait_for("a", 105.0) is None  # unchanged text is never re-sent
    assert t.wait_for("b", 100.5) == pytest.approx(1.5)
    assert t.wait_for("b", 102.0) == 0.0


@pytest.mark.parametrize(
    ("model", "preview", "limit", "attach_preview", "attach_model"),
    [
        (1 * MiB, 2 * MiB, 10 * MiB, True, True),
        (9 * MiB, 2 * MiB, 10 * MiB, True, False),  # the preview wins the space
        (9 * MiB, None, 10 * MiB, False, True),
        (10 * MiB - UPLOAD_MARGIN, None, 10 * MiB, False, True),  # exactly fits
        (10 * MiB - UPLOAD_MARGIN + 1, None, 10 * MiB, False, False),
        (1 * MiB, 30 * MiB, 25 * MiB, False, True),
        (40 * MiB, 2 * MiB, 50 * MiB, True, True),  # a boosted guild's limit
    ],
)
def test_choose_delivery(model, preview, limit, attach_preview, attach_model):
    d = choose_delivery(model, preview, limit)
    assert (d.attach_preview, d.attach_model, d.link_model) == (
        attach_preview,
        attach_model,
        not attach_model,
    )


def test_pick_preview_prefers_the_gif_turntable():
    assert pick_preview({"png": "p", "gif": "g", "webp": "w"}) == "gif"
    assert pick_preview(["webp", "png"]) == "png"
    assert pick_preview({}) is None


def test_custom_ids_round_trip_and_reject_others():
    job = "1b2ab31e-6ec2-4fff-8761-6cbd047656ea"
    for action in ("fmt", "rerun", "del"):
        value = make_custom_id(action, job, 111111111111111111)
        assert len(value) <= 100
        parsed = parse_custom_id(value)
        assert (parsed.action, parsed.job_id, parsed.owner_id) == (action, job, 111111111111111111)
    for bad in ("i2m:zap:abc:1", "i2m:del:abc", "i2m:del:a/b:1", "other:del:abc:1", "i2m:del:abc:1x"):
        assert parse_custom_id(bad) is None
    with pytest.raises(ValueError):
        make_custom_id("del", "../etc", 1)


def test_user_limits_running_jobs_cooldown_and_forgotten_starts():
    limits = UserLimits(max_jobs=1, cooldown=30.0)
    assert limits.refusal(1, 0.0) is None
    previous = limits.start(1, 0.0)
    assert "already have a model" in limits.refusal(1, 1.0)
    assert limits.refusal(2, 1.0) is None  # per user
    limits.finish(1)
    assert "Slow down" in limits.refusal(1, 10.0) and "20 s" in limits.refusal(1, 10.0)
    assert limits.refusal(1, 30.0) is None
    limits.forget_start(1, previous)  # a refused request leaves no cooldown behind
    assert limits.refusal(1, 10.0) is None


def test_face_limit_presets_stay_in_range_and_skip_the_current():
    assert face_limit_presets(2000, 48, 200_000) == [500, 5000, 10000, 20000, 50000, 100000]
    assert face_limit_presets(None, 1000, 20_000) == [2000, 5000, 10000, 20000]


def test_error_text_hides_transport_details_and_keeps_validation_messages():
    assert "127.0.0.1" not in error_text("SERVER_UNAVAILABLE", "Cannot reach http://127.0.0.1:8000")
    assert "face_limit must be" in error_text("VALIDATION_ERROR", "face_limit must be ≥ 12")
    assert "API key" in error_text("UNAUTHORIZED", "bad key sk-123")
    assert "sk-123" not in error_text("UNAUTHORIZED", "bad key sk-123")
    assert "try again later" in error_text("INTERNAL_ERROR", "Traceback ...")


def test_export_menu_entries_become_the_exports_request():
    from image2model.bot.messages import ExportChoice, export_choice, export_label

    assert export_choice("print", 0) == ExportChoice(["stl"], None, 80, "z", "bottom")
    assert export_choice("3mf", 20000) == ExportChoice(["3mf"], 20000)
    assert export_label("print") == "For printing: STL, mm (80 mm tall), Z up"
    with pytest.raises(ValueError):
        export_choice("fbx", 0)


def test_export_views_and_pick_custom_ids_fit_discord_and_their_templates():
    from image2model.bot.messages import (
        EXPORT_TEMPLATE,
        PICK_TEMPLATE,
        VIEWS_TEMPLATE,
        export_custom_id,
        pick_custom_id,
        views_custom_id,
    )

    job, owner = "1b2ab31e-6ec2-4fff-8761-6cbd047656ea", 111111111111111111
    value = export_custom_id(job, owner, "print", 1_000_000)
    assert len(value) <= 100
    match = re.fullmatch(EXPORT_TEMPLATE, value)
    assert (match["job"], match["owner"], match["kind"], match["faces"]) == (
        job,
        str(owner),
        "print",
        "1000000",
    )
    assert (
        re.fullmatch(VIEWS_TEMPLATE, views_custom_id("pending-0123456789abcdef", owner, "each"))["mode"]
        == "each"
    )
    assert re.fullmatch(PICK_TEMPLATE, pick_custom_id(owner))["owner"] == str(owner)
    for bad in (lambda: export_custom_id(job, owner, "fbx", 0), lambda: views_custom_id(job, owner, "all")):
        with pytest.raises(ValueError):
            bad()


def test_attachments_fit_in_order_until_one_does_not():
    from image2model.bot.messages import fit_count

    assert fit_count([400, 500, 200], 1000) == 2  # the third would fit alone, but files go in order
    assert fit_count([1001], 1000) == 0 and fit_count([], 1000) == 0 and fit_count([0, 10], 1000) == 0


def test_the_picked_option_of_a_select():
    from image2model.bot.messages import picked

    assert picked({"values": ["stl"], "custom_id": "x"}) == "stl"
    assert picked({"values": []}) == "" and picked(None) == "" and picked({"custom_id": "x"}) == ""
