"""Running items: claim (compare-and-set), generate under a live lease, store outputs under deterministic names.

Local generators run to the end in one task. Remote generators (`RemoteGenerator`) run in short steps: the first
task reserves a remote slot (within the adaptive in-flight limit), submits and persists the remote state, and
asks for the remote status stream to be followed; then each check (`poll_item`, from the io worker's tracker)
looks once, at the status the stream pushed or by asking, and hands the item back with its next delay, so no
worker sits waiting. A check writes to the store only when something changed or the lease needs renewing. The
fetched model is listed at once; the other formats and previews follow from a CPU worker, each announced as it
lands. After a crash the reaper re-queues the item and the next claim resumes the persisted remote request
instead of submitting again."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from huey.exceptions import TaskTimeout

from image2model.api.context import Services
from image2model.api.store import ItemRecord, JobRecord
from image2model.api.worker import masters
from image2model.api.worker.concurrency import limits
from image2model.core import recipes
from image2model.core.errors import Cancelled, GenerationError
from image2model.core.generators import (
    Fetched,
    GenerationRequest,
    GenerationResult,
    Generator,
    GeneratorSpec,
    OutputFile,
    Pending,
    RemoteBusy,
    RemoteGenerator,
    generator_classes,
)

log = logging.getLogger("image2model.worker")

SLOT_RETRY_SECONDS = 1.0

PROGRESS_STEP = 10.0
"""Percentage points a remote item's progress must gain before a status check that found nothing else new stores
it (most checks store nothing)."""

_instances: dict[str, Generator] = {}


class Scheduler(Protocol):
    """How the runner puts follow-up work on the queue (implemented by the Huey tasks)."""

    def retry_start(self, job_id: str, index: int, delay: float) -> None: ...

    def poll(self, job_id: str, index: int, attempt: int, delay: float) -> None: ...

    def finish(self, job_id: str, index: int, attempt: int) -> None: ...

    def watch(
        self, job_id: str, index: int, attempt: int, gen: RemoteGenerator, remote: dict[str, Any]
    ) -> None:
        """Follow the remote request's status stream, if its generator offers one (called after each check that
        leaves the item pending; following an item twice does nothing)."""


def generator(services: Services, name: str) -> Generator:
    """This process's instance of a generator (created and warmed up once)."""
    if name not in _instances:
        cls = generator_classes(services.settings).get(name)
        if cls is None:
            raise GenerationError(f"The generator '{name}' is not installed on this worker.")
        instance = cls()
        instance.warm_up()
        _instances[name] = instance
    return _instances[name]


def warm_up_all(services: Services, queue: str) -> None:
    """Create every generator of `queue` once at worker start, so no item pays for heavy imports."""
    for name, cls in generator_classes(services.settings).items():
        if cls.spec.queue != queue:
            continue
        try:
            generator(services, name)
        except Exception:
            log.exception("event=warm_up_failed generator=%s", name)


class _Lease:
    """Renews an item's lease in the background while it runs; notices cancellation."""

    def __init__(self, services: Services, job_id: str, index: int, attempt: int) -> None:
        self.services, self.job_id, self.index, self.attempt = services, job_id, index, attempt
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        lease = self.services.settings.lease_seconds
        while not self._stop.wait(lease / 3):
            try:
                if not self.services.store.renew_lease(self.job_id, self.index, self.attempt, lease):
                    self.lost.set()
                    return
            except Exception:
                log.exception("event=lease_renew_failed job_id=%s index=%s", self.job_id, self.index)


def _progress(services: Services, job_id: str, index: int, attempt: int, lost: threading.Event | None = None):
    """A generator progress callback: throttled store writes that renew the lease and raise on cancel."""
    store, lease = services.store, services.settings.lease_seconds
    last = [0.0, ""]

    def progress(fraction: float, message: str) -> None:
        if lost is not None and lost.is_set():
            raise Cancelled("the job was cancelled")
        t = time.monotonic()
        if message == last[1] and t - last[0] < store.progress_min_interval:
            return
        last[:] = [t, message]
        if not store.report_progress(job_id, index, attempt, fraction, message, lease):
            raise Cancelled("the job was cancelled")

    return progress


def _request(
    job: JobRecord, item: ItemRecord, work: Path, images: list[Path], spec: GeneratorSpec
) -> GenerationRequest:
    options = dict(job.options)
    if job.face_limit is not None:
        options["face_limit"] = job.face_limit
    return GenerationRequest(
        images=images,
        options=options,
        formats=masters.generated_formats(job.formats, spec),
        out_dir=work,
        basename=item.basename,
    )


