"""A test generator: real (tiny) GLB output, scripted delays and failures, so service tests control timing."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from image2model.core.errors import GenerationError
from image2model.core.generators import (
    Fetched,
    GenerationRequest,
    GenerationResult,
    Generator,
    GeneratorSpec,
    Landed,
    OptionSpec,
    OutputFile,
    Pending,
    ProgressCallback,
    RemoteGenerator,
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
            OptionSpec("fail_on", "str", "", "Fail only the photos whose name contains this"),
        ),
    )

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, landed: Landed | None = None
    ) -> GenerationResult:
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
        if request.options["fail"] or (
            request.options["fail_on"] and request.options["fail_on"] in request.basename
        ):
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


class FakeRemoteGenerator(RemoteGenerator):
    """A stand-in for a paid remote API, kept in files so tests in other processes can count what it saw:
    `submitted/<id>` per submission, `cancelled/<id>` per cancel. Work finishes `seconds` after submission."""

    spec = GeneratorSpec(
        name="remote-test",
        title="Remote test service",
        description="Pretends to be a remote API; `seconds` of remote work per item.",
        formats=("glb",),
        default_formats=("glb",),
        options=(OptionSpec("seconds", "float", 1.0, "Remote work time", minimum=0, maximum=600),),
        max_images_per_item=4,
        queue="io",
    )
    in_flight_group = "remote-test"

    def __init__(self) -> None:
        self.root = Path(os.environ.get("IMAGE2MODEL_DATA_DIR", ".")) / "fake-remote"
        (self.root / "submitted").mkdir(parents=True, exist_ok=True)
        (self.root / "cancelled").mkdir(parents=True, exist_ok=True)

    def max_in_flight(self) -> int:
        return int(os.environ.get("FAKE_REMOTE_MAX_IN_FLIGHT", "0"))

    def start(self, request: GenerationRequest) -> dict:
        request_id = uuid.uuid4().hex
        views = len(request.images)
        # Written aside, then moved in: readers in other processes see whole files only.
        pending = self.root / f".{request_id}"
        pending.write_text(json.dumps({"views": views, "t": time.time()}))
        pending.replace(self.root / "submitted" / request_id)
        return {"request_id": request_id, "submitted_at": time.time(), "views": views}

    def poll(self, request: GenerationRequest, state: dict, progress: ProgressCallback) -> Pending | Fetched:
        elapsed = time.time() - state["submitted_at"]
        seconds = float(request.options["seconds"])
        if elapsed < seconds:
            return Pending(
                min(0.9, elapsed / max(seconds, 1e-6)), "generating remotely", delay=0.2, state=state
            )
        import trimesh

        request.out_dir.mkdir(parents=True, exist_ok=True)
        path = request.out_dir / f"{request.basename}.glb"
        trimesh.creation.box().export(path, file_type="glb")
        metadata = {"request_id": state["request_id"], "views": state["views"]}
        return Fetched([OutputFile(path, "glb")], {**state, "metadata": metadata})

    def cancel(self, state: dict) -> None:
        (self.root / "cancelled" / state["request_id"]).write_text("cancelled")
