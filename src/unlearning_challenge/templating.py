"""HTML from jinja2 templates, shared by the competition pages and the detailed results page.

Autoescape is on (every value is escaped, quotes included, unless it is
``markupsafe.Markup``) and undefined values are errors (StrictUndefined): a
template that names a value it is not given fails instead of rendering blank.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

__all__ = ["html_environment"]


def html_environment(folder: Path | None = None) -> jinja2.Environment:
    """A jinja2 environment for HTML: autoescape, StrictUndefined, trailing newlines kept.

    ``folder`` holds the templates loaded by name (None: only ``from_string``).
    """
    loader = jinja2.FileSystemLoader(str(folder)) if folder is not None else None
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)
