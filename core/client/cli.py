"""`image2model generate` (submit images, show a live progress bar, download the results), `image2model jobs` (a
table of the key's jobs) and `image2model delete JOB...`.

`api/cli.py` registers each subcommand with `add_<name>_arguments(parser)` and runs `<name>_command(**vars(args))`.
Heavy imports (httpx, pydantic, tqdm) happen only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from image2model.core.models import Event, UploadResponse

__all__ = [
    "add_delete_arguments",
    "add_generate_arguments",
    "add_jobs_arguments",
    "delete_command",
    "generate_command",
    "jobs_command",
    "ProgressState",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the job (or some of its files) failed, or an unexpected server error
EXIT_REJECTED = 2  # bad local input, or the API refused the request (4xx)
EXIT_UNAVAILABLE = 3  # no server at the URL, or the connection was lost for good
EXIT_INTERRUPTED = 130


def add_generate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `generate`'s arguments to `parser` (dests match `generate_command`'s parameters)."""
    parser.add_argument(
        "images", nargs="+", metavar="IMAGE", help="JPEG, PNG or WebP photos; one model per image"
    )
    parser.add_argument("--face-limit", dest="face_limit", type=int, metavar="N", help="most faces per model")
    parser.add_argument(
        "--format",
        dest="formats",
        metavar="FMT[,FMT...]",
        help="output formats, comma-separated (e.g. glb,obj)",
    )
    parser.add_argument(
        "-o", "--out-dir", dest="out_dir", metavar="DIR", help="where to save the results (default: .)"
    )
    parser.add_argument(
        "--server", metavar="URL", help="API base URL (default: $IMAGE2MODEL_SERVER_URL or 127.0.0.1:8000)"
    )
    parser.add_argument(
        "--api-key", dest="api_key", metavar="KEY", help="API key (default: $IMAGE2MODEL_API_KEY)"
    )
    parser.add_argument("--generator", metavar="NAME", help="generator to use (default: the server's)")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar; print only the saved paths"
    )
    return parser


@dataclass
class ProgressState:
    """What the progress bar shows, folded from the job's events (kept free of tqdm so it is testable)."""

    total_files: int
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file_id -> {filename, status, progress}
    status: str = "queued"
    progress: float = 0.0
    message: str = ""
    error: str = ""
    queue_position: int | None = None

    @classmethod
    def from_upload(cls, upload: UploadResponse) -> ProgressState:
        files = {
            f.file_id: {"filename": f.filename, "status": "queued", "progress": 0.0}
            for f in upload.uploaded_files
        }
        return cls(total_files=upload.total_files, files=files)

    def apply(self, event: Event) -> None:
        data = event.data
        if "queue_position" in data:
            self.queue_position = data.get("queue_position")
        if event.type == "queue_position":
            return
        if event.type == "file_update":
            # Here `status` and `progress` are the file's, not the job's.
            entry = self.files.setdefault(
                str(data.get("file_id")),
                {"filename": data.get("filename", "?"), "status": "queued", "progress": 0.0},
            )
            entry["status"] = str(data.get("status") or entry["status"])
            entry["progress"] = float(data.get("progress") or entry["progress"])
            if data.get("error"):
                entry["error"] = str(data["error"])
            if self.status == "queued" and entry["status"] != "queued":
                self.status = "processing"
            return
        self.progress = max(self.progress, float(data.get("progress") or 0.0))  # never goes backwards
        self.status = str(data.get("status") or self.status)
        if event.type == "task_progress":
            self.message = str(data.get("message") or "")
        if event.terminal:
            self.error = str(data.get("error") or "")
            if event.type == "task_completed":
                self.progress = 100.0

    def description(self) -> str:
        done = sum(1 for f in self.files.values() if f["status"] in ("completed", "failed", "cancelled"))
        if self.status == "queued":
            where = f", position {self.queue_position}" if self.queue_position is not None else ""
            return f"waiting in queue{where}"
        if self.status == "processing":
            return f"processing {done}/{self.total_files}"
        return self.status

    def postfix(self) -> str:
        """Per-file status: every file when there are few, counts and the running ones otherwise."""
        files = list(self.files.values())
        if len(files) <= 3:
            return ", ".join(_file_text(f) for f in files)
        counts: dict[str, int] = {}
        for f in files:
            counts[f["status"]] = counts.get(f["status"], 0) + 1
        parts = [f"{n} {status}" for status, n in sorted(counts.items()) if status != "processing"]
        running = [_file_text(f) for f in files if f["status"] == "processing"][:2]
        return ", ".join(parts + running)

    def failed_files(self) -> list[dict[str, Any]]:
        return [f for f in self.files.values() if f["status"] == "failed"]


