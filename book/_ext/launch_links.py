"""Sphinx extension: a page's launch buttons (Colab) open the repository notebook the page ran, or are not shown.

sphinx-book-theme makes every launch link from ``repository.path_to_book`` and the page's own name, e.g.
``notebooks/atari_expert_Breakout.ipynb``. A page of a sweep is one execution of a stage notebook
(``notebooks/atari_expert.ipynb`` with ``game="Breakout"``) and has no file of that name in the repository.
``rewinterp book`` writes the notebook a page ran into the page's metadata (``rewinterp_notebook``, relative to the
book's root; myst-nb passes notebook metadata to Sphinx); after the theme has added its buttons, this extension
points each launch link there and removes the launch buttons of a page without one.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

SOURCE_KEY = "rewinterp_notebook"  # rewinterp_utils.pipeline.book.SOURCE_KEY
LAUNCH_GROUP = "launch-buttons"  # the label sphinx-book-theme gives its group of launch buttons


def retarget(buttons: list[dict[str, Any]], old: str, new: str | None) -> list[dict[str, Any]]:
    """The launch buttons whose link ends with the page's own path ``old``, ending with ``new`` instead; none
    when ``new`` is ``None`` (the page ran no notebook of the repository). Buttons that cannot be pointed
    elsewhere (no link, or a link that does not end with ``old``) are dropped rather than left wrong."""
    if new is None:
        return []
    return [{**b, "url": b["url"][: -len(old)] + new} for b in buttons
            if b.get("type") == "link" and str(b.get("url", "")).endswith(old)]


def _relaunch(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    header = context.get("header_buttons")
    if not header or not any(b.get("label") == LAUNCH_GROUP for b in header):
        return
    book = app.config.html_theme_options.get("path_to_docs", "").strip("/")
    prefix = f"{book}/" if book else ""
    old = f"{prefix}{pagename}{Path(app.env.doc2path(pagename)).suffix}"  # as the theme writes it
    target = app.env.metadata.get(pagename, {}).get(SOURCE_KEY)
    new = posixpath.normpath(f"{prefix}{target}") if target else None  # path_to_book "." adds no "./"
    for group in header:
        if group.get("label") == LAUNCH_GROUP:
            group["buttons"] = retarget(group.get("buttons", []), old, new)
    context["header_buttons"] = [b for b in header if b.get("label") != LAUNCH_GROUP or b["buttons"]]


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _relaunch, priority=600)  # after the theme's launch buttons (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