def _with_master(
    result: GenerationResult,
    job: JobRecord,
    request: GenerationRequest,
    sources: list[Path],
    write_master: bool = True,
) -> GenerationResult:
    """The result with the master GLB kept for exports (see `masters.keep_master`), and the recipe and print
    report in its metadata."""
    recipe = recipes.recipe(job.generator, request.options, recipes.sha256_of(sources), result.metadata)
    return masters.keep_master(
        result, job.formats, Path(request.out_dir), request.basename, recipe, write_master=write_master
    )


def _finish(
    services: Services,
    job_id: str,
    item: ItemRecord,
    attempt: int,
    step: Callable[[], GenerationResult | None],
    started_at: float,
    stored: dict[str, dict[str, Any]] | None = None,
) -> bool:
    """Run one step of an item and record its outcome (completed, failed, cancelled) in the store.
    True when the step stopped because the job was cancelled."""
    store, settings = services.store, services.settings
    index = item.index
    try:
        result = step()
        if result is None:
            return False
        stored = stored or {}
        fresh = [f for f in result.files if Path(f.path).name not in stored]
        kept = [stored[Path(f.path).name] for f in result.files if Path(f.path).name in stored]
        outputs = kept + _store_outputs(services, job_id, fresh)
        metadata: dict[str, Any] = {
            **result.metadata,
            "duration_ms": round((time.time() - started_at) * 1000, 1),
        }
        accepted = store.complete(job_id, index, attempt, outputs, metadata)
        if not accepted:
            _forget_if_deleted(services, job_id)
        log.info(
            "event=item_completed job_id=%s index=%s attempt=%s ms=%.1f accepted=%s",
            job_id, index, attempt, metadata["duration_ms"], accepted,
        )  # fmt: skip
    except Cancelled:
        if not store.mark_cancelled(job_id, index, attempt):
            log.info("event=attempt_superseded job_id=%s index=%s attempt=%s", job_id, index, attempt)
            _forget_if_deleted(services, job_id)
            return False
        log.info("event=item_cancelled job_id=%s index=%s", job_id, index)
        return True
    except GenerationError as exc:
        store.fail(job_id, index, attempt, exc.message, exc.details or None)
        log.info("event=item_failed job_id=%s index=%s error=%r", job_id, index, exc.message)
    except TaskTimeout:
        store.fail(
            job_id, index, attempt,
            f"Generating {item.filename} took longer than the {settings.item_timeout_seconds:g} s limit.",
        )  # fmt: skip
    except Exception as exc:
        log.exception("event=item_crashed job_id=%s index=%s", job_id, index)
        store.fail(
            job_id, index, attempt,
            f"The generator failed unexpectedly ({type(exc).__name__}: {exc}). Try another image.",
        )  # fmt: skip
    return False


def run_item(services: Services, job_id: str, index: int, scheduler: Scheduler) -> None:
    """Execute an item's task. Safe to call twice: the claim is a compare-and-set."""
    store, settings = services.store, services.settings
    item = store.claim(job_id, index, settings.lease_seconds)
    if item is None:
        log.info("event=skip job_id=%s index=%s reason=not_queued", job_id, index)
        return
    state = store.load(job_id)
    if state is None:
        return
    job, attempt = state.job, item.attempt
    started_at = time.time()
    log.info(
        "event=item_started job_id=%s index=%s attempt=%s generator=%s", job_id, index, attempt, job.generator
    )
    work = settings.data_dir / "work" / f"{job_id}.{index}.{attempt}"
    try:
        work.mkdir(parents=True, exist_ok=True)
        try:
            gen = generator(services, job.generator)
        except GenerationError as exc:
            store.fail(job_id, index, attempt, exc.message)
            return
        # Local files of the inputs: the stored files on a directory store, downloads into `work` on S3.
        images = [services.blobs.local_path(key, work / "in") for key in item.inputs]
        request = _request(job, item, work, images, gen.spec)
        if isinstance(gen, RemoteGenerator):
            start = partial(_start_remote, services, gen, request, job_id, item, scheduler)
            _finish(services, job_id, item, attempt, start, started_at)
            return
        with _Lease(services, job_id, index, attempt) as lease:
            progress = _progress(services, job_id, index, attempt, lease.lost)
            landed = partial(_list_model_first, services, job, index, attempt)

            def step() -> GenerationResult:
                return _with_master(gen.generate(request, progress, landed), job, request, images)

            _finish(services, job_id, item, attempt, step, started_at)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _list_model_first(services: Services, job: JobRecord, index: int, attempt: int, out: OutputFile) -> None:
    """The model first: a generator's GLB is listed the moment it is written (when the job asked for it), so a
    viewer can show it while the other formats and the previews are still being made; they join at completion.
    The file is copied: the generator's copy gets the recipe (`_with_master`) and is stored again then."""
    if out.role != "model" or out.format != "glb" or "glb" not in job.formats:
        return
    (entry,) = _store_outputs(services, job.job_id, [out], move=False)
    if not services.store.add_outputs(
        job.job_id, index, attempt, [entry], 0.0, "", services.settings.lease_seconds
    ):
        raise Cancelled("the job was cancelled")


