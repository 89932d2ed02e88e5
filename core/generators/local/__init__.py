"""The embedded offline generator: one photo → textured, watertight 3D model on the CPU in a fraction of a second.

Importing this module is cheap (the API imports `spec` only); numpy, scipy, OpenCV and the pipeline load in
`warm_up` or on the first `generate`."""

from __future__ import annotations

from image2model.core.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    GeneratorSpec,
    Landed,
    OptionSpec,
    ProgressCallback,
)

FORMATS = ("glb", "obj", "stl", "ply")

SPEC = GeneratorSpec(
    name="local",
    title="Local (offline, CPU)",
    description=(
        "Turns the object in a photo into a textured, watertight solid, offline on the CPU in well under a "
        "second. It cuts the object out (transparency, the plain backdrop, or a learned segmenter for white-on-"
        "white, busy or close-up shots) and keeps it in one piece; round things (bottles, vases, glasses, cans, "
        "lamps, a mug's body) become surfaces of revolution, everything else an inflated silhouette. A flat bottom "
        "becomes a flat base the model stands on. The back mirrors the front only for side-on shots (a shoe, an "
        "animal in profile); otherwise it carries the front's colours without copied detail. The cut-out is "
        "offered as an RGBA PNG next to the previews. With multiview=true and 2-4 photos of one object (front, "
        "left, back, right: turned a quarter turn clockwise between shots) it carves the shape every outline "
        "allows, rounds the parts the photos show as curved, and textures each side from its own photo; hollows "
        "no outline shows (the inside of a cup) stay filled."
    ),
    formats=FORMATS,
    default_formats=FORMATS,
    options=(
        OptionSpec("face_limit", "int", 10000, "Maximum number of triangles in the model.", 48, 200000),
        OptionSpec(
            "inflation_depth",
            "float",
            0.75,
            "How thick the model is: 1.0 turns a disk into a sphere, smaller values flatten it (one photo only: "
            "several views give the real depth).",
            0.1,
            3.0,
        ),
        OptionSpec("texture_size", "int", 1024, "Longest side of the texture image in pixels.", 64, 2048),
        OptionSpec(
            "background_removal",
            "choice",
            "auto",
            "auto: use transparency if present, else detect the backdrop, and use the learned segmenter whenever "
            "that cut is doubtful (several pieces, an edge like the backdrop, the object touching the frame, a "
            "failed check); learned: always use the learned segmenter (the `segment` extra, ~0.5 s); alpha: use "
            "the PNG's transparency only; off: keep the whole photo (makes a flat plaque).",
            choices=("auto", "learned", "alpha", "off"),
        ),
        OptionSpec(
            "shape",
            "choice",
            "auto",
            "auto: a surface of revolution for silhouettes that are mirror-symmetric with one run per row (bottles, "
            "vases, glasses; a mug's body, its handle inflated), else inflate; inflate: always inflate the "
            "silhouette; revolve: make every horizontal slice round.",
            choices=("auto", "inflate", "revolve"),
        ),
    ),
    max_images_per_item=4,
)


class LocalGenerator(Generator):
    """One photo: cut-out, then a surface of revolution or an inflated silhouette (see `pipeline`); several views
    of one object: silhouette carving (see `multiview`)."""

    spec = SPEC

    def warm_up(self) -> None:
        from image2model.core.generators.local import multiview, pipeline

        pipeline.warm_up()
        multiview.warm_up()

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, landed: Landed | None = None
    ) -> GenerationResult:
        if len(request.images) > 1:
            from image2model.core.generators.local import multiview

            return multiview.run(request, progress, landed)
        from image2model.core.generators.local import pipeline

        return pipeline.run(request, progress, landed)


__all__ = ["SPEC", "LocalGenerator"]
