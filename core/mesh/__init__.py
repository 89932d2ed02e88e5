"""Mesh output: the textured mesh value, quality checks, exporters (GLB, OBJ zip, STL, PLY) and CPU previews.

Modules here import numpy at import time; generators import them lazily inside `generate`."""
