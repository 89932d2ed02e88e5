"""The one interface every generator implements: input image(s) + options + progress callback -> files + metadata.

A generator module must import cheaply: the API imports every generator's `spec` to validate uploads, so heavy
libraries are imported inside `generate` (or at worker start-up through `warm_up`), never at module import.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from image2model.core.errors import GenerationError, ValidationFailed

ProgressCallback = Callable[[float, str], None]
"""Called by a generator with the fraction done (0..1) and the current stage in words. It raises
`image2model.core.errors.Cancelled` when the job was cancelled: let it propagate."""
Landed = Callable[["OutputFile"], None]
"""Called with each output file as soon as it is written, so the service can list it at once (the model first)."""

OptionKind = Literal["int", "float", "bool", "choice", "str"]

MIME_TYPES: dict[str, str] = {
    "glb": "model/gltf-binary",
    "obj": "application/zip",
    "stl": "model/stl",
    "ply": "application/x-ply",
    "3mf": "model/3mf",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class OptionSpec:
    """One option a generator accepts, with its type, default and limits."""

    name: str
    kind: OptionKind
    default: Any
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()

    def parse(self, raw: Any) -> Any:
        """Turn a form value (usually a string) into a checked value; raises ValueError with a readable reason."""
        text = str(raw).strip()
        value: Any
        if self.kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"must be a whole number, got {text!r}") from None
        elif self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"must be a number, got {text!r}") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("must be a finite number")
        elif self.kind == "bool":
            if isinstance(raw, bool):
                value = raw
            elif text.lower() in _TRUE:
                value = True
            elif text.lower() in _FALSE:
                value = False
            else:
                raise ValueError(f"must be true or false, got {text!r}")
        else:
            value = text
        if self.kind == "choice" and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}; got {text!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {_fmt(self.minimum)}, got {text}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {_fmt(self.maximum)}, got {text}")
        return value

    def describe(self) -> dict[str, Any]:
        """JSON description for `/models/available`."""
        return {
            "name": self.name,
            "type": self.kind,
            "default": self.default,
            "description": self.description,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "choices": list(self.choices) or None,
        }


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


@dataclass(frozen=True)
class GeneratorSpec:
    """What a generator is and accepts; cheap to import and the source of `/models/available`."""

    name: str
    title: str
    description: str
    formats: tuple[str, ...]
    default_formats: tuple[str, ...]
    options: tuple[OptionSpec, ...] = ()
    max_images_per_item: int = 1
    """More than one means a job may upload 2..N views of one object as a single item (`multiview` upload field)."""
    queue: Literal["cpu", "io"] = "cpu"
    """`cpu`: runs in worker processes; `io`: remote work polled from worker threads."""

    def option(self, name: str) -> OptionSpec | None:
        return next((o for o in self.options if o.name == name), None)

    def validate(
        self, raw_options: Mapping[str, Any], raw_formats: Sequence[str] | None
    ) -> tuple[dict, list[str]]:
        """Check user options and formats; returns (options with defaults filled in, formats).

        Raises ValidationFailed listing every bad field, so a user can fix them all at once."""
        errors: list[dict[str, str]] = []
        options: dict[str, Any] = {}
        known = {o.name for o in self.options}
        for name in raw_options:
            if name not in known:
                allowed = ", ".join(sorted(known)) or "none"
                errors.append(
                    {
                        "field": name,
                        "message": f"unknown option for generator '{self.name}' (allowed: {allowed})",
                    }
                )
        for opt in self.options:
            if opt.name in raw_options and str(raw_options[opt.name]).strip() != "":
                try:
                    options[opt.name] = opt.parse(raw_options[opt.name])
                except ValueError as exc:
                    errors.append({"field": opt.name, "message": f"{opt.name} {exc}"})
            else:
                options[opt.name] = opt.default
        formats = [f.strip().lower() for f in (raw_formats or []) if f.strip()] or list(self.default_formats)
        bad = [f for f in formats if f not in self.formats]
        if bad:
            errors.append(
                {
                    "field": "formats",
                    "message": f"unsupported format(s) {', '.join(bad)}; choose from {', '.join(self.formats)}",
                }
            )
        if errors:
            raise ValidationFailed("; ".join(e["message"] for e in errors), {"errors": errors})
        return options, list(dict.fromkeys(formats))

    def describe(self) -> dict[str, Any]:
        """JSON description for `/models/available`."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "type": "image_to_3d",
            "supported_formats": list(self.formats),
            "default_formats": list(self.default_formats),
            "options": [o.describe() for o in self.options],
            "max_images_per_item": self.max_images_per_item,
            "remote": self.queue == "io",
        }


@dataclass
class GenerationRequest:
    """One item's work: the input image(s), checked options, wanted formats and where to write."""

    images: list[Path]
    options: dict[str, Any]
    formats: list[str]
    out_dir: Path
    basename: str
    """Stem for output file names (`{basename}.glb`, `{basename}.preview.png`, ...); unique within the job."""


@dataclass
class OutputFile:
    """A file a generator wrote under `out_dir`."""

    path: Path
    format: str
    role: Literal["model", "preview", "cutout", "master"] = "model"
    """"cutout": the object as the generator cut it out of the photo (an RGBA PNG), listed with the previews;
    "master": the full-resolution GLB the service keeps for exports (not listed)."""

    @property
    def mime_type(self) -> str:
        return MIME_TYPES.get(self.format, "application/octet-stream")


@dataclass
class GenerationResult:
    files: list[OutputFile]
    metadata: dict[str, Any] = field(default_factory=dict)
    """Figures about the model. `generator_version` and `seed` (the seed actually used), when present, go into
    the model's recipe."""


