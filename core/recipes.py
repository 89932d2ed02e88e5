"""A model's recipe (generator, version, options, seed, the photos' SHA-256) and the commands that make the same
model again: a `curl` upload, a Python snippet with our client, and the Discord bot's `/model`."""

from __future__ import annotations

import hashlib
import keyword
import shlex
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

DISCORD_OPTIONS = ("face_limit",)
"""Generator options `/model` can pass; a recipe that needs others has no Discord command."""
DISCORD_MAX_IMAGES = 4


@lru_cache(maxsize=1)
def package_version() -> str:
    """`image2model <version>` of the installed package."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"image2model {version('image2model')}"
    except PackageNotFoundError:
        return "image2model (unknown version)"


def sha256_of(paths: Iterable[Path]) -> list[str]:
    """Hex SHA-256 of each file, read in 1 MiB blocks."""
    digests = []
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        digests.append(digest.hexdigest())
    return digests


def recipe(
    generator: str, options: Mapping[str, Any], sources_sha256: Sequence[str], metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """`metadata.recipe` of a model: the generator's `generator_version` and the `seed` it used come from its
    result's metadata when it reports them (the options' own seed wins). `source_sha256` is one hash for a
    photo, a list in view order for a multi-view item."""
    seed = options.get("seed")
    if seed is None:
        seed = metadata.get("seed")
    return {
        "generator": generator,
        "generator_version": str(metadata.get("generator_version") or package_version()),
        "options": dict(options),
        "seed": seed,
        "source_sha256": sources_sha256[0] if len(sources_sha256) == 1 else list(sources_sha256),
    }


def source_names(filename: str, inputs: Sequence[str]) -> list[str]:
    """The photos a command uploads: the item's file name, then `view2.jpg`, ... for further views (only the
    first view's name is kept with the item)."""
    names = [filename]
    for n, key in enumerate(inputs[1:], start=2):
        names.append(f"view{n}{Path(key).suffix}")
    return names


def _options(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The options to send: the recipe's, with the seed that was used, without unset ones."""
    options = dict(rec.get("options") or {})
    if "seed" in options and rec.get("seed") is not None:
        options["seed"] = rec["seed"]
    return {k: v for k, v in options.items() if v is not None}


def _form_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def commands(
    rec: Mapping[str, Any],
    *,
    base_url: str,
    images: Sequence[str],
    formats: Sequence[str],
    auth: bool,
    defaults: Mapping[str, Any],
    export: Mapping[str, Any] | None = None,
) -> dict[str, str | None]:
    """`metadata.recipe.commands`: `curl` (an upload; with auth it reads the key from $IMAGE2MODEL_API_KEY),
    `python` (our client; the key from the same variable) and `discord` (`/model`, or None when the recipe
    needs options the bot cannot pass). Run where the photos are, under the names in `images`. `export`
    (`{formats, height_mm, up, origin, face_limit}`) adds the export step to the Python snippet."""
    options = _options(rec)
    generator = str(rec["generator"])
    api = base_url.rstrip("/")
    fields: list[tuple[str, str]] = [("generator", generator), ("formats", ",".join(formats))]
    if len(images) > 1:
        fields.append(("multiview", "true"))
    fields += [(k, _form_value(v)) for k, v in options.items()]
    curl = ["curl", "-sS", "--fail-with-body", "-X", "POST"]
    parts = [shlex.join(curl)]
    if auth:
        parts.append('-H "Authorization: Bearer $IMAGE2MODEL_API_KEY"')
    parts += [f"-F {shlex.quote('files=@' + name)}" for name in images]
    parts += [f"--form-string {shlex.quote(f'{k}={v}')}" for k, v in fields]
    parts.append(shlex.quote(f"{api}/api/v1/upload/"))
    return {
        "curl": " ".join(parts),
        "python": _python(api, images, generator, formats, options, export),
        "discord": _discord(images, generator, formats, options, defaults, rec.get("seed")),
    }


def _kwargs(values: Mapping[str, Any]) -> str:
    plain = [f"{k}={v!r}" for k, v in values.items() if k.isidentifier() and not keyword.iskeyword(k)]
    other = {k: v for k, v in values.items() if not (k.isidentifier() and not keyword.iskeyword(k))}
    return ", ".join(plain + ([f"**{other!r}"] if other else []))


def _python(
    api: str,
    images: Sequence[str],
    generator: str,
    formats: Sequence[str],
    options: Mapping[str, Any],
    export: Mapping[str, Any] | None,
) -> str:
    extra: dict[str, Any] = {"generator": generator, "formats": list(formats)}
    if len(images) > 1:
        extra["multiview"] = True
    lines = [
        "from image2model.core.client import Client",
        "",
        f"with Client({api!r}) as client:",
        f"    result = client.generate({list(images)!r}, dest_dir='.', {_kwargs({**extra, **options})})",
        "    result.raise_for_status()",
    ]
    if export is not None:
        shaping = {k: v for k, v in export.items() if k != "formats" and v is not None}
        lines += [
            f"    export = client.export(result.job_id, {list(export['formats'])!r}, {_kwargs(shaping)})",
            "    print(*client.download_export(export, '.'), sep='\\n')",
        ]
    else:
        lines.append("    print(*result.paths, sep='\\n')")
    return "\n".join(lines)


def _discord(
    images: Sequence[str],
    generator: str,
    formats: Sequence[str],
    options: Mapping[str, Any],
    defaults: Mapping[str, Any],
    seed: Any,
) -> str | None:
    if len(images) > DISCORD_MAX_IMAGES or (seed is not None and "seed" in defaults):
        return None
    if any(k not in DISCORD_OPTIONS and defaults.get(k) != v for k, v in options.items()):
        return None
    names = ["image"] + [f"image{n}" for n in range(2, len(images) + 1)]
    parts = ["/model", *(f"{slot}:{name}" for slot, name in zip(names, images, strict=True))]
    parts.append(f"generator:{generator}")
    if "face_limit" in options:
        parts.append(f"face_limit:{options['face_limit']}")
    parts.append(f"format:{formats[0]}")
    return " ".join(parts)
