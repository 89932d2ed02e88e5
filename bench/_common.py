"""Shared pieces of the service benchmarks: a Stack on a temp dir, images, RSS reads, percentiles, verdicts."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


from tests.support.stack import BACKENDS, Stack  # noqa: E402


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """`--backend sqlite|redis`: the job store and queue of the service under test (Redis: a redis-server of
    the benchmark's own on loopback)."""
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite", help="job store and queue backend")


def snapshot(rev: str, root: Path) -> str:
    """Check out `rev` (git archive) under `root` with an `image2model` package pointing at it; returns the
    PYTHONPATH that makes the service processes import that code instead of the working tree."""
    import subprocess

    src = root / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    pkg = root / "shim" / "image2model"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("core", "api", "ui_gradio", "bot", "notebook_ext", "cli"):
        if (src / name).is_dir():
            (pkg / name).symlink_to(src / name)
    return f"{root / 'shim'}{os.pathsep}{src}"


@contextlib.contextmanager
def running_stack(
    name: str, *, workers: int | None = 1, processes: int = 1, backend: str = "sqlite", **settings: str
) -> Iterator[Stack]:
    """An API (and, unless `workers` is None, a worker) on a fresh temp dir and the given backend; stopped and
    removed on exit."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    stack = Stack(root / "data", backend, **settings)
    rev = os.environ.get("BENCH_REV")
    if rev:
        stack.env["PYTHONPATH"] = snapshot(rev, root)
    try:
        stack.start_api(processes)
        if workers is not None:
            stack.start_worker(workers)
        yield stack
    finally:
        stack.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"(kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def noisy_jpeg(target_bytes: int = 200 * 1024, seed: int = 1) -> bytes:
    """A real JPEG of about `target_bytes`: a smooth gradient under strong noise, so it cannot compress away."""
    from PIL import Image

    rng = random.Random(seed)
    side = 320
    data = b""
    for _ in range(12):
        noise = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        base = Image.linear_gradient("L").resize((side, side)).convert("RGB")
        image = Image.blend(base, noise, 0.6)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        data = out.getvalue()
        if abs(len(data) - target_bytes) < target_bytes * 0.03:
            break
        side = max(16, int(side * math.sqrt(target_bytes / len(data))))
    return data


def noise_png(max_bytes: int, seed: int) -> bytes:
    """A PNG of RGB noise as close under `max_bytes` as a square allows (noise does not compress)."""
    from PIL import Image

    rng = random.Random(seed)
    side = int(math.sqrt(max_bytes / 3))
    for _ in range(20):
        image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=0)
        data = out.getvalue()
        if len(data) <= max_bytes:
            return data
        side -= max(1, int(side * (len(data) - max_bytes) / len(data) / 2) + 1)
    raise RuntimeError("could not fit a noise PNG under the limit")


def small_jpeg(side: int = 256) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((side, side)).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A field of /proc/<pid>/status in kB (VmRSS now, VmHWM peak)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


class Verdicts:
    """Collects PASS/FAIL lines; `exit_code` is 1 when any target was missed."""

    def __init__(self) -> None:
        self.failed = 0

    def check(
        self, label: str, value: float, target: float, unit: str, higher_is_better: bool = False
    ) -> None:
        ok = value >= target if higher_is_better else value <= target
        sign = ">=" if higher_is_better else "<="
        self.failed += not ok
        shown = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
        print(f"  {'PASS' if ok else 'FAIL'}  {label}: {shown} {unit} (target {sign} {target:g} {unit})")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


async def follow_sse(port: int, path: str, on_event, deadline: float) -> None:
    """Read one SSE stream over a raw socket (HTTP/1.1, chunked), calling `on_event(receipt_time, event, data)`
    for each event until the stream ends or `deadline` (monotonic) passes. `data` is the parsed JSON."""
    import asyncio
    import json
    import time

    from image2model.core.client._sse import SSEDecoder

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), max(0.1, deadline - time.monotonic()))
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream {path} answered {head.splitlines()[0]!r}")
        decoder = SSEDecoder()
        while time.monotonic() < deadline:
            size_line = await asyncio.wait_for(
                reader.readuntil(b"\r\n"), max(0.1, deadline - time.monotonic())
            )
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return
            chunk = await reader.readexactly(size + 2)
            now = time.time()
            for event in decoder.feed(chunk[:-2]):
                on_event(now, event.event, json.loads(event.data))
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
