"""`lower_priority`: a cpu worker's niceness, and, where Linux shares the CPU out by session (autogroup), its
session's when the worker leads a session of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from image2model.cli import service
    group = service.AUTOGROUP = Path(sys.argv[1])
    service.lower_priority(int(sys.argv[2]))
    print(json.dumps({"nice": os.getpriority(os.PRIO_PROCESS, 0), "group": group.exists() and group.read_text()}))
    """
)


def _lower(autogroup: Path, nice: int, own_session: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(autogroup), str(nice)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        start_new_session=own_session,
    )
    return json.loads(out.stdout)


def test_a_worker_leading_its_own_session_gives_the_session_its_niceness(tmp_path: Path) -> None:
    autogroup = tmp_path / "autogroup"
    autogroup.write_text("/autogroup-41 nice 0\n")
    seen = _lower(autogroup, 10, own_session=True)
    assert seen["nice"] >= 10 and seen["group"].strip() == "10"


def test_a_worker_in_a_shared_session_leaves_the_sessions_share_alone(tmp_path: Path) -> None:
    autogroup = tmp_path / "autogroup"
    autogroup.write_text("/autogroup-41 nice 0\n")
    seen = _lower(autogroup, 10, own_session=False)  # a terminal's session, or `serve`'s (the API is in it)
    assert seen["nice"] >= 10 and seen["group"] == "/autogroup-41 nice 0\n"


def test_a_session_already_at_a_lower_priority_is_not_raised(tmp_path: Path) -> None:
    autogroup = tmp_path / "autogroup"
    autogroup.write_text("/autogroup-41 nice 15\n")
    assert _lower(autogroup, 10, own_session=True)["group"] == "/autogroup-41 nice 15\n"


def test_without_autogroup_the_worker_still_lowers_its_own_niceness(tmp_path: Path) -> None:
    assert _lower(tmp_path / "none", 7, own_session=True) == {"nice": 7, "group": False}
