"""Render the procedural product shots shipped as examples in `core/generators/local/samples/`.

Usage: python bench/make_samples.py  (writes shoe.png, chair.png, toy.png, cutout.png, each < 200 KB)
"""

from __future__ import annotations

from pathlib import Path

from image2model.core.generators.local import studio

SIZE = 512
OUT = Path(__file__).resolve().parents[1] / "core" / "generators" / "local" / "samples"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, draw in studio.SHOTS.items():
        # Without sensor noise: noise does not compress, and the samples are for looking at and trying out.
        shot = draw(SIZE, noise=0.0)
        path = OUT / f"{name}.png"
        shot.image.save(path, optimize=True)
        print(f"{path.relative_to(OUT.parents[3])}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
