"""Local generator quality on photos: a table and a contact sheet of renders to look at.

Photos: the drawn shots with true masks (`studio.SHOTS` and `studio.SCENES`, saved as JPEG q90 at 1024 px) and the
real public-domain photos the scikit-image wheel ships in `skimage/data` (read as files from the installed wheel, no
network; the dev extra installs it). For each photo the whole item runs as a worker runs it (every format, previews,
cut-out PNG), warm, median of `--repeat` runs.

Table: cut-out method, IoU of the model's front silhouette against the TRUE mask (drawn shots), pieces of the model,
depth / width, base footprint (share of width × depth it stands on), shape and back chosen, and seconds per stage.
Contact sheet: input, cut-out, then front, 3/4, side, top and back renders per photo, written to
bench/out/quality_sheet.png (not committed).

Usage: python bench/quality.py [--repeat 3] [--face-limit 10000] [--only NAME ...] [--no-real] [--cores 1]
No asserts and no targets: it reports, for a person to read and look at.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
REAL = {
    "astronaut": "astronaut.png",  # NASA, public domain: a portrait cut by the frame
    "chelsea": "chelsea.png",  # a cat filling the photo
    "coffee": "coffee.png",  # a cup on a saucer on a wooden table
    "motorcycle": "motorcycle_left.png",  # a motorcycle in a cluttered garage
    "camera": "camera.png",  # a photographer with a tripod, greyscale
    "horse": "horse.png",  # a black horse silhouette on white
}
VIEWS = (("front", 0, 0), ("3/4", 35, 20), ("side", 90, 0), ("top", 0, 89), ("back", 180, 0))
TILE = 192


def _pin(cores: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(cores)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))


def _photos(args: argparse.Namespace, tmp: Path) -> list[tuple[str, Path, object]]:
    from PIL import Image

    from image2model.core.generators.local import studio

    photos: list[tuple[str, Path, object]] = []
    for name, draw in {**studio.SHOTS, **studio.SCENES}.items():
        if args.only and name not in args.only:
            continue
        shot = draw(1024)
        path = tmp / (f"{name}.png" if shot.image.mode == "RGBA" else f"{name}.jpg")
        shot.image.save(path, quality=90)
        photos.append((name, path, shot.truth))
    if args.no_real:
        return photos
    try:
        from importlib.resources import files

        data = files("skimage") / "data"
    except ModuleNotFoundError:
        print("scikit-image is not installed (pip install -e '.[dev]'): real photos skipped")
        return photos
    for name, filename in REAL.items():
        if args.only and name not in args.only:
            continue
        source = data / filename
        if not source.is_file():
            print(f"{filename} is not in this scikit-image wheel: skipped")
            continue
        with Image.open(str(source)) as im:
            image = im.convert("RGBA" if im.mode in ("RGBA", "LA") else "RGB")
        path = tmp / (f"{name}.png" if image.mode == "RGBA" else f"{name}.jpg")
        image.save(path, quality=95)
        photos.append((name, path, None))
    return photos


def _label(img, text: str):
    from PIL import ImageDraw

    ImageDraw.Draw(img).text((4, 2), text, fill=(20, 20, 20))
    return img


def _tile_of(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGBA")
        im.thumbnail((TILE, TILE))
        board = Image.new("RGBA", (TILE, TILE), (255, 255, 255, 255))
        checker = Image.new("RGBA", (TILE, TILE), (205, 205, 205, 255))
        mask = Image.new("L", (TILE, TILE), 0)
        for y in range(0, TILE, 12):
            for x in range(0, TILE, 12):
                if (x // 12 + y // 12) % 2:
                    mask.paste(255, (x, y, x + 12, y + 12))
        board.paste(checker, (0, 0), mask)
        board.alpha_composite(im, ((TILE - im.width) // 2, (TILE - im.height) // 2))
        return board.convert("RGB")


def _stretch(model) -> tuple[float, float]:
    """Share of the model's surface that shows photo texels stretched 2× or more by the front projection (|n_z| ≤
    0.5), now (only faces on the photo tile, where the photo still dominates the wall colour) and with the plain
    projection everywhere (every face)."""
    import numpy as np

    from image2model.core.generators.local import texturing
    from image2model.core.mesh.model import face_normals

    v, f = model.closed
    n = face_normals(v, f)
    area = np.linalg.norm(n, axis=1)
    nz = np.abs(n[:, 2]) / np.maximum(area, 1e-30)
    stretched = nz <= 0.5
    lo, hi = texturing.WALL_NZ
    photo_dominates = nz > (lo + hi) / 2
    on_photo = texturing.face_tiles(v, f, model.figures["back"] == "mirrored") == 0
    total = float(area.sum()) or 1.0
    return float(area[stretched & on_photo & photo_dominates].sum()) / total, float(
        area[stretched].sum()
    ) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--face-limit", type=int, default=10000)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--cores", type=int, default=1)
    args = parser.parse_args()
    _pin(args.cores)

    import resource

    import cv2
    import numpy as np
    from PIL import Image

    cv2.setNumThreads(args.cores)
    from image2model.core.generators.base import GenerationRequest
    from image2model.core.generators.local import LocalGenerator, pipeline
    from image2model.core.images import load_image
    from image2model.core.mesh import preview

    gen = LocalGenerator()
    gen.warm_up()
    tmp = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    rows, sheet_rows = [], []
    for name, path, truth in _photos(args, tmp):
        totals, stages = [], {}
        for k in range(args.repeat):
            out = tmp / f"{name}-{k}"
            request = GenerationRequest(
                [path], {"face_limit": args.face_limit}, ["glb", "obj", "stl", "ply"], out, name
            )
            start = time.perf_counter()
            result = gen.generate(request, lambda f, s: None)
            totals.append(time.perf_counter() - start)
            for stage, ms in result.metadata["timings_ms"].items():
                stages.setdefault(stage, []).append(ms)
        meta = result.metadata
        model = pipeline.build_model(load_image(path), {"face_limit": args.face_limit}, lambda f, s: None)
        true_iou = None
        if truth is not None:
            v, f = model.closed
            true_iou = pipeline.silhouette_iou(v, f, np.asarray(truth, bool))
        med = {k: statistics.median(v) for k, v in stages.items()}
        rows.append((name, meta, true_iou, statistics.median(totals), med, _stretch(model)))
        renderer = preview.Renderer(model.preview_mesh)
        tiles = [
            _label(_tile_of(path), name),
            _label(_tile_of(out / f"{name}.cutout.png"), meta["cutout"]["method"]),
        ]
        for view, yaw, pitch in VIEWS:
            tiles.append(_label(Image.fromarray(renderer.render(TILE, yaw, pitch)), view))
        sheet_rows.append(tiles)

    print(
        f"\nface_limit {args.face_limit}; warm; median of {args.repeat}; times in ms; IoU = model silhouette vs TRUE mask"
    )
    head = (
        f"{'photo':<17}{'cutout':<9}{'IoU':>6}{'pieces':>7}{'d/w':>6}{'base':>6}{'str2x':>12}  {'shape':<16}{'back':<9}"
        f"{'cut':>6}{'shape':>6}{'tex':>5}{'glb':>5}{'prev':>6}{'cut.png':>8}{'item':>6}  warning"
    )
    print(head)
    for name, meta, true_iou, total, med, stretch in rows:
        iou = f"{true_iou:.3f}" if true_iou is not None else "  –  "
        previews = med.get("preview_png", 0) + med.get("turntable", 0)
        shape_ms = med.get("plan", 0) + med.get("shape", 0) + med.get("photo_check", 0)
        warning = (meta.get("warning") or "")[:60]
        print(
            f"{name:<17}{meta['cutout']['method']:<9}{iou:>6}{meta['pieces']:>7}{meta['depth_width']:>6.2f}"
            f"{meta['base_footprint']:>6.2f}{stretch[0]:>6.0%}/{stretch[1]:<5.0%}  {meta['shape']:<16}{meta['back']:<9}{med.get('cutout', 0):>6.0f}"
            f"{shape_ms:>6.0f}{med.get('texture', 0):>5.0f}{med.get('glb', 0):>5.0f}{previews:>6.0f}"
            f"{med.get('cutout_png', 0):>8.0f}{total * 1000:>6.0f}  {warning}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {peak:.0f} MB")
    OUT.mkdir(exist_ok=True)
    cols = max(len(r) for r in sheet_rows)
    sheet = Image.new("RGB", (cols * TILE, len(sheet_rows) * TILE), (255, 255, 255))
    for r, tiles in enumerate(sheet_rows):
        for c, tile in enumerate(tiles):
            sheet.paste(tile, (c * TILE, r * TILE))
    target = OUT / "quality_sheet.png"
    sheet.save(target)
    print(f"contact sheet: {target}")


if __name__ == "__main__":
    sys.exit(main())
