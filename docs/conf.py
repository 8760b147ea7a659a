"""Sphinx configuration: the pages are Markdown (MyST), the API reference comes from the
installed package's docstrings (autodoc, numpy-style sections through napoleon)."""
import l2decay

project = "l2decay"
release = version = l2decay.__version__
copyright = "the l2decay authors"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"     # the signatures say it; the docstrings say what each argument is
napoleon_google_docstring = False
napoleon_numpy_docstring = True

html_theme = "furo"
html_title = f"l2decay {release}"
