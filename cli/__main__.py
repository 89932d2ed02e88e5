"""`python -m image2model.cli ...`, the same as the `image2model` command."""

from __future__ import annotations

import sys

from image2model.cli.main import main

sys.exit(main())
