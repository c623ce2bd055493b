"""Glue numbers into the book (myst-nb) so that prose can quote them, and tidy executed notebooks for Sphinx."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

_NUMPY_REPR = re.compile(r"^np\.(?:float|int|uint|bool_)\w*\((.*)\)$")


def plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (glued text must be a plain number to be formatted)."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


def glue_metrics(metrics: dict[str, Any]) -> None:
    """``myst_nb.glue`` every metric under its own key, hidden (the book quotes them with ``{glue:text}``)."""
    from myst_nb import glue

    for key, value in metrics.items():
        glue(key, plain(value), display=False)


def plain_glue_reprs(path: Path) -> None:
    """Rewrite numpy-2 scalar reprs (``np.float64(0.5)``) in a notebook's glued outputs as plain numbers.

    Notebooks glue plain numbers (:func:`glue_metrics`); this keeps notebooks executed before that
    buildable, since myst-nb cannot format ``np.float64(...)`` text.
    """
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "scrapbook" not in out.get("metadata", {}):
                continue
            for mime, text in out.get("data", {}).items():  # glue stores "<prefix>/text/plain"
                if mime.endswith("text/plain") and isinstance(text, str) and _NUMPY_REPR.match(text):
                    out["data"][mime] = _NUMPY_REPR.sub(r"\1", text)
                    changed = True
    if changed:
        nbformat.write(nb, path)