class Generator(abc.ABC):
    """Base class of generators. Instances are created once per worker process and reused for every item."""

    spec: ClassVar[GeneratorSpec]

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Import heavy libraries and load models once per worker process."""

    @abc.abstractmethod
    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, landed: Landed | None = None
    ) -> GenerationResult:
        """Produce the requested formats (plus previews) for one item, calling `landed` (when given) with each
        file as soon as it is written.

        Raise `GenerationError` with a sentence a user can act on when the input cannot be turned into a model."""


@dataclass
class Pending:
    """A remote generation that is still running: check again after `delay` seconds."""

    fraction: float
    message: str
    delay: float
    state: dict[str, Any] = field(default_factory=dict)
    """The remote state to persist (replaces the previous one); keep every id needed to resume or cancel."""


@dataclass
class Fetched:
    """The remote work is done and its files are downloaded into `request.out_dir` (which `poll` creates: most
    polls write nothing). The service stores them at once, then runs `RemoteGenerator.finish` on a CPU worker
    to make the other formats and previews."""

    files: list[OutputFile]
    state: dict[str, Any] = field(default_factory=dict)
    outputs: list[OutputFile] = field(default_factory=list)
    """Those of `files` that are results already (the model first): listed at once, before `finish` runs."""
    complete: bool = False
    """Nothing is left for `finish` to make: `files` are the item's whole result and it completes now."""

    def result(self, state: dict[str, Any]) -> GenerationResult:
        """The whole result of a `complete` fetch: its files, with the `metadata` of its remote state (this
        fetch's `state`, else the item's `state` so far)."""
        return GenerationResult(self.files, dict((self.state or state).get("metadata", {})))


class RemoteBusy(Exception):
    """The remote service refused new work for now (e.g. HTTP 429): nothing was submitted; try again after
    `retry_after` seconds (None: it did not say). Raised by `RemoteGenerator.start`."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamUnavailable(Exception):
    """The remote service offers no status stream for this request (raised by `RemoteGenerator.watch`'s
    iterator): it is polled instead."""


class RemoteGenerator(Generator):
    """A generator whose work runs elsewhere (a paid API). The service drives it in short steps so no worker
    waits on it: `start` submits and returns the remote state, which is stored before anything else happens;
    `poll` is called again and again (in new tasks, possibly on another worker after a crash) with the stored
    state until it returns the result; `cancel` stops the remote work. A crash between steps resumes polling
    the same remote request; it never submits twice once `start` has returned.

    A remote service that pushes its status offers `watch`: the service then follows that stream and hands each
    status to `poll` as `seen`, so `poll` need not ask."""

    @abc.abstractmethod
    def start(self, request: GenerationRequest) -> dict[str, Any]:
        """Submit the work; return the state needed to poll, fetch or cancel it (JSON-serialisable)."""

    @abc.abstractmethod
    def poll(
        self,
        request: GenerationRequest,
        state: dict[str, Any],
        progress: ProgressCallback,
        seen: Any = None,
    ) -> Pending | Fetched:
        """Check the remote work once: `Pending` to be asked again later, or `Fetched` with the downloaded files.
        The service passes no `request.images` here nor to `finish`: the inputs went out with `start`. `seen` is
        the latest status `watch` delivered (only ever passed to generators that offer `watch`): use it instead of
        asking the remote service.

        Raise `GenerationError` for failures a user can act on."""

    def watch(self, state: dict[str, Any]) -> AsyncIterator[Any] | None:
        """The status updates the remote service pushes for this request, as an async iterator that ends once the
        work is done (and raises when the stream fails, `StreamUnavailable` when there is none), or None when
        this generator offers no stream: it is then only polled."""
        return None

    def finish(
        self,
        request: GenerationRequest,
        state: dict[str, Any],
        fetched: list[OutputFile],
        progress: ProgressCallback,
        landed: Landed | None = None,
    ) -> GenerationResult:
        """CPU work on the fetched files (other formats, previews); runs in a CPU worker. `landed` is called with
        each new file as soon as it is written, so the service can announce it at once. By default the fetched
        files are the result."""
        return GenerationResult(files=fetched, metadata=dict(state.get("metadata", {})))

    def cancel(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Best-effort stop of the remote work (errors are ignored by the caller)."""

    def max_in_flight(self) -> int:
        """Most requests of this generator's `in_flight_group` running remotely at once, across all workers
        (0: no cap). Items over the cap wait in the queue, unsubmitted."""
        return 0

    in_flight_group: ClassVar[str] = ""
    """Generators sharing one remote account share one cap (e.g. every FAL model)."""

    busy_attempts: ClassVar[int] = 10
    """Refusals (`RemoteBusy`) `generate` waits out before it gives up."""

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, landed: Landed | None = None
    ) -> GenerationResult:
        """Run start/poll in this thread (for notebooks and tests; the service never calls this)."""
        for attempt in range(1, self.busy_attempts + 1):
            try:
                state = self.start(request)
                break
            except RemoteBusy as exc:
                if attempt == self.busy_attempts:
                    raise GenerationError(f"{exc}; gave up after {attempt} tries. Try again later.") from exc
                progress(0.0, f"{exc}; waiting")
                time.sleep(exc.retry_after if exc.retry_after is not None else 1.0)
        while True:
            outcome = self.poll(request, state, progress)
            if isinstance(outcome, Fetched):
                if outcome.complete:
                    return outcome.result(state)
                return self.finish(request, outcome.state or state, outcome.files, progress, landed)
            state = outcome.state or state
            progress(outcome.fraction, outcome.message)
            time.sleep(outcome.delay)
