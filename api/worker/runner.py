"""Running one item: claim it, generate with a live lease, store outputs under deterministic names."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from huey.exceptions import TaskTimeout

from image2model.api.context import Services
from image2model.core.errors import Cancelled, GenerationError
from image2model.core.generators import GenerationRequest, Generator, generator_classes

log = logging.getLogger("image2model.worker")

_instances: dict[str, Generator] = {}


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


def warm_up_all(services: Services) -> None:
    """Create every generator once at worker start, so no item pays for heavy imports."""
    for name in generator_classes(services.settings):
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


def run_item(services: Services, job_id: str, index: int) -> None:
    """Execute one item end to end. Safe to call twice: the claim is a compare-and-set."""
    settings, store, blobs = services.settings, services.store, services.blobs
    item = store.claim(job_id, index, settings.lease_seconds)
    if item is None:
        log.info("event=skip job_id=%s index=%s reason=not_queued", job_id, index)
        return
    state = store.load(job_id)
    if state is None:
        return
    job = state.job
    attempt = item.attempt
    work = settings.data_dir / "work" / f"{job_id}.{index}.{attempt}"
    started = time.perf_counter()
    log.info(
        "event=item_started job_id=%s index=%s attempt=%s generator=%s", job_id, index, attempt, job.generator
    )
    last_report = [0.0, ""]

    with _Lease(services, job_id, index, attempt) as lease:

        def progress(fraction: float, message: str) -> None:
            if lease.lost.is_set():
                raise Cancelled("the job was cancelled")
            t = time.monotonic()
            if message == last_report[1] and t - last_report[0] < store.progress_min_interval:
                return
            last_report[:] = [t, message]
            if not store.report_progress(job_id, index, attempt, fraction, message, settings.lease_seconds):
                raise Cancelled("the job was cancelled")

        try:
            work.mkdir(parents=True, exist_ok=True)
            gen = generator(services, job.generator)
            options = dict(job.options)
            if job.face_limit is not None:
                options["face_limit"] = job.face_limit
            request = GenerationRequest(
                images=[blobs.path(item.input_key)],
                options=options,
                formats=list(job.formats),
                out_dir=work,
                basename=item.basename,
            )
            result = gen.generate(request, progress)
            outputs = _store_outputs(services, job_id, result.files)
            metadata: dict[str, Any] = {
                **result.metadata,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            done = store.complete(job_id, index, attempt, outputs, metadata)
            log.info(
                "event=item_completed job_id=%s index=%s attempt=%s ms=%.1f accepted=%s",
                job_id,
                index,
                attempt,
                metadata["duration_ms"],
                done,
            )
        except Cancelled:
            store.mark_cancelled(job_id, index, attempt)
            log.info("event=item_cancelled job_id=%s index=%s", job_id, index)
        except GenerationError as exc:
            store.fail(job_id, index, attempt, exc.message, exc.details or None)
            log.info("event=item_failed job_id=%s index=%s error=%r", job_id, index, exc.message)
        except TaskTimeout:
            store.fail(
                job_id,
                index,
                attempt,
                f"Generating {item.filename} took longer than the {settings.item_timeout_seconds:g} s limit.",
            )
        except Exception as exc:
            log.exception("event=item_crashed job_id=%s index=%s", job_id, index)
            store.fail(
                job_id,
                index,
                attempt,
                f"The generator failed unexpectedly ({type(exc).__name__}: {exc}). Try another image.",
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _store_outputs(services: Services, job_id: str, files: list) -> list[dict[str, Any]]:
    outputs = []
    for out in files:
        path = Path(out.path)
        key = f"{job_id}/out/{path.name}"
        size = services.blobs.put_file(key, path, move=True)
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