def _start_remote(
    services: Services,
    gen: RemoteGenerator,
    request: GenerationRequest,
    job_id: str,
    item: ItemRecord,
    scheduler: Scheduler,
) -> GenerationResult | None:
    store, settings = services.store, services.settings
    index, attempt = item.index, item.attempt
    if item.remote:
        log.info("event=remote_resumed job_id=%s index=%s attempt=%s", job_id, index, attempt)
        scheduler.poll(job_id, index, attempt, 0)
        return None
    group, ceiling = gen.in_flight_group or gen.spec.name, gen.max_in_flight()
    cap, wait = limits.allowance(group, ceiling)
    if wait > 0 or not store.take_remote_slot(job_id, index, attempt, group, cap):
        if store.release(job_id, index, attempt, f"waiting for a free {gen.spec.title} slot"):
            scheduler.retry_start(job_id, index, max(wait, SLOT_RETRY_SECONDS))
        return None
    try:
        remote = gen.start(request)
    except RemoteBusy as exc:  # nothing submitted: wait as told, fewer in flight, the attempt not counted
        pause = limits.refused(group, ceiling, store.in_flight(group), exc.retry_after)
        if store.release(job_id, index, attempt, f"{exc}; waiting"):
            scheduler.retry_start(job_id, index, max(pause, SLOT_RETRY_SECONDS))
        return None
    limits.accepted(group, ceiling)
    if not store.save_remote(job_id, index, attempt, remote, settings.lease_seconds):
        gen.cancel(remote)
        raise Cancelled("the job was cancelled")
    log.info("event=remote_submitted job_id=%s index=%s remote=%s", job_id, index, remote)
    scheduler.poll(job_id, index, attempt, 0)
    return None


def poll_item(
    services: Services, job_id: str, index: int, attempt: int, scheduler: Scheduler, seen: Any = None
) -> None:
    """One check of a remote item, with the status its stream pushed (`seen`) or by asking; asks the scheduler
    for the next one until the remote work ends."""
    store, settings = services.store, services.settings
    state = store.load(job_id)
    if state is None or not 0 <= index < len(state.items):
        return
    item = state.items[index]
    if item.status != "processing" or item.attempt != attempt or not item.remote:
        return
    gen = generator(services, state.job.generator)
    assert isinstance(gen, RemoteGenerator)
    if state.job.cancel_requested:
        _cancel_remote(gen, item.remote)
        store.mark_cancelled(job_id, index, attempt)
        return
    if "fetched" in item.remote:
        scheduler.finish(job_id, index, attempt)
        return
    work = settings.data_dir / "work" / f"{job_id}.{index}.{attempt}"

    def step() -> GenerationResult | None:
        if seen is None:
            outcome = gen.poll(request, item.remote, progress)
        else:
            outcome = gen.poll(request, item.remote, progress, seen)
        if isinstance(outcome, Fetched):
            if outcome.complete and "glb" in state.job.formats:
                # Complete as fetched: the recipe and print report are made here and the item completes now;
                # no master GLB is written (exports derive it from the listed GLB).
                return _complete_fetched(services, state.job, item, request, outcome)
            _list_fetched(services, job_id, item, attempt, outcome)
            scheduler.finish(job_id, index, attempt)
            return None
        remote = outcome.state or item.remote
        lease = settings.lease_seconds
        if _poll_news(item, outcome, remote, lease) and not store.report_progress(
            job_id, index, attempt, outcome.fraction, outcome.message, lease, remote
        ):
            raise Cancelled("the job was cancelled")
        # Never wait so long that the lease (renewed once a third of it has passed) could lapse.
        scheduler.poll(job_id, index, attempt, min(outcome.delay, lease / 3))
        scheduler.watch(job_id, index, attempt, gen, remote)
        return None

    try:
        request = _request(
            state.job, item, work, [], gen.spec
        )  # the generator creates `work` only to download
        progress = _progress(services, job_id, index, attempt)
        if _finish(services, job_id, item, attempt, step, item.started_at or time.time()):
            _cancel_remote(gen, item.remote)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _complete_fetched(
    services: Services, job: JobRecord, item: ItemRecord, request: GenerationRequest, fetched: Fetched
) -> GenerationResult:
    """The whole result of a remote item whose fetched files need no CPU step, with its recipe."""
    work = Path(request.out_dir)
    sources = [services.blobs.local_path(key, work / "in") for key in item.inputs]
    return _with_master(fetched.result(item.remote), job, request, sources, write_master=False)


