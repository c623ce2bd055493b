"""Self-contained HTML for audit reports: verdict tables marked by colour and word, embedded figures, MyST roles
as text, code hidden behind a toggle. Nothing is loaded from the network.

Used by :meth:`rewinterp_utils.env_audit.EnvAuditResult.to_html` and by ``rewinterp audit``'s notebook reports
(:func:`rewinterp_utils.pipeline.reports.render_html`) and their ``comparison.html``.
"""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any, Iterable, Mapping

import pandas as pd

from rewinterp_utils.claims import FAILS, HOLDS, UNDECIDED

VERDICT_COLOURS: dict[str, str] = {HOLDS: "#d8f0d8", FAILS: "#f6d5d5", UNDECIDED: "#f3ecc8"}
"""Background of a cell holding each verdict (the word is always written too)."""
_ROLE = re.compile(r"\{([\w:]+)\}`([^`]*)`")
_TITLED = re.compile(r"^(.*?)\s*<([^>]*)>$")


def _role_text(match: re.Match) -> str:
    role, target = match.group(1), match.group(2)
    titled = _TITLED.match(target)
    if titled and titled.group(1):
        return titled.group(1)
    target = target.lstrip("~")
    if role in ("func", "meth", "class", "mod", "attr", "data", "obj"):
        short = target.split(".")[-1] if match.group(2).startswith("~") else target
        return f"`{short}{'()' if role in ('func', 'meth') else ''}`"
    if role == "doc":
        return target.rsplit("/", 1)[-1].replace("_", " ")
    return target


def myst_roles_as_text(markdown: str) -> str:
    """MyST roles (``{doc}`page```, ``{func}`~pkg.mod.f```, ``{glue:text}`key```) as the text a reader needs: a
    page's name, a function's short name as code, a titled target's title."""
    return _ROLE.sub(_role_text, markdown)


def table_html(table: pd.DataFrame, links: Mapping[str, str] | None = None, digits: int = 4) -> str:
    """``table`` as an HTML table, every cell that holds a verdict coloured (:data:`VERDICT_COLOURS`); ``links``:
    row label -> address the label links to."""
    def cell(v: Any) -> str:
        text = f"{v:.{digits}g}" if isinstance(v, float) else str(v)
        colour = VERDICT_COLOURS.get(text)
        style = f' style="background:{colour}"' if colour else ""
        return f"<td{style}>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [table.index.name or "", *table.columns])
    rows = []
    for label, row in table.iterrows():
        name = html.escape(str(label))
        if links and str(label) in links:
            name = f'<a href="{html.escape(links[str(label)])}">{name}</a>'
        rows.append(f"<tr><th>{name}</th>{''.join(cell(v) for v in row)}</tr>")
    return f"<table class='verdicts' border=1 cellspacing=0 cellpadding=4><tr>{head}</tr>{''.join(rows)}</table>"


def figure_html(fig: Any) -> str:
    """A matplotlib figure as an embedded PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def page(title: str, parts: Iterable[str]) -> str:
    """One HTML page of ``parts``."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


CODE_TOGGLE = """<style>.rewinterp-hide-code .jp-CodeCell .jp-Cell-inputWrapper {display: none;}</style>
<button id="rewinterp-code-toggle" onclick="document.body.classList.toggle('rewinterp-hide-code');
this.textContent = document.body.classList.contains('rewinterp-hide-code') ? 'Show code' : 'Hide code';">Show code</button>
"""
"""A button that shows and hides every code cell's input (hidden at first: the body starts with the class); the
prose of markdown cells, which nbconvert also puts in an input wrapper, stays."""


def with_code_hidden(body: str, first: str = "") -> str:
    """An nbconvert HTML page with its code inputs hidden behind :data:`CODE_TOGGLE`, and ``first`` (e.g. the
    verdict table) at the top of the body."""
    start = body.index("<body")
    end = body.index(">", start) + 1
    tag = body[start:end]
    if "class=" in tag:
        tag = tag.replace('class="', 'class="rewinterp-hide-code ', 1)
    else:
        tag = tag[:-1] + ' class="rewinterp-hide-code">'
    return body[:start] + tag + "\n" + CODE_TOGGLE + first + body[end:]


__all__ = ["CODE_TOGGLE", "VERDICT_COLOURS", "figure_html", "myst_roles_as_text", "page", "table_html",
           "with_code_hidden"]
