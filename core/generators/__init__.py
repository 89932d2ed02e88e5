"""Generator registry: built-in generators plus any configured through `IMAGE2MODEL_EXTRA_GENERATORS`."""

from __future__ import annotations

import importlib
from functools import lru_cache

from image2model.core.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    GeneratorSpec,
    OptionSpec,
    OutputFile,
    ProgressCallback,
)
from image2model.core.settings import Settings

__all__ = [
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "GeneratorSpec",
    "OptionSpec",
    "OutputFile",
    "ProgressCallback",
    "generator_classes",
    "load_class",
]

BUILTIN: tuple[str, ...] = ("image2model.core.generators.local:LocalGenerator",)


def load_class(path: str) -> type[Generator]:
    """Import `module:Class` and check it is a Generator."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"generator path {path!r} must look like 'package.module:ClassName'")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        raise TypeError(f"{path} is not a Generator subclass")
    return cls


@lru_cache(maxsize=8)
def _classes(paths: tuple[str, ...]) -> dict[str, type[Generator]]:
    found: dict[str, type[Generator]] = {}
    for path in paths:
        cls = load_class(path)
        found[cls.spec.name] = cls
    return found


def generator_classes(settings: Settings) -> dict[str, type[Generator]]:
    """Every generator this process offers, by name (built-ins first, then extras)."""
    return _classes(BUILTIN + tuple(settings.extra_generators))
