"""Import cost of the Python client: `import image2model.core.client` and the names front-ends use
(`Client`, `AsyncClient`, `JobView`, `job_link`), each in a fresh interpreter, less the interpreter's own start;
and which generator or server dependencies the import pulled in (none may be).

Usage: python bench/client_import.py [--quick] [--runs 15]
Target (issue 16): `import image2model.core.client` <= 150 ms, p50, importing no generator dependency. The
package resolves its names on first use, so the figure that front-ends feel is the second line (httpx, pydantic
and the contract's models); it is printed against the same 150 ms, for information.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import REPO, Verdicts, pct

TARGET_MS = 150.0
HEAVY = (
    "numpy",
    "PIL",
    "trimesh",
    "scipy",
    "fastapi",
    "huey",
    "starlette",
    "uvicorn",
    "fal_client",
    "redis",
    "boto3",
)
HEAVY_OURS = ("image2model.core.generators", "image2model.core.mesh", "image2model.api")
PROGRAMS = {
    "python -c pass": "pass",
    "import image2model.core.client": "import image2model.core.client",
    "+ Client, AsyncClient, JobView, job_link": (
        "from image2model.core.client import AsyncClient, Client, JobView, job_link"
    ),
}
LEAKS = (
    "import sys\n"
    "from image2model.core.client import AsyncClient, Client, JobView, job_link\n"
    f"heavy = {HEAVY!r}\nours = {HEAVY_OURS!r}\n"
    "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(ours))))\n"
)


def wall_ms(program: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", program], cwd=REPO, check=True)
    return (time.perf_counter() - t) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs each")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    verdicts = Verdicts()
    wall_ms("import image2model.core.client")  # warm the file cache and the bytecode
    p50 = {label: pct([wall_ms(program) for _ in range(runs)], 50) for label, program in PROGRAMS.items()}
    base = p50["python -c pass"]
    print(f"client import, p50 of {runs} fresh interpreters (interpreter start {base:.1f} ms subtracted):")
    for label in list(PROGRAMS)[1:]:
        print(f"  {label}: {p50[label] - base:.1f} ms")
    leaked = subprocess.run(
        [sys.executable, "-c", LEAKS], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    print(f"  generator / server modules imported: {leaked or 'none'}")
    verdicts.check(
        "import image2model.core.client", p50["import image2model.core.client"] - base, TARGET_MS, "ms"
    )
    names = p50[list(PROGRAMS)[-1]] - base
    print(f"  {'within' if names <= TARGET_MS else 'OVER'}  (information) with its names: {names:.1f} ms")
    verdicts.check(
        "generator / server modules imported", float(len(leaked.split(",")) if leaked else 0), 0, "modules"
    )
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