def _file_text(f: dict[str, Any]) -> str:
    if f["status"] == "processing":
        return f"{f['filename']} {f['progress']:.0f}%"
    return f"{f['filename']} {f['status']}"


def generate_command(
    images: list[str],
    face_limit: int | None = None,
    formats: str | None = None,
    out_dir: str | None = None,
    server: str | None = None,
    api_key: str | None = None,
    generator: str | None = None,
    quiet: bool = False,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    **_argparse_extras: object,
) -> int:
    """Run `image2model generate`; return the process exit code.

    0: every file's model was saved; 1: the job or some files failed; 2: bad input or the API refused the
    request; 3: the server cannot be reached; 130: interrupted (the job is cancelled). Unknown keyword
    arguments (subcommand bookkeeping from argparse) are ignored.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    missing = [p for p in images if not Path(p).is_file()]
    if missing:
        print(f"error: no such image file: {', '.join(missing)}", file=err)
        return EXIT_REJECTED

    from image2model.core.client import Client
    from image2model.core.errors import Image2ModelError, ServerUnavailable
    from image2model.core.models import JobStatus

    job_id: str | None = None
    client = Client(server_url=server, api_key=api_key)
    try:
        upload = client.submit(images, face_limit=face_limit, generator=generator, formats=formats)
        job_id = upload.job_id
        if not quiet:
            print(f"job {job_id}: {upload.total_files} image(s) submitted to {client.server_url}", file=err)
        state = ProgressState.from_upload(upload)
        _follow(client, job_id, state, quiet, err)
        snapshot = client.status(job_id)
        if snapshot.status != JobStatus.COMPLETED:
            reason = snapshot.error or state.error or snapshot.message or f"job {snapshot.status.value}"
            print(f"error: job {job_id} {snapshot.status.value}: {reason}", file=err)
            _print_file_errors(snapshot.files, err)
            return EXIT_FAILED
        listing = client.files(job_id)
        for entry in listing.files:
            saved = client.download(entry, dest_dir=out_dir)
            print(saved, file=out)
        failed = [f for f in snapshot.files if f.status == "failed"]
        if failed:
            print(f"error: {len(failed)} of {snapshot.total_files} image(s) failed", file=err)
            _print_file_errors(snapshot.files, err)
            return EXIT_FAILED
        return EXIT_OK
    except KeyboardInterrupt:
        if job_id is not None:
            try:
                client.cancel(job_id)
                print(f"\ninterrupted: job {job_id} cancelled", file=err)
            except Image2ModelError as exc:
                print(f"\ninterrupted: could not cancel job {job_id}: {exc.message}", file=err)
        return EXIT_INTERRUPTED
    except ServerUnavailable as exc:
        print(f"error: {exc.message}", file=err)
        return EXIT_UNAVAILABLE
    except Image2ModelError as exc:
        print(f"error: {exc.message} [{exc.error_code}]", file=err)
        for problem in (exc.details or {}).get("errors") or []:
            print(f"  - {_problem_text(problem)}", file=err)
        return EXIT_REJECTED if 400 <= exc.status_code < 500 else EXIT_FAILED
    except OSError as exc:  # writing results (disk full, permissions)
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    finally:
        client.close()


def _follow(client: Any, job_id: str, state: ProgressState, quiet: bool, err: TextIO) -> None:
    from tqdm import tqdm

    bar = tqdm(
        total=100,
        file=err,
        disable=quiet,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]{postfix}",
        desc=state.description(),
    )
    try:
        for event in client.events(job_id, queue_positions=True):
            state.apply(event)
            bar.n = state.progress
            bar.set_description_str(state.description(), refresh=False)
            bar.set_postfix_str(state.postfix(), refresh=False)
            bar.refresh()
    finally:
        bar.close()


def _print_file_errors(files: list[Any], err: TextIO) -> None:
    for f in files:
        if f.status == "failed":
            print(f"  - {f.filename}: {f.error or 'failed'}", file=err)


def _problem_text(problem: object) -> str:
    if isinstance(problem, dict):
        where = problem.get("filename") or problem.get("field") or problem.get("loc") or ""
        message = problem.get("message") or problem.get("msg") or problem
        return f"{where}: {message}" if where else str(message)
    return str(problem)


# ---- `image2model jobs` and `image2model delete` ------------------------------------------------------


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", metavar="URL", help="API base URL (default: $IMAGE2MODEL_SERVER_URL or 127.0.0.1:8000)"
    )
    parser.add_argument(
        "--api-key", dest="api_key", metavar="KEY", help="API key (default: $IMAGE2MODEL_API_KEY)"
    )


def add_jobs_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `jobs`'s arguments to `parser` (dests match `jobs_command`'s parameters)."""
    parser.add_argument(
        "--status",
        choices=("queued", "processing", "completed", "failed", "cancelled"),
        help="only jobs in this state",
    )
    parser.add_argument(
        "-n",
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="most jobs to show, newest first (default: 20)",
    )
    parser.add_argument("--all", dest="show_all", action="store_true", help="every job, page after page")
    _add_server_arguments(parser)
    return parser