def _list_fetched(services: Services, job_id: str, item: ItemRecord, attempt: int, fetched: Fetched) -> None:
    """Store the fetched files and, in the same transaction, list those that are results already (the model
    first), renew the lease and show the next stage."""
    store, lease = services.store, services.settings.lease_seconds
    stored = _store_outputs(services, job_id, fetched.files)
    remote = {**(fetched.state or item.remote), "fetched": stored}
    listed = {Path(f.path).name for f in fetched.outputs}
    outputs = [o for o in stored if o["filename"] in listed]
    ok = (
        store.add_outputs(job_id, item.index, attempt, outputs, 0.85, "converting", lease, remote)
        if outputs
        else store.report_progress(job_id, item.index, attempt, 0.85, "converting", lease, remote)
    )
    if not ok:
        raise Cancelled("the job was cancelled")


def _poll_news(item: ItemRecord, outcome: Pending, remote: dict[str, Any], lease_seconds: float) -> bool:
    """Whether a status check that is still pending must write to the store: the remote state or the stage
    changed, the progress gained `PROGRESS_STEP` points, or a third of the lease has passed since its renewal."""
    shown = min(99.0, round(outcome.fraction * 100, 1))
    return (
        remote != item.remote
        or (bool(outcome.message) and outcome.message != item.message)
        or shown - item.progress >= PROGRESS_STEP
        or item.lease_until - time.time() < lease_seconds * 2 / 3
    )


def finish_item(services: Services, job_id: str, index: int, attempt: int) -> None:
    """CPU step of a remote item: turn the fetched files into every requested format and the previews."""
    store, settings = services.store, services.settings
    state = store.load(job_id)
    if state is None or not 0 <= index < len(state.items):
        return
    item = state.items[index]
    if item.status != "processing" or item.attempt != attempt or "fetched" not in item.remote:
        return
    gen = generator(services, state.job.generator)
    assert isinstance(gen, RemoteGenerator)
    fetched = {o["filename"]: o for o in item.remote["fetched"]}
    work = settings.data_dir / "work" / f"{job_id}.{index}.{attempt}.finish"
    try:
        work.mkdir(parents=True, exist_ok=True)
        files = [
            OutputFile(services.blobs.local_path(o["key"], work / "fetched"), o["format"], o["role"])
            for o in fetched.values()
        ]
        request = _request(state.job, item, work, [], gen.spec)
        sources = [services.blobs.local_path(key, work / "in") for key in item.inputs]
        # The fetched GLB is stored again at the end: the copy in the result carries the recipe in its extras.
        stored = {name: o for name, o in fetched.items() if o["format"] != "glb"}

        def landed(out: OutputFile) -> None:
            """Store a new output at once and announce it (the item's file_update gains it)."""
            (entry,) = _store_outputs(services, job_id, [out])
            stored[entry["filename"]] = entry
            if not store.add_outputs(job_id, index, attempt, [entry], 0.9, "", settings.lease_seconds):
                raise Cancelled("the job was cancelled")

        with _Lease(services, job_id, index, attempt) as lease:
            progress = _progress(services, job_id, index, attempt, lease.lost)

            def step() -> GenerationResult:
                result = gen.finish(request, item.remote, files, progress, landed)
                return _with_master(result, state.job, request, sources)

            _finish(services, job_id, item, attempt, step, item.started_at or time.time(), stored=stored)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _forget_if_deleted(services: Services, job_id: str) -> None:
    """The job was deleted while this item ran: remove what the run stored after the deletion took its files."""
    if services.store.load(job_id) is None:
        services.blobs.delete_prefix(job_id)
        log.info("event=outputs_of_deleted_job_removed job_id=%s", job_id)


def _cancel_remote(gen: RemoteGenerator, remote: dict[str, Any]) -> None:
    try:
        gen.cancel(remote)
    except Exception:
        log.warning("event=remote_cancel_failed remote=%s", remote)


def _store_outputs(
    services: Services, job_id: str, files: list[OutputFile], move: bool = True
) -> list[dict[str, Any]]:
    """Store output files under `{job_id}/out/` (moved, or copied when `move` is False); their listing rows."""
    outputs = []
    for out in files:
        path = Path(out.path)
        key = f"{job_id}/out/{path.name}"
        size = services.blobs.put_file(key, path, move=move)
        outputs.append(
            {
                "filename": path.name,
                "format": out.format,
                "role": out.role,
                "mime_type": out.mime_type,
                "size": size,
                "key": key,
            }
        )
    return outputs
