"""`image2model export JOB`: make other formats, sizes and orientations of a finished job's models (e.g. an STL
80 mm tall, Z up, for a printer) and download them.

`image2model.cli.main` registers the subcommand with `add_export_arguments(parser)` and runs `export_command(**vars(args))`.
httpx and pydantic are imported only when the command runs."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from image2model.core.client.cli import EXIT_FAILED, EXIT_OK, add_download_arguments, report

__all__ = ["add_export_arguments", "export_command"]

FORMATS = ("glb", "obj", "stl", "ply", "3mf")


def _formats(text: str) -> list[str]:
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(FORMATS)} (comma-separated); got {text!r}")
    return names


def add_export_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `export`'s arguments to `parser` (dests match `export_command`'s parameters)."""
    parser.add_argument("job_id", metavar="JOB", help="id of a finished job (from `image2model generate`)")
    parser.add_argument(
        "--format",
        dest="formats",
        type=_formats,
        required=True,
        metavar="FMT[,FMT...]",
        help=f"formats to make: {', '.join(FORMATS)}",
    )
    parser.add_argument(
        "--height-mm",
        dest="height_mm",
        type=float,
        metavar="MM",
        help="scale to this height along the up axis",
    )
    parser.add_argument("--up", choices=("y", "z"), help="z: turn the model Z up (printers, CAD); default y")
    parser.add_argument(
        "--origin", choices=("center", "bottom"), help="bottom: origin at the bottom centre; default center"
    )
    parser.add_argument(
        "--face-limit", dest="face_limit", type=int, metavar="N", help="most faces (stays closed)"
    )
    parser.add_argument(
        "--file",
        dest="files",
        action="append",
        metavar="FILE_ID",
        help="only this file of the job (repeatable)",
    )
    add_download_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the saved paths")
    return parser


def export_command(
    job_id: str,
    formats: list[str],
    height_mm: float | None = None,
    up: str | None = None,
    origin: str | None = None,
    face_limit: int | None = None,
    files: list[str] | None = None,
    out_dir: str | None = None,
    server: str | None = None,
    api_key: str | None = None,
    quiet: bool = False,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    **_argparse_extras: object,
) -> int:
    """Run `image2model export`; return the process exit code (0 saved, 1 the export failed, 2 refused,
    3 no server). Prints each saved path on stdout."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    from image2model.core.client import Client
    from image2model.core.errors import ExportFailed, Image2ModelError

    client = Client(server_url=server, api_key=api_key)
    try:
        export = client.export(
            job_id, formats, face_limit=face_limit, height_mm=height_mm, up=up, origin=origin, files=files
        )
        if not quiet:
            print(f"export {export.export_id}: {len(export.files)} file(s) from job {job_id}", file=err)
        for path in client.download_export(export, out_dir):
            print(path, file=out)
        return EXIT_OK
    except ExportFailed as exc:
        print(f"error: the export failed: {exc.message}", file=err)
        return EXIT_FAILED
    except Image2ModelError as exc:
        return report(exc, err)
    except OSError as exc:  # writing the files, or TimeoutError: the export did not finish in time
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    finally:
        client.close()
