"""Upload memory: how much one 25 x 10 MiB upload raises the API process's resident memory.

Usage: python bench/upload_memory.py [--quick] [--files 25] [--repeat 2]
Target (issue 2): <= 30 MB over the RSS before the upload (the body must stream to disk, and validation must
decode one image at a time). The files are noise PNGs just under the 10 MiB limit (about 3.5 MP each, under
the 40 MP ceiling). VmRSS of the API is sampled every millisecond or so during the upload; the kernel's
high-water mark (VmHWM) is read too, as a check on what the sampling might miss. Workers are stopped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import Verdicts, noise_png, rss_kb, running_stack, small_jpeg

TARGET_MB = 30.0
MAX_FILE = 10 * 1024 * 1024


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.samples = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            self.samples += 1
            time.sleep(0.001)


def upload(base: str, paths: list[Path], pid: int, timeout: float) -> dict[str, float]:
    before = rss_kb(pid)
    hwm_before = rss_kb(pid, "VmHWM")
    sampler = Sampler(pid)
    sampler.start()
    handles = [p.open("rb") for p in paths]
    t0 = time.perf_counter()
    try:
        r = httpx.post(
            f"{base}/api/v1/upload/",
            files=[("files", (p.name, h, "image/png")) for p, h in zip(paths, handles, strict=True)],
            timeout=timeout,
        )
    finally:
        for h in handles:
            h.close()
        elapsed = time.perf_counter() - t0
        time.sleep(0.05)
        sampler.stop_flag.set()
        sampler.join()
    if r.status_code != 200:
        raise RuntimeError(f"upload failed: {r.status_code} {r.text[:500]}")
    after = rss_kb(pid)
    return {
        "seconds": elapsed,
        "samples": sampler.samples,
        "before_mb": before / 1024,
        "peak_delta_mb": (sampler.peak_kb - before) / 1024,
        "after_delta_mb": (after - before) / 1024,
        "hwm_delta_mb": max(0, rss_kb(pid, "VmHWM") - max(hwm_before, before)) / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one upload")
    parser.add_argument("--files", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=2, help="big uploads one after another")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    with tempfile.TemporaryDirectory(prefix="bench-upload-memory-files-") as tmp:
        t = time.perf_counter()
        paths = []
        for i in range(args.files):
            path = Path(tmp) / f"noise{i:02d}.png"
            path.write_bytes(noise_png(MAX_FILE - 4096, seed=i))
            paths.append(path)
        total = sum(p.stat().st_size for p in paths)
        print(
            f"upload_memory: {args.files} noise PNGs, {total / args.files / 1048576:.2f} MiB each "
            f"({total / 1048576:.0f} MiB in all), made in {time.perf_counter() - t:.1f} s; workers stopped"
        )
        v = Verdicts()
        with running_stack("upload-memory", workers=None, rate_limit_per_minute="0") as stack:
            assert stack.api is not None
            pid = stack.api.pid
            # Warm-up: one small upload, so lazy imports and first-request allocations are not counted.
            warm = httpx.post(
                f"{stack.url}/api/v1/upload/",
                files=[("files", ("w.jpg", small_jpeg(), "image/jpeg"))],
                timeout=30,
            )
            warm.raise_for_status()
            time.sleep(0.5)
            worst = 0.0
            for i in range(args.repeat):
                r = upload(stack.url, paths, pid, args.timeout)
                print(
                    f"  upload {i + 1}: {r['seconds']:.1f} s, RSS before {r['before_mb']:.0f} MB, "
                    f"peak +{r['peak_delta_mb']:.1f} MB ({r['samples']} samples), after +{r['after_delta_mb']:.1f} MB, "
                    f"VmHWM +{r['hwm_delta_mb']:.1f} MB"
                )
                worst = max(worst, r["peak_delta_mb"], r["hwm_delta_mb"])
        v.check("RSS rise during a 25 x 10 MiB upload (worst)", worst, TARGET_MB, "MB")
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main())
