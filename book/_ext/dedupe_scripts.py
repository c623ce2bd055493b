"""Sphinx extension: two fixes to the scripts of every page, so the book loads without JavaScript errors.

1. Jupyter Book 1.0 and sphinx-book-theme both set up sphinx-thebe and sphinx-togglebutton, so each inline
   configuration script is added twice; the repeated ``const THEBE_JS_URL`` is a SyntaxError on every page.
   Keeping the first of identical scripts (same file and same inline body) fixes it.
2. On a first visit (nothing in ``localStorage``) the theme starts with an empty colour mode and logs "Got invalid
   theme mode" as an error; an early inline script sets the mode to ``auto``, the theme's own fallback.
"""

from __future__ import annotations

from typing import Any


def _dedupe(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # the same inline script comes once with filename None and once with "" (two setups)
        key = (getattr(script, "filename", str(script)) or "", getattr(script, "attributes", {}).get("body", ""))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


DEFAULT_MODE = "document.documentElement.dataset.mode = document.documentElement.dataset.mode || 'auto';"


def setup(app: Any) -> dict[str, Any]:
    app.add_js_file(None, body=DEFAULT_MODE, priority=1)
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
