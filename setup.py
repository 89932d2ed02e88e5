"""The package build's one extra step: bundle the notebook's 3D viewer (three.js and our viewer, `notebook_ext/js`,
through esbuild from npm) into `notebook_ext/static/viewer.js` before the Python files are collected, so a wheel
ships it and an editable install finds it in the tree. Everything else is in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import SetupError

HERE = Path(__file__).resolve().parent
JS = HERE / "notebook_ext" / "js"
BUNDLE = HERE / "notebook_ext" / "static" / "viewer.js"


def _newest(paths: list[Path]) -> float:
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


def build_viewer() -> None:
    """Run `npm ci` (when node_modules is missing or older than the lock file) and `npm run build`, unless the
    bundle is newer than every source. Without npm, an existing bundle is kept; no bundle at all stops the build
    with a message that says what to install."""
    sources = [JS / "package.json", JS / "package-lock.json", *(JS / "src").rglob("*")]
    if BUNDLE.is_file() and BUNDLE.stat().st_mtime >= _newest(sources):
        return
    npm = shutil.which("npm")
    if npm is None:
        if BUNDLE.is_file():
            print(f"warning: npm not found; keeping {BUNDLE.relative_to(HERE)}, older than notebook_ext/js")
            return
        raise SetupError(
            "The notebook's 3D viewer (notebook_ext/static/viewer.js) is not built and npm is not installed. "
            "Install Node.js with npm (e.g. `apt-get install npm`, or from https://nodejs.org) and build again: "
            "the build runs `npm ci && npm run build` in notebook_ext/js by itself."
        )
    installed = JS / "node_modules" / ".package-lock.json"
    steps = (
        [["ci", "--no-audit", "--no-fund", "--loglevel=error"]]
        if _newest([installed]) < _newest(sources[1:2])
        else []
    )
    for step in [*steps, ["run", "build", "--silent"]]:
        done = subprocess.run([npm, *step], cwd=JS, capture_output=True, text=True)
        if done.returncode != 0:
            raise SetupError(
                f"`npm {' '.join(step)}` in notebook_ext/js failed (exit {done.returncode}) while building the "
                f"notebook's 3D viewer:\n{(done.stdout + done.stderr)[-3000:]}"
            )
    print(f"built {BUNDLE.relative_to(HERE)} ({BUNDLE.stat().st_size // 1024} KiB)")


class BuildPyWithViewer(build_py):
    def run(self) -> None:
        build_viewer()
        super().run()


setup(cmdclass={"build_py": BuildPyWithViewer})
