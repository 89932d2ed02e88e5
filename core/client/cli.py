"""`image2model generate` (submit images, show a live progress bar, download the results), `image2model jobs` (a
table of the key's jobs) and `image2model delete JOB...`.

The `image2model` command (`image2model.cli.main.COMMANDS`) registers each subcommand with
`add_<name>_arguments(parser)` and runs `<name>_command(**vars(args))`. Heavy imports (httpx, pydantic, tqdm) happen
only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from image2model.core.client import Client
    from image2model.core.client.jobview import FileView, JobView
    from image2model.core.errors import Image2ModelError

__all__ = [
    "add_delete_arguments",
    "add_download_arguments",
    "add_generate_arguments",
    "add_jobs_arguments",
    "add_server_arguments",
    "delete_command",
    "description",
    "generate_command",
    "jobs_command",
    "postfix",
    "report",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the job (or some of its files) failed, or an unexpected server error
EXIT_REJECTED = 2  # bad local input, or the API refused the request (4xx)
EXIT_UNAVAILABLE = 3  # no server at the URL, or the connection was lost for good
EXIT_INTERRUPTED = 130
MIN_VIEWS, MAX_VIEWS = (
    2,
    4,
)  # a multi-view upload: front, left, back, right (CONTRACT.md, "Multi-view uploads")


def add_generate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `generate`'s arguments to `parser` (dests match `generate_command`'s parameters)."""
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="JPEG, PNG or WebP photos; one model per image (with --multiview: 2 to 4 views of one object)",
    )
    parser.add_argument(
        "--multiview",
        action="store_true",
        help="the images are views of one object, in this order: front, left, back, right (the object turned "
        "a quarter turn clockwise, seen from above, between shots); one model from all of them",
    )
    parser.add_argument("--face-limit", dest="face_limit", type=int, metavar="N", help="most faces per model")
    parser.add_argument(
        "--format",
        dest="formats",
        metavar="FMT[,FMT...]",
        help="output formats, comma-separated (e.g. glb,obj)",
    )
    add_download_arguments(parser)
    parser.add_argument("--generator", metavar="NAME", help="generator to use (default: the server's)")
    parser.add_argument(
        "--webhook", metavar="URL", help="also POST the job's events, signed, to this URL (Standard Webhooks)"
    )
    parser.add_argument(
        "--webhook-events",
        dest="webhook_events",
        metavar="EVENT[,EVENT...]",
        help="events sent to --webhook (default: task_completed,task_failed,task_cancelled)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar; print only the saved paths"
    )
    return parser


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """`-o/--out-dir`, `--server` and `--api-key`, shared by the commands that fetch files from a server."""
    parser.add_argument(
        "-o", "--out-dir", dest="out_dir", metavar="DIR", help="where to save the results (default: .)"
    )
    add_server_arguments(parser)


def description(view: JobView) -> str:
    """The progress bar's label: the place in the queue, files done, or how the job ended."""
    if view.status == "queued":
        where = f", position {view.queue_position}" if view.queue_position is not None else ""
        return f"waiting in queue{where}"
    if view.status == "processing":
        return f"processing {view.done}/{len(view.files)}"
    return view.status.value


def postfix(view: JobView) -> str:
    """Per-file status after the bar: every file when there are few, counts and the running ones otherwise."""
    if len(view.files) <= 3:
        return ", ".join(_file_text(f) for f in view.files)
    counts: dict[str, int] = {}
    for f in view.files:
        counts[f.status.value] = counts.get(f.status.value, 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items()) if status != "processing"]
    running = [_file_text(f) for f in view.files if f.status == "processing"][:2]
    return ", ".join(parts + running)


def _file_text(f: FileView) -> str:
    if f.status == "processing":
        return f"{f.filename} {f.progress:.0f}%"
    return f"{f.filename} {f.status.value}"


