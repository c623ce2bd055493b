"""Whether a person is looking: live ipywidgets where someone can use them, static pictures under batch execution.

Displaying a live ipywidget in a kernel driven by nbclient (papermill, ``rewinterp run``, a book build) can leave
the cell without an execute reply for good (jupyter/nbclient#312), and nobody is there to move a slider anyway.
:func:`live_widgets` decides, once for every interactive object of the package
(:class:`~rewinterp_utils.explorer.RewardExplorer`, :class:`~rewinterp_utils.scrubber.AtariScrubber`), and
:func:`widget_or_static` gives a notebook cell the live widget or the static picture the book uses.

The decision, in order:

1. ``REWINTERP_WIDGETS=live`` or ``static`` forces it (any other value: ``ValueError``).
2. Outside an IPython kernel (a script, a test): static.
3. In Colab: live (Colab's custom widget manager is switched on first).
4. Under batch execution: static. The runner's workers and the tests' notebook helper set ``REWINTERP_BATCH=1``;
   a kernel started by papermill, nbclient, nbconvert, Jupyter Book or pytest is recognised by its parent process.
5. Otherwise (Jupyter, JupyterLab, VS Code): live.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, TypeVar

WIDGETS_ENV = "REWINTERP_WIDGETS"
BATCH_ENV = "REWINTERP_BATCH"
WIDGET_MODES: tuple[str, ...] = ("live", "static")
BATCH_PARENTS: tuple[str, ...] = ("papermill", "nbclient", "nbconvert", "jupyter-book", "jupyter_book", "sphinx",
                                  "pytest", "rewinterp_utils.pipeline")
"""Words in the command line of a kernel's parent process that mean nobody is looking."""

W = TypeVar("W")


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _in_colab() -> bool:
    return "google.colab" in sys.modules


def _parent_is_batch() -> bool:
    """Whether the kernel's parent process is a batch executor (see :data:`BATCH_PARENTS`)."""
    try:
        import psutil

        parent = psutil.Process().parent()
        cmdline = " ".join(parent.cmdline()) if parent is not None else ""
    except Exception:  # noqa: BLE001 (no psutil, no permission: decide on the other signs)
        return False
    return any(word in cmdline for word in BATCH_PARENTS)


def live_widgets() -> bool:
    """Whether live widgets should be displayed here (see the module docstring for the rule)."""
    forced = os.environ.get(WIDGETS_ENV, "").strip()
    if forced:
        if forced not in WIDGET_MODES:
            raise ValueError(f"{WIDGETS_ENV} must be one of {', '.join(WIDGET_MODES)}, got {forced!r}")
        return forced == "live"
    if not _in_kernel():
        return False
    if _in_colab():
        return True
    if os.environ.get(BATCH_ENV):
        return False
    return not _parent_is_batch()


def enable_colab_widgets() -> None:
    """Switch on Colab's custom widget manager (ipywidgets 8 need it there); does nothing elsewhere."""
    if _in_colab():
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()


def widget_or_static(build: Callable[[], W], static: Callable[[], Any]) -> W | Any:
    """``build()`` (the live widget) where :func:`live_widgets` says so, else ``static()`` (a figure or HTML).

    Neither is made unless it is shown: under batch execution no widget (and no comm) is ever created.
    """
    if live_widgets():
        enable_colab_widgets()
        return build()
    return static()


__all__ = ["BATCH_ENV", "WIDGETS_ENV", "enable_colab_widgets", "live_widgets", "widget_or_static"]
