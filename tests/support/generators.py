"""A test generator: real (tiny) GLB output, scripted delays and failures, so service tests control timing."""

from __future__ import annotations

import time

from image2model.core.errors import GenerationError
from image2model.core.generators import (
    GenerationRequest,
    GenerationResult,
    Generator,
    GeneratorSpec,
    OptionSpec,
    OutputFile,
    ProgressCallback,
)


class InstantGenerator(Generator):
    """Writes a box GLB sized like the input image's aspect ratio, plus a PNG preview."""

    spec = GeneratorSpec(
        name="instant",
        title="Instant test generator",
        description="Box meshes for tests; `delay` seconds per item, `fail` to fail on purpose.",
        formats=("glb", "stl"),
        default_formats=("glb",),
        options=(
            OptionSpec("face_limit", "int", 1000, "Most faces", minimum=12, maximum=200_000),
            OptionSpec("delay", "float", 0.0, "Seconds to spend per item", minimum=0, maximum=120),
            OptionSpec("steps", "int", 4, "Progress reports while waiting", minimum=1, maximum=100),
            OptionSpec("fail", "bool", False, "Fail with a user-facing error"),
        ),
    )

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
        import trimesh
        from PIL import Image

        from image2model.core.images import load_image

        image = load_image(request.images[0])
        width, height = image.size
        progress(0.05, "cutting out")
        steps = int(request.options["steps"])
        delay = float(request.options["delay"])
        for step in range(steps):
            if delay:
                time.sleep(delay / steps)
            progress(0.1 + 0.8 * (step + 1) / steps, "shaping")
        if request.options["fail"]:
            raise GenerationError("The test generator was asked to fail.", {"reason": "fail option"})
        progress(0.95, "exporting")
        mesh = trimesh.creation.box(extents=(width / max(width, height), height / max(width, height), 0.2))
        files = []
        for fmt in request.formats:
            path = request.out_dir / f"{request.basename}.{fmt}"
            mesh.export(path, file_type=fmt)
            files.append(OutputFile(path, fmt))
        preview = request.out_dir / f"{request.basename}.preview.png"
        Image.new("RGB", (64, 64), (200, 120, 40)).save(preview)
        files.append(OutputFile(preview, "png", role="preview"))
        return GenerationResult(
            files=files,
            metadata={"faces": len(mesh.faces), "input_size": [width, height], "options": request.options},
        )
