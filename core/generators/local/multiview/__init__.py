"""Multi-view reconstruction for the local generator: 2–4 photos of one object (front, left, back, right) carved
into one textured, watertight model on the CPU. `reconstruct` wires the stages: `views` (cut-out, alignment,
checks), `carving` (rounded visual hull), `marching` (surface), `atlas` (texture)."""

from __future__ import annotations

from image2model.core.generators.local.multiview.reconstruct import build_model, run, warm_up

__all__ = ["build_model", "run", "warm_up"]
