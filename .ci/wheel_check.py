"""CI: image2model as a user installs it. Build the wheel, install it (not editable) into a fresh virtual
environment, start `image2model serve` from there, make one model with `image2model generate`, and check what the
user sees: the wheel holds the notebook viewer's bundle, the serving terminal shows the URLs and one line for the
job (the rest is in the log file), and the model file has the user's normal permissions.

    python3 .ci/wheel_check.py      # about a minute with the wheels cached; exits 1 with the reason on failure
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "image2model/core/generators/local/samples/toy.png"


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"wheel check FAILED: {message}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(what: str, started: float) -> None:
    print(f"[{time.monotonic() - started:5.1f} s] {what}", flush=True)


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="i2m-wheel-") as tmp:
        root = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(root / "dist")],
            check=True,
        )
        (wheel,) = (root / "dist").glob("image2model-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        check("image2model/notebook_ext/static/viewer.js" in names, "the wheel has no notebook viewer bundle")
        check(
            SAMPLE in names and "image2model/cli/main.py" in names, "the wheel misses the CLI or the samples"
        )
        check(
            not [n for n in names if "/js/" in n or n.startswith("tests/")],
            "the wheel ships sources it needs not",
        )
        step(f"built {wheel.name} ({wheel.stat().st_size // 1024} KiB)", started)

        env_dir = root / "venv"
        venv.EnvBuilder(with_pip=True).create(env_dir)
        bin_dir = env_dir / "bin"
        subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", str(wheel)], check=True)
        step("installed it with its dependencies into a fresh virtual environment", started)

        # Run outside the checkout, with the venv's own command: nothing can come from the source tree.
        work = root / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGE2MODEL_", "PYTHON"))}
        env |= {"IMAGE2MODEL_DATA_DIR": str(work / "data"), "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}
        where = subprocess.run(
            ["python", "-c", "import image2model.cli, image2model.notebook_ext as n; print(n.__path__[0])"],
            cwd=work, env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        check(where.startswith(str(env_dir)), f"image2model was imported from {where}, not the fresh venv")
        check(
            Path(where, "static", "viewer.js").stat().st_size > 100_000,
            "the installed viewer bundle is empty",
        )

        port = free_port()
        serve = subprocess.Popen(
            ["image2model", "serve", "--port", str(port), "--workers", "1", "--no-ui"],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            banner: list[str] = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not any("Press Ctrl-C" in line for line in banner):
                line = serve.stdout.readline() if serve.stdout else ""
                check(bool(line), f"serve stopped before it was ready: {''.join(banner)}")
                banner.append(line)
            check(any(f"http://127.0.0.1:{port}" in line for line in banner), f"no API URL in {banner}")
            step(f"serve is up: {banner[0].strip()}", started)

            sample = work / "toy.png"
            sample.write_bytes(zipfile.ZipFile(wheel).read(SAMPLE))
            made = subprocess.run(
                ["image2model", "generate", str(sample), "--face-limit", "3000", "-o", "models", "-q",
                 "--server", f"http://127.0.0.1:{port}"],
                cwd=work, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            check(made.returncode == 0, f"generate exited {made.returncode}: {made.stderr}")
            models = [Path(line) for line in made.stdout.split()]
            check(any(m.suffix == ".glb" for m in models), f"no GLB saved: {made.stdout}")
            umask = os.umask(0o022)
            os.umask(umask)
            for model in models:
                path = work / model if not model.is_absolute() else model
                mode = path.stat().st_mode & 0o777
                check(
                    mode == 0o666 & ~umask,
                    f"{model} has mode {mode:o}, not {0o666 & ~umask:o} (umask {umask:o})",
                )
            step(f"generate saved {', '.join(m.name for m in models)}", started)
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                rest, _ = serve.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                rest, _ = serve.communicate()
        terminal = "".join(banner) + rest
        check(serve.returncode == 0, f"serve exited {serve.returncode}:\n{terminal}")
        check(
            "event=job_finished" in terminal and "status=completed" in terminal, f"no job line:\n{terminal}"
        )
        check(
            "level=info logger=huey" not in terminal and "Executing" not in terminal, f"chatter:\n{terminal}"
        )
        log = (work / "data" / "logs" / "image2model.log").read_text()
        check("event=item_completed" in log and "Huey consumer started" in log, "the log file misses lines")
        step("the terminal showed the URLs and the job; the log file holds the rest", started)
    print(f"wheel check PASSED in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
