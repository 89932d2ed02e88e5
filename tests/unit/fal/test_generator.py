"""FAL generator against the fake FAL: registry, happy paths, argument mapping, resume and cancel."""

from __future__ import annotations

import json
import subprocess
import sys

import trimesh
from PIL import Image

from image2model.core.generators import generator_classes
from image2model.core.generators.base import Fetched, GenerationResult, OutputFile, Pending
from image2model.core.generators.fal import GENERATORS, available_generators
from image2model.core.settings import Settings
from tests.fakes.fal_server import FakeFal
from tests.unit.fal.conftest import KEY, fal_settings, no_progress


def test_no_key_offers_no_generators() -> None:
    settings = Settings().model_copy(update={"fal_key": ""})
    assert available_generators(settings) == []
    assert not [name for name in generator_classes(settings) if name.startswith("fal")]


def test_key_offers_tripo_and_the_model_table() -> None:
    settings = fal_settings("http://127.0.0.1:9")
    names = {cls.spec.name for cls in available_generators(settings)}
    assert {
        "fal",
        "fal:fal-ai/hunyuan3d/v2",
        "fal:fal-ai/trellis",
        "fal:fal-ai/triposr",
        "fal:fal-ai/hyper3d/rodin",
    } <= names
    assert "fal:unknown/model" not in generator_classes(settings)
    tripo = GENERATORS["fal"]
    assert tripo.spec.queue == "io" and tripo.in_flight_group == "fal"
    assert tripo.spec.max_images_per_item == 4
    assert tripo.spec.formats == ("glb", "obj", "stl", "ply")
    assert tripo(settings).max_in_flight() == 3
    assert tripo.spec.option("texture").choices == ("no", "standard", "HD")  # type: ignore[union-attr]