def jobs_command(
    status: str | None = None,
    limit: int = 20,
    show_all: bool = False,
    server: str | None = None,
    api_key: str | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    **_argparse_extras: object,
) -> int:
    """Run `image2model jobs`: a table of this key's jobs, newest first; return the exit code (as `generate`)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if not show_all and not 1 <= limit <= 100:
        print("error: --limit must be 1 to 100 (or use --all)", file=err)
        return EXIT_REJECTED
    from image2model.core.client import Client
    from image2model.core.errors import Image2ModelError, ServerUnavailable

    try:
        with Client(server_url=server, api_key=api_key) as client:
            jobs = list(client.iter_jobs(status)) if show_all else client.jobs(limit, status).jobs
    except ServerUnavailable as exc:
        print(f"error: {exc.message}", file=err)
        return EXIT_UNAVAILABLE
    except Image2ModelError as exc:
        print(f"error: {exc.message} [{exc.error_code}]", file=err)
        return EXIT_REJECTED if 400 <= exc.status_code < 500 else EXIT_FAILED
    rows = [
        [
            job.job_id,
            job.status.value,
            _local_time(job.created_at),
            str(job.total_files),
            job.generator,
            "" if job.face_limit is None else str(job.face_limit),
        ]
        for job in jobs
    ]
    if not rows:
        print("no jobs" + (f" {status}" if status else ""), file=err)
        return EXIT_OK
    print(_table(["JOB", "STATUS", "CREATED", "FILES", "GENERATOR", "FACES"], rows), file=out)
    return EXIT_OK


def add_delete_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `delete`'s arguments to `parser` (dests match `delete_command`'s parameters)."""
    parser.add_argument("job_ids", nargs="+", metavar="JOB", help="job id(s) to delete with all their files")
    _add_server_arguments(parser)
    return parser


def delete_command(
    job_ids: list[str],
    server: str | None = None,
    api_key: str | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    **_argparse_extras: object,
) -> int:
    """Run `image2model delete JOB...`: cancel each job if it runs, then delete it with its events and files.

    Exit code 0 when every job was deleted, 2 when one was refused (e.g. not found), 3 without a server."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    from image2model.core.client import Client
    from image2model.core.errors import Image2ModelError, ServerUnavailable

    code = EXIT_OK
    try:
        with Client(server_url=server, api_key=api_key) as client:
            for job_id in job_ids:
                try:
                    client.delete(job_id)
                except ServerUnavailable:
                    raise
                except Image2ModelError as exc:
                    print(f"error: {job_id}: {exc.message} [{exc.error_code}]", file=err)
                    code = EXIT_REJECTED if 400 <= exc.status_code < 500 else EXIT_FAILED
                    continue
                print(f"deleted {job_id}", file=out)
    except ServerUnavailable as exc:
        print(f"error: {exc.message}", file=err)
        return EXIT_UNAVAILABLE
    return code


def _local_time(epoch: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )
