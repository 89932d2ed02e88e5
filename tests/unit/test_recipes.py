"""Recipe commands as strings a user runs: quoting, auth, seeds, options the bot cannot pass."""

from __future__ import annotations

import shlex

from image2model.core import recipes

LOCAL_DEFAULTS = {
    "face_limit": 10000,
    "inflation_depth": 0.75,
    "texture_size": 1024,
    "background_removal": "auto",
}


def local_recipe(**options: object) -> dict:
    return recipes.recipe("local", {**LOCAL_DEFAULTS, **options}, ["ab" * 32], {})


def test_curl_quotes_names_and_values_and_reads_the_key_from_the_environment() -> None:
    commands = recipes.commands(
        local_recipe(), base_url="http://h:8000/", images=["my chair.png"], formats=["glb", "stl"], auth=True,
        defaults=LOCAL_DEFAULTS,
    )  # fmt: skip
    words = shlex.split(commands["curl"])
    assert words[:5] == ["curl", "-sS", "--fail-with-body", "-X", "POST"]
    assert "Authorization: Bearer $IMAGE2MODEL_API_KEY" in commands["curl"]
    assert words[words.index("-F") + 1] == "files=@my chair.png"
    assert "generator=local" in words and "formats=glb,stl" in words and "face_limit=10000" in words
    assert words[-1] == "http://h:8000/api/v1/upload/"


def test_the_seed_that_was_used_is_sent_again_and_keeps_the_bot_out() -> None:
    recipe = recipes.recipe(
        "fal", {"seed": None, "texture": "HD"}, ["cd" * 32], {"seed": 42, "generator_version": "v2.5"}
    )
    assert recipe["seed"] == 42 and recipe["generator_version"] == "v2.5"
    commands = recipes.commands(
        recipe, base_url="http://h", images=["duck.jpg"], formats=["glb"], auth=False,
        defaults={"seed": None, "texture": "standard"},
    )  # fmt: skip
    assert "--form-string seed=42" in commands["curl"] and "seed=42" in commands["python"]
    assert commands["discord"] is None


def test_discord_only_when_every_other_option_is_the_default() -> None:
    plain = recipes.commands(
        local_recipe(face_limit=3000), base_url="http://h", images=["a.png", "view2.png"], formats=["stl"],
        auth=False, defaults=LOCAL_DEFAULTS,
    )  # fmt: skip
    assert (
        plain["discord"] == "/model image:a.png image2:view2.png generator:local face_limit:3000 format:stl"
    )
    assert "multiview=True" in plain["python"] and "--form-string multiview=true" in plain["curl"]
    deeper = recipes.commands(
        local_recipe(inflation_depth=1.5), base_url="http://h", images=["a.png"], formats=["glb"], auth=False,
        defaults=LOCAL_DEFAULTS,
    )  # fmt: skip
    assert deeper["discord"] is None and "inflation_depth=1.5" in deeper["python"]


def test_python_snippet_compiles_and_chains_the_export() -> None:
    commands = recipes.commands(
        local_recipe(), base_url="http://h", images=["a.png"], formats=["glb"], auth=False, defaults=LOCAL_DEFAULTS,
        export={"formats": ["stl"], "height_mm": 80.0, "up": "z", "origin": "bottom", "face_limit": None},
    )  # fmt: skip
    compile(commands["python"], "<recipe>", "exec")
    assert (
        "client.export(result.job_id, ['stl'], height_mm=80.0, up='z', origin='bottom')" in commands["python"]
    )


def test_multiview_sources_are_named_after_the_first_view() -> None:
    assert recipes.source_names("front.jpg", ["j/in/0.jpg", "j/in/1.png"]) == ["front.jpg", "view2.png"]
    assert recipes.recipe("local", {}, ["a", "b"], {})["source_sha256"] == ["a", "b"]
