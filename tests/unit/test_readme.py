"""The README stays true: its two opening commands and its settings table."""

from __future__ import annotations

import re
from pathlib import Path

from image2model.core.settings import Settings, markdown_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme():
    for name in Settings.model_fields:
        assert f"`IMAGE2MODEL_{name.upper()}`" in README, name
    assert markdown_table() in README, "regenerate the README settings table (see the README)"


def test_readme_opens_with_the_install_and_test_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert first_block == [
        'python3 -m pip install -e ".[all]" && image2model serve',
        'python3 -m pip install -e ".[all,dev]" && python3 -m pytest -q',
    ]
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert 'pip install -e ".[all,dev]"' in ci and "python3 -m pytest -q" in ci