def test_importing_the_package_loads_no_heavy_library() -> None:
    code = (
        "import sys, image2model.core.generators.fal as f; "
        "print([m for m in ('fal_client', 'numpy', 'trimesh', 'httpx') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_single_image_makes_every_format_and_keeps_fals_preview(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    gen = make_generator()
    request = request_for(
        gen, images[:1], ("glb", "obj", "stl", "ply"), texture="HD", seed=7, face_limit=20000
    )
    messages: list[str] = []
    result = gen.generate(request, lambda f, m: messages.append(m))
    assert isinstance(result, GenerationResult)
    names = sorted(f.path.name for f in result.files)
    assert names == sorted(["model.glb", "model.obj.zip", "model.stl", "model.ply", "model.preview.png"])
    for f in result.files:
        assert f.path.parent == request.out_dir and f.path.stat().st_size > 0
    with Image.open(request.out_dir / "model.preview.png") as shown:  # FAL's rendering, not one of ours
        assert shown.size == (64, 64) and shown.convert("RGB").getpixel((3, 3)) == (90, 140, 220)
    assert len(trimesh.load(request.out_dir / "model.stl").faces) == 4
    assert "queued at FAL, position 0" in messages and any(m.startswith("generating") for m in messages)
    # What FAL got: our key, the whitelisted options under Tripo's names, the image inline.
    (job,) = fake.job_list()
    assert job["auth"] == f"Key {KEY}"
    assert job["app"] == "tripo3d/tripo/v2.5/image-to-3d"
    args = job["arguments"]
    assert (
        args["texture"] == "HD" and args["seed"] == 7 and args["face_limit"] == 20000 and args["pbr"] is False
    )
    assert "texture_seed" not in args  # unset options are left to FAL
    assert job["images"]["image_url"]["source"] == "data_uri"
    assert fake.requests("upload") == []
    # Listings never point at FAL: nothing in the metadata is a URL.
    meta = result.metadata
    assert "http" not in json.dumps(meta)
    assert meta["fal"]["request_id"] == job["id"] and meta["fal"]["metrics"]["inference_time"] == 1.25
    assert meta["faces"] == 4 and meta["textured"] is True


def fetch(gen, request, seen=None) -> Fetched:
    state = gen.start(request)
    for _ in range(20):
        outcome = (
            gen.poll(request, state, no_progress)
            if seen is None
            else gen.poll(request, state, no_progress, seen)
        )
        if isinstance(outcome, Fetched):
            return outcome
        state = outcome.state
    raise AssertionError("never fetched")


def test_a_fetched_glb_is_a_result_at_once_and_with_fals_preview_nothing_is_left(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    gen = make_generator()
    fetched = fetch(gen, request_for(gen, images[:1], ("glb",)))
    assert fetched.complete and [f.path.name for f in fetched.outputs] == ["model.glb", "model.preview.png"]
    meta = fetched.state["metadata"]
    assert (meta["faces"], meta["vertices"], meta["textured"]) == (
        4,
        4,
        True,
    )  # read without loading the mesh
    assert meta["fal"]["preview"] == "fal"


def test_other_formats_land_one_by_one_after_the_glb_is_listed(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    gen = make_generator()
    request = request_for(gen, images[:1], ("glb", "stl", "ply"))
    fetched = fetch(gen, request)
    assert not fetched.complete and [f.path.name for f in fetched.outputs] == [
        "model.glb",
        "model.preview.png",
    ]
    landed: list[OutputFile] = []
    result = gen.finish(request, fetched.state, fetched.files, no_progress, landed.append)
    assert [f.path.name for f in landed] == ["model.stl", "model.ply"]  # FAL's preview stands in for ours
    assert sorted(f.path.name for f in result.files) == sorted(
        ["model.glb", "model.stl", "model.ply", "model.preview.png"]
    )


def test_without_fals_preview_ours_are_rendered_after_the_model(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    gen = make_generator("fal:fal-ai/trellis")
    request = request_for(gen, images[:1], ("glb",))
    fetched = fetch(gen, request)
    assert not fetched.complete and [f.path.name for f in fetched.outputs] == ["model.glb"]
    landed: list[OutputFile] = []
    result = gen.finish(request, fetched.state, fetched.files, no_progress, landed.append)
    assert [f.path.name for f in landed] == [
        "model.preview.png",
        "model.turntable.webp",
        "model.turntable.gif",
    ]
    assert {f.path.name for f in result.files} == {f.path.name for f in landed} | {"model.glb"}
    assert result.metadata["fal"]["preview"] == "ours"


def test_a_pushed_status_is_used_instead_of_asking(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    from fal_client import Completed, InProgress

    fake.script({"stuck": True})
    gen = make_generator(fal_stream_check_interval=4.0)
    request = request_for(gen, images[:1])
    state = gen.start(request)
    before = len(fake.requests("status"))
    pending = gen.poll(request, state, no_progress, InProgress(logs=[{"message": "Meshing"}]))
    assert isinstance(pending, Pending) and pending.message == "generating: Meshing"
    assert pending.delay == 4.0  # the stream tells us of changes: routine looks can be rare
    assert len(fake.requests("status")) == before
    fake.complete(state["request_id"])
    assert isinstance(
        gen.poll(request, pending.state, no_progress, Completed(logs=None, metrics={})), Fetched
    )
    assert len(fake.requests("status")) == before  # straight to the result


def test_status_polls_ask_for_logs_and_carry_the_key(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    gen = make_generator()
    gen.generate(request_for(gen, images[:1]), no_progress)
    polls = fake.requests("status")
    assert polls and all(r["query"]["logs"] == "true" or r["query"]["logs"] == "false" for r in polls)
    assert polls[0]["query"]["logs"] == "true"
    assert {r["auth"] for r in fake.requests()} - {None} == {f"Key {KEY}"}
    assert not [r for r in fake.requests("file") if r["auth"]]  # the key never goes to file hosts


def test_multiview_goes_to_the_multiview_model(fake: FakeFal, make_generator, request_for, images) -> None:
    gen = make_generator()
    result = gen.generate(request_for(gen, images[:3]), no_progress)
    (job,) = fake.job_list()
    assert job["app"] == "tripo3d/tripo/v2.5/multiview-to-3d"
    assert set(job["images"]) == {"front_image_url", "left_image_url", "back_image_url"}
    assert result.metadata["fal"]["inputs"] == ["data_uri"] * 3


def test_large_images_go_through_fal_upload(fake: FakeFal, make_generator, request_for, images) -> None:
    gen = make_generator()
    gen.data_uri_limit = 100
    gen.generate(request_for(gen, images[:2]), no_progress)
    (job,) = fake.job_list()
    assert {v["source"] for v in job["images"].values()} == {"upload"}
    assert len(fake.requests("upload")) == 2 and len(fake.requests("token")) == 1
    assert job["images"]["front_image_url"]["bytes"] == images[0].stat().st_size


def _args_for(fake: FakeFal, make_generator, request_for, images, name: str, n: int = 1, **options):
    gen = make_generator(name)
    result = gen.generate(request_for(gen, images[:n], ("glb", "ply"), **options), no_progress)
    (job,) = fake.job_list()
    return job, result


def test_hunyuan_v2_mapping(fake, make_generator, request_for, images) -> None:
    job, _ = _args_for(
        fake, make_generator, request_for, images, "fal:fal-ai/hunyuan3d/v2", textured_mesh=False
    )
    assert job["app"] == "fal-ai/hunyuan3d/v2"
    assert "input_image_url" in job["images"] and job["arguments"]["textured_mesh"] is False


def test_hunyuan_v3_mapping_and_model_glb_output(fake, make_generator, request_for, images) -> None:
    job, result = _args_for(
        fake,
        make_generator,
        request_for,
        images,
        "fal:fal-ai/hunyuan3d-v3/image-to-3d",
        face_limit=40000,
        pbr=True,
    )
    assert job["arguments"]["face_count"] == 40000 and job["arguments"]["enable_pbr"] is True
    assert result.metadata["fal"]["mesh_field"] == "model_glb"


def test_trellis_texture_size_is_sent_as_a_number(fake, make_generator, request_for, images) -> None:
    job, result = _args_for(
        fake, make_generator, request_for, images, "fal:fal-ai/trellis", texture_size=2048
    )
    assert job["arguments"]["texture_size"] == 2048
    assert "seed" not in job["arguments"]
    assert result.metadata["fal"]["timings"] == {"prepare": 0.1, "generation": 1.0}


def test_triposr_always_asks_for_glb(fake, make_generator, request_for, images) -> None:
    job, _ = _args_for(fake, make_generator, request_for, images, "fal:fal-ai/triposr")
    assert job["arguments"]["output_format"] == "glb"


def test_rodin_takes_a_list_of_views(fake, make_generator, request_for, images) -> None:
    job, _ = _args_for(
        fake, make_generator, request_for, images, "fal:fal-ai/hyper3d/rodin", n=2, quality="low"
    )
    assert set(job["images"]) == {"input_image_urls[0]", "input_image_urls[1]"}
    assert job["arguments"]["geometry_file_format"] == "glb" and job["arguments"]["quality"] == "low"


def test_a_new_worker_resumes_the_stored_request_without_resubmitting(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.script({"queue_polls": 2, "progress_polls": 2})
    first = make_generator()
    request = request_for(first, images[:1])
    state = json.loads(json.dumps(first.start(request)))  # what the service persists
    assert {"request_id", "app_id", "submitted_at", "deadline_at"} <= set(state)
    outcome = first.poll(request, state, no_progress)
    assert isinstance(outcome, Pending) and outcome.message == "queued at FAL, position 1"
    state = outcome.state
    second = make_generator()  # another worker process after a crash
    for _ in range(10):
        outcome = second.poll(request, state, no_progress)
        if isinstance(outcome, Fetched):
            break
        state = json.loads(json.dumps(outcome.state))
        assert outcome.delay == 0.01
    assert isinstance(outcome, Fetched)
    assert [f.format for f in outcome.files] == ["glb", "png"] and outcome.complete
    assert json.loads(json.dumps(outcome.state))["metadata"]["fal"]["request_id"] == state["request_id"]
    assert len(fake.requests("submit")) == 1


def test_cancel_reaches_fal_and_ignores_errors(fake: FakeFal, make_generator, request_for, images) -> None:
    fake.script({"stuck": True})
    gen = make_generator()
    state = gen.start(request_for(gen, images[:1]))
    gen.cancel(state)
    (job,) = fake.job_list()
    assert job["cancelled"] is True
    gen.cancel(state)  # already completed: FAL answers 400, ignored
    gen.cancel({**state, "request_id": "no-such-request"})  # 404, ignored
    make_generator(base_url="http://127.0.0.1:9").cancel(state)  # refused connection, ignored


def test_warm_up_loads_what_a_result_needs_before_the_first_one() -> None:
    code = (
        "import sys; from image2model.core.generators.fal import GENERATORS; "
        "from tests.unit.fal.conftest import fal_settings; "
        "GENERATORS['fal'](fal_settings('http://127.0.0.1:9')).warm_up(); "
        "print(sorted(m for m in ('fal_client', 'numpy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['PIL', 'fal_client', 'numpy']"
