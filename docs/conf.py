"""Sphinx configuration of the sb3_natgrad documentation (``make docs`` builds it with warnings as errors)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "sb3_natgrad"
author = "The sb3_natgrad developers"
copyright = "2026, The sb3_natgrad developers"
release = (ROOT / "sb3_natgrad" / "version.txt").read_text().strip()
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "**/results.jsonl", "**/overhead_repeats/**"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# The API reference documents this package's classes; their SB3 base classes are documented by SB3.
autodoc_inherit_docstrings = False

html_theme = "furo"
html_title = f"sb3_natgrad {release}"