def generate_command(
    images: list[str],
    face_limit: int | None = None,
    formats: str | None = None,
    out_dir: str | None = None,
    server: str | None = None,
    api_key: str | None = None,
    generator: str | None = None,
    quiet: bool = False,
    webhook: str | None = None,
    webhook_events: str | None = None,
    multiview: bool = False,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    **_argparse_extras: object,
) -> int:
    """Run `image2model generate`; return the process exit code. With `multiview`, the 2 to 4 images are views
    of one object (front, left, back, right) and make one model.

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
    if multiview and not MIN_VIEWS <= len(images) <= MAX_VIEWS:
        print(
            f"error: --multiview takes {MIN_VIEWS} to {MAX_VIEWS} views of one object "
            f"(front, left, back, right); got {len(images)} image(s)",
            file=err,
        )
        return EXIT_REJECTED

    from image2model.core.client import Client, JobView
    from image2model.core.client.links import job_link
    from image2model.core.errors import Image2ModelError, ServerUnavailable

    job_id: str | None = None
    client = Client(server_url=server, api_key=api_key)
    try:
        upload = client.submit(
            images,
            face_limit=face_limit,
            generator=generator,
            formats=formats,
            webhook_url=webhook,
            webhook_events=webhook_events,
            multiview=True if multiview else None,
        )
        job_id = upload.job_id
        if not quiet:
            what = f"{len(images)} views of one object" if multiview else f"{upload.total_files} image(s)"
            print(f"job {job_id}: {what} submitted to {client.server_url}", file=err)
            print(f"job {job_id}: in the web UI at {job_link(job_id)}", file=err)
            if upload.webhook is not None:
                events = ",".join(upload.webhook.events)
                print(f"job {job_id}: webhook {upload.webhook.url} gets {events}", file=err)
        view = _follow(client, JobView.from_upload(upload), quiet, err)
        if not view.ok:
            reason = view.error or view.message or f"job {view.status.value}"
            print(f"error: job {job_id} {view.status.value}: {reason}", file=err)
            _print_file_errors(view, err)
            return EXIT_FAILED
        for entry in view.entries():
            print(client.download(entry, dest_dir=out_dir), file=out)
        if view.failures:
            print(f"error: {len(view.failures)} of {len(view.files)} image(s) failed", file=err)
            _print_file_errors(view, err)
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


def _follow(client: Client, view: JobView, quiet: bool, err: TextIO) -> JobView:
    """Watch the job to its end under a progress bar; the final view."""
    from tqdm import tqdm

    bar = tqdm(
        total=100,
        file=err,
        disable=quiet,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]{postfix}",
        desc=description(view),
    )
    latest = view
    try:
        for latest in client.watch(view.job_id, view):
            bar.n = latest.progress
            bar.set_description_str(description(latest), refresh=False)
            bar.set_postfix_str(postfix(latest), refresh=False)
            bar.refresh()
    finally:
        bar.close()
    return latest


def _print_file_errors(view: JobView, err: TextIO) -> None:
    for f in view.failures:
        print(f"  - {f.filename}: {f.error or 'failed'}", file=err)


def _problem_text(problem: object) -> str:
    if isinstance(problem, dict):
        where = problem.get("filename") or problem.get("field") or problem.get("loc") or ""
        message = problem.get("message") or problem.get("msg") or problem
        return f"{where}: {message}" if where else str(message)
    return str(problem)


# ---- `image2model jobs` and `image2model delete` ------------------------------------------------------


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """`--server` and `--api-key`, shared by the commands that talk to a server."""
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
    add_server_arguments(parser)
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
    from image2model.core.errors import Image2ModelError

    try:
        with Client(server_url=server, api_key=api_key) as client:
            jobs = list(client.iter_jobs(status)) if show_all else client.jobs(limit, status).jobs
    except Image2ModelError as exc:
        return report(exc, err)
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
    add_server_arguments(parser)
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


def report(exc: Image2ModelError, err: TextIO) -> int:
    """Print an API error as every subcommand does; its exit code (3 no server, 2 refused, 1 otherwise)."""
    from image2model.core.errors import ServerUnavailable

    if isinstance(exc, ServerUnavailable):
        print(f"error: {exc.message}", file=err)
        return EXIT_UNAVAILABLE
    print(f"error: {exc.message} [{exc.error_code}]", file=err)
    return EXIT_REJECTED if 400 <= exc.status_code < 500 else EXIT_FAILED


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
