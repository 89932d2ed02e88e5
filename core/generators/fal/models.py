"""The FAL image-to-3D models we know how to drive: app ids, whitelisted options and how our options and
images map onto each model's input fields and back out of its result. Pure data; cheap to import."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from image2model.core.generators.base import OptionSpec

FORMATS = ("glb", "obj", "stl", "ply")

TRIPO_IMAGE = "tripo3d/tripo/v2.5/image-to-3d"
TRIPO_MULTIVIEW = "tripo3d/tripo/v2.5/multiview-to-3d"
TRIPO_VIEWS = ("front_image_url", "left_image_url", "back_image_url", "right_image_url")
"""Tripo's multi-view fields, in the order a job's views are taken (front first)."""

InputBuilder = Callable[[Sequence[str], Mapping[str, Any]], tuple[str, dict[str, Any]]]
"""(image references, checked options) -> (app id to submit to, FAL input arguments)."""


@dataclass(frozen=True)
class FalModel:
    """One FAL model (or family, like Tripo's single- and multi-view endpoints) behind one generator name."""

    name: str
    app_id: str
    title: str
    description: str
    options: tuple[OptionSpec, ...]
    build_input: InputBuilder
    mesh_keys: tuple[str, ...] = ("model_mesh",)
    """Result fields that may hold the mesh File, best first."""
    preview_keys: tuple[str, ...] = ()
    """Result fields that may hold FAL's rendered preview image."""
    max_images: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def _passthrough(options: Mapping[str, Any], rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options that are set (None means "let FAL choose"), renamed to the model's field names."""
    rename = rename or {}
    return {rename.get(k, k): v for k, v in options.items() if v is not None}


def _tripo_input(images: Sequence[str], options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    args = _passthrough(options)
    if len(images) == 1:
        return TRIPO_IMAGE, {"image_url": images[0], **args}
    views = dict(zip(TRIPO_VIEWS, images, strict=False))
    return TRIPO_MULTIVIEW, {**views, **args}


def _single(key: str, rename: Mapping[str, str] | None = None, fixed: Mapping[str, Any] | None = None):
    def build(images: Sequence[str], options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        return "", {key: images[0], **_passthrough(options, rename), **(fixed or {})}

    return build


def _rodin_input(images: Sequence[str], options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    return "", {"input_image_urls": list(images), **_passthrough(options), "geometry_file_format": "glb"}


def _trellis_input(images: Sequence[str], options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    args = _passthrough(options)
    if "texture_size" in args:
        args["texture_size"] = int(args["texture_size"])  # a choice of strings on our side, an int at FAL
    return "", {"image_url": images[0], **args}


_SEED = OptionSpec("seed", "int", None, "Random seed; empty lets FAL pick one.", 0, 2**31 - 1)

TRIPO_OPTIONS = (
    OptionSpec(
        "face_limit",
        "int",
        None,
        "Most faces in the model; empty lets Tripo choose adaptively.",
        500,
        500_000,
    ),
    OptionSpec(
        "texture",
        "choice",
        "standard",
        "Texture quality: no texture, standard or HD (HD costs more at FAL).",
        choices=("no", "standard", "HD"),
    ),
    OptionSpec("pbr", "bool", False, "Physically based materials (forces a texture)."),
    _SEED,
    OptionSpec("texture_seed", "int", None, "Seed of the texture; empty lets FAL pick one.", 0, 2**31 - 1),
    OptionSpec(
        "texture_alignment",
        "choice",
        "original_image",
        "Align the texture to the photo or to the geometry.",
        choices=("original_image", "geometry"),
    ),
    OptionSpec(
        "orientation",
        "choice",
        "default",
        "default, or align_image to turn the model like the object in the photo.",
        choices=("default", "align_image"),
    ),
    OptionSpec("auto_size", "bool", False, "Scale the model to real-world size in metres."),
)

TRIPO = FalModel(
    name="fal",
    app_id=TRIPO_IMAGE,
    title="Tripo3D v2.5 on FAL",
    description=(
        "Tripo3D v2.5 through FAL.AI (needs a FAL key; billed by FAL per model). One photo, or 2-4 views of one "
        "object (front, left, back, right) for the multi-view model. Full 3D shape with a generated back."
    ),
    options=TRIPO_OPTIONS,
    build_input=_tripo_input,
    mesh_keys=("pbr_model", "model_mesh", "base_model"),
    preview_keys=("rendered_image",),
    max_images=4,
)

OTHERS: tuple[FalModel, ...] = (
    FalModel(
        name="fal:fal-ai/hunyuan3d/v2",
        app_id="fal-ai/hunyuan3d/v2",
        title="Hunyuan3D 2.0 on FAL",
        description="Tencent Hunyuan3D 2.0 through FAL.AI (needs a FAL key).",
        options=(
            _SEED,
            OptionSpec("num_inference_steps", "int", 50, "Diffusion steps.", 1, 50),
            OptionSpec("guidance_scale", "float", 7.5, "Guidance scale.", 0.0, 20.0),
            OptionSpec("octree_resolution", "int", 256, "Marching-cubes grid resolution.", 64, 512),
            OptionSpec("textured_mesh", "bool", True, "Generate a texture (costs 3x at FAL)."),
        ),
        build_input=_single("input_image_url"),
    ),
    FalModel(
        name="fal:fal-ai/hunyuan3d-v3/image-to-3d",
        app_id="fal-ai/hunyuan3d-v3/image-to-3d",
        title="Hunyuan3D 3 on FAL",
        description="Tencent Hunyuan3D 3 through FAL.AI (needs a FAL key).",
        options=(
            OptionSpec("face_limit", "int", None, "Most faces; empty lets FAL choose.", 1000, 500_000),
            OptionSpec("pbr", "bool", False, "Physically based materials."),
            OptionSpec(
                "generate_type",
                "choice",
                "Normal",
                "Normal, LowPoly, or Geometry (untextured).",
                choices=("Normal", "LowPoly", "Geometry"),
            ),
        ),
        build_input=_single("input_image_url", {"face_limit": "face_count", "pbr": "enable_pbr"}),
        mesh_keys=("model_glb", "model_mesh"),
        preview_keys=("thumbnail",),
    ),
    FalModel(
        name="fal:fal-ai/trellis",
        app_id="fal-ai/trellis",
        title="TRELLIS on FAL",
        description="Microsoft TRELLIS through FAL.AI (needs a FAL key).",
        options=(
            _SEED,
            OptionSpec("ss_guidance_strength", "float", 7.5, "Sparse-structure guidance.", 0.0, 10.0),
            OptionSpec("ss_sampling_steps", "int", 12, "Sparse-structure steps.", 1, 50),
            OptionSpec("slat_guidance_strength", "float", 3.0, "Latent guidance.", 0.0, 10.0),
            OptionSpec("slat_sampling_steps", "int", 12, "Latent steps.", 1, 50),
            OptionSpec("mesh_simplify", "float", 0.95, "Fraction of faces removed.", 0.9, 0.98),
            OptionSpec("texture_size", "choice", "1024", "Texture size.", choices=("512", "1024", "2048")),
        ),
        build_input=_trellis_input,
    ),
    FalModel(
        name="fal:fal-ai/triposr",
        app_id="fal-ai/triposr",
        title="TripoSR on FAL",
        description="TripoSR through FAL.AI (needs a FAL key): fast, untextured-looking vertex-coloured meshes.",
        options=(
            OptionSpec("do_remove_background", "bool", True, "Cut the object out first."),
            OptionSpec("foreground_ratio", "float", 0.9, "Share of the frame the object fills.", 0.5, 1.0),
            OptionSpec("mc_resolution", "int", 256, "Marching-cubes resolution.", 32, 1024),
        ),
        build_input=_single("image_url", fixed={"output_format": "glb"}),
    ),
    FalModel(
        name="fal:fal-ai/hyper3d/rodin",
        app_id="fal-ai/hyper3d/rodin",
        title="Hyper3D Rodin on FAL",
        description="Hyper3D Rodin through FAL.AI (needs a FAL key); 1-5 views of one object.",
        options=(
            _SEED,
            OptionSpec("prompt", "str", None, "Optional text guiding the generation."),
            OptionSpec("material", "choice", "PBR", "Material kind.", choices=("PBR", "Shaded")),
            OptionSpec(
                "quality",
                "choice",
                "medium",
                "Mesh density.",
                choices=("high", "medium", "low", "extra-low"),
            ),
        ),
        build_input=_rodin_input,
        max_images=5,
    ),
)

MODELS: dict[str, FalModel] = {m.name: m for m in (TRIPO, *OTHERS)}
