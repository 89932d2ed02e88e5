"""Generator registry: built-in generators plus any configured through `IMAGE2MODEL_EXTRA_GENERATORS`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache

from image2model.core.generators.base import (
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
    RemoteBusy,
    RemoteGenerator,
    StreamUnavailable,
)
from image2model.core.settings import Settings

__all__ = [
    "Fetched",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "GeneratorProvider",
    "GeneratorSpec",
    "Landed",
    "OptionSpec",
    "OutputFile",
    "Pending",
    "ProgressCallback",
    "RemoteBusy",
    "RemoteGenerator",
    "StreamUnavailable",
    "generator_classes",
    "load_class",
]

BUILTIN: tuple[str, ...] = (
    "image2model.core.generators.local:LocalGenerator",
    "image2model.core.generators.fal:available_generators",
)


GeneratorProvider = Callable[[Settings], list[type[Generator]]]
"""A function offering a family of generators (or none, e.g. without an API key) for the settings."""


@lru_cache(maxsize=32)
def load_class(path: str) -> type[Generator] | GeneratorProvider:
    """Import `module:Name`: a Generator subclass, or a provider function returning several."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"generator path {path!r} must look like 'package.module:ClassName'")
    found = getattr(importlib.import_module(module_name), attr)
    if isinstance(found, type) and issubclass(found, Generator):
        return found
    if callable(found) and not isinstance(found, type):
        return found
    raise TypeError(f"{path} is neither a Generator subclass nor a provider function")


def generator_classes(settings: Settings) -> dict[str, type[Generator]]:
    """Every generator this process offers, by name (built-ins first, then extras)."""
    found: dict[str, type[Generator]] = {}
    for path in BUILTIN + tuple(settings.extra_generators):
        loaded = load_class(path)
        classes: list[type[Generator]] = [loaded] if isinstance(loaded, type) else loaded(settings)
        for cls in classes:
            found[cls.spec.name] = cls
    return found
