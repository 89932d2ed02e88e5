"""FAL.AI image-to-3D generators (Tripo3D v2.5 as `fal`, other models as `fal:<app-id>`), offered only when a
FAL key is configured. Importing this package is cheap: fal-client, numpy and trimesh load on first use."""

from __future__ import annotations

from image2model.core.generators.base import Generator
from image2model.core.generators.fal.generator import GENERATORS, FalGenerator
from image2model.core.generators.fal.models import MODELS, FalModel
from image2model.core.settings import Settings


def available_generators(settings: Settings) -> list[type[Generator]]:
    """Every FAL generator when a key is set; none otherwise (the service runs fine without FAL)."""
    if not settings.fal_key:
        return []
    return list(GENERATORS.values())


__all__ = ["GENERATORS", "MODELS", "FalGenerator", "FalModel", "available_generators"]
