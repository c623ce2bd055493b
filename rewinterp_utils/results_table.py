"""The results page's table: every claims row of a build, gathered from the chapters' ``claims.csv`` files and
written as one HTML table that fits the book's page (the criterion folded to one short line, the full text one
click away)."""

from __future__ import annotations

import html
from typing import Mapping

import pandas as pd

from rewinterp_utils.claims import CLAIMS_FILE, FAILS, HOLDS, UNDECIDED
from rewinterp_utils.pipeline.artifacts import cell_dir, read_manifest
from rewinterp_utils.pipeline.stages import STAGES
from rewinterp_utils.pipeline.summary import verified_cells

FIELDS: tuple[str, ...] = ("key", "claim", "paper", "measured", "verdict", "interval", "criterion", "where", "chapter",
                           "page", "package")
"""The columns of :func:`collect_claims` (a ``claims.csv`` row, the page that wrote it and the hash of the package
code that made its cell, from the cell's manifest: ``not recorded`` when it has none)."""
OTHER_CODE = "made by other package code"
"""The mark of a row whose cell was made by package code other than the build's (its verdict may be stale)."""
CHAPTER_NAMES: dict[str, str] = {"gridworld": "Gridworld", "atari": "Atari", "table1": "Table 1",
                                 "preferences": "Preferences"}
"""How the table names each chapter."""
COLUMNS: tuple[tuple[str, int], ...] = (("claim", 27), ("paper", 13), ("this build", 21), ("verdict", 20),
                                        ("criterion", 19))
"""The table's columns with their share of the page's width (percent); each chapter's rows sit under a header row
that names it."""
OUTCOME_MARKS: dict[str, tuple[str, str]] = {HOLDS: ("✓", "#1a7f37"), FAILS: ("✗", "#cf222e"),
                                             UNDECIDED: ("?", "#9a6700")}
"""How the verdict column shows each of the three outcomes at a glance (a mark and a colour)."""


def collect_claims(profile: str) -> pd.DataFrame:
    """Every row of every verified cell's ``claims.csv`` at ``profile`` (strings, empty where missing), with the
    book page of the cell that wrote it; columns :data:`FIELDS` (no rows when no chapter was run)."""
    page_of = {cell_dir(c): page for st in STAGES.values() for page, c in st.pages(profile).items()}
    frames = [pd.read_csv(cell_dir(cell) / CLAIMS_FILE, dtype=str).fillna("")
              .assign(page=page_of.get(cell_dir(cell), next(iter(STAGES[stage].pages(profile)))),
                      package=str(read_manifest(cell_dir(cell)).get("package") or "not recorded"))
              for stage, cells in verified_cells(profile).items() for cell in cells
              if (cell_dir(cell) / CLAIMS_FILE).is_file()]
    if not frames:
        return pd.DataFrame(columns=list(FIELDS))
    return pd.concat(frames, ignore_index=True).reindex(columns=list(FIELDS)).fillna("")


def verdict_html(verdict: str, interval: str) -> str:
    """The verdict in bold with its outcome's mark and colour (:data:`OUTCOME_MARKS`), the interval it was decided
    on below it in small type."""
    mark, colour = OUTCOME_MARKS.get(verdict, ("", "inherit"))
    text = html.escape(verdict)
    head = f'<b style="color: {colour}">{mark} {text}</b>' if mark else f"<b>{text}</b>"
    return head + (f"<br><small>{html.escape(interval)}</small>" if interval else "")


def short_criterion(text: str, width: int = 40) -> str:
    """The criterion's first clause (up to `` (`` or ``;``, without a leading ``holds:``), cut at a word boundary to
    at most ``width`` characters with ``…`` when anything was left out."""
    head = text.split(" (")[0].split(";")[0].strip().removeprefix("holds: ")
    if len(head) > width:
        head = head[:width - 1].rsplit(" ", 1)[0]
    return head if head == text else head.rstrip(",:") + "…"


def criterion_html(text: str, width: int = 40) -> str:
    """The criterion as a ``<details>`` element: :func:`short_criterion` as its summary, the full text inside
    (plain escaped text when the short form is the whole)."""
    short = short_criterion(text, width)
    if short == text:
        return html.escape(text)
    return f"<details><summary>{html.escape(short)}</summary>{html.escape(text)}</details>"


def row_html(row: Mapping[str, str], package: str | None = None) -> str:
    """One claims row as ``<tr>``: the claim links to its page (``<page>.html``), the verdict as
    :func:`verdict_html`; when ``package`` (the build's package hash) is given and the row's cell was made by other
    package code, the verdict carries :data:`OTHER_CODE` in bold."""
    stale = package is not None and row.get("package", "") != package
    mark = f'<br><b style="color: #cf222e">⚠ {OTHER_CODE} ({html.escape(row.get("package", ""))})</b>' if stale else ""
    cells = [f'<a href="{html.escape(row["page"])}.html">{html.escape(row["claim"])}</a>',
             html.escape(row["paper"]), html.escape(row["measured"]),
             verdict_html(row["verdict"], row.get("interval", "")) + mark, criterion_html(row["criterion"])]
    return "<tr>" + "".join(f'<td style="vertical-align: top">{c}</td>' for c in cells) + "</tr>"


def claims_html(claims: pd.DataFrame, package: str | None = None) -> str:
    """The results table: one row per claim (columns :data:`COLUMNS`) under a header row per chapter, laid out to
    the page's width (fixed column shares, long words broken rather than cut). ``package``: the build's package
    hash; rows made by other package code are marked (:func:`row_html`)."""
    cols = "".join(f'<col style="width: {w}%">' for _, w in COLUMNS)
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in COLUMNS)
    body = ""
    for chapter, rows in claims.groupby("chapter", sort=False):
        name = html.escape(CHAPTER_NAMES.get(chapter, chapter))
        body += f'<tr><th colspan="{len(COLUMNS)}" style="text-align: left">{name}</th></tr>'
        body += "".join(row_html(r, package) for r in rows.to_dict("records"))
    return ('<table class="dataframe results-table" style="width: 100%; table-layout: fixed; '
            'overflow-wrap: anywhere; font-size: 0.85em">'
            f"<colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
