"""The results page's HTML table: the criterion folded to a short line, every field escaped, one row per claim."""

from __future__ import annotations

from html.parser import HTMLParser

import pandas as pd
import pytest

from rewinterp_utils.results_table import COLUMNS, claims_html, criterion_html, short_criterion

LONG = "held: held-out MSE < 0.1 on every seed (did not hold: on none; mixed: on some)"


@pytest.mark.parametrize("text, width, short", [
    (LONG, 40, "held: held-out MSE < 0.1 on every seed…"),
    (LONG, 20, "held: held-out MSE…"),
    ("passes: every model passes", 40, "passes: every model passes"),
    ("a; b", 40, "a…"),
    ("holds: R > 0.5 over the interval (does not hold: nowhere)", 40, "R > 0.5 over the interval…"),
])
def test_short_criterion(text, width, short):
    assert short_criterion(text, width) == short
    assert len(short_criterion(text, width)) <= width


def test_criterion_html_folds_only_what_is_longer():
    assert criterion_html("short & plain") == "short &amp; plain"
    assert criterion_html(LONG) == ("<details><summary>held: held-out MSE &lt; 0.1 on every seed…</summary>"
                                    "held: held-out MSE &lt; 0.1 on every seed (did not hold: on none; mixed: on "
                                    "some)</details>")


class _Cells(HTMLParser):
    """Collects each row's cell texts and the column widths."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.widths: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
            self._in_cell = True
        elif tag == "col":
            self.widths.append(dict(attrs)["style"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data


def test_claims_html_has_one_row_per_claim_with_every_field():
    claims = pd.DataFrame([
        {"key": "a", "claim": "R <b>", "paper": "0.076", "measured": "0.01 ± 0.00 (3 seeds)", "verdict": "holds",
         "interval": "90% interval [0.003, 0.04] (3 seeds)", "criterion": LONG, "where": "", "chapter": "atari",
         "page": "atari_seeds"},
        {"key": "b", "claim": "c2", "paper": "not run", "measured": "2 of 2", "verdict": "undecided",
         "interval": "", "criterion": "passes", "where": "", "chapter": "new", "page": "p"},
        {"key": "c", "claim": "c3", "paper": "x", "measured": "y", "verdict": "does not hold",
         "interval": "1 seed: no interval", "criterion": "z", "where": "", "chapter": "new", "page": "p"},
    ])
    text = claims_html(claims)
    parsed = _Cells()
    parsed.feed(text)
    assert parsed.rows[0] == [name for name, _ in COLUMNS]
    assert parsed.rows[1] == ["Atari"]  # the chapter's header row
    assert parsed.rows[2] == ["R <b>", "0.076", "0.01 ± 0.00 (3 seeds)", "✓ holds90% interval [0.003, 0.04] (3 seeds)",
                              "held: held-out MSE < 0.1 on every seed…" + LONG]
    assert parsed.rows[3] == ["new"]
    assert parsed.rows[4] == ["c2", "not run", "2 of 2", "? undecided", "passes"]
    assert parsed.rows[5][3] == "✗ does not hold1 seed: no interval"
    assert 'color: #1a7f37">✓ holds</b><br><small>' in text and 'color: #cf222e">✗ does not hold' in text
    assert sum(int(w.split()[1].rstrip("%;")) for w in parsed.widths) == 100
    assert '<a href="atari_seeds.html">R &lt;b&gt;</a>' in text
    assert "table-layout: fixed" in text


def test_rows_made_by_other_package_code_are_marked():
    """Given the build's package hash, a row whose cell another package code made carries the mark and that code's
    hash; a row of the build's own code does not; without a hash nothing is marked."""
    from rewinterp_utils.results_table import OTHER_CODE

    row = {"key": "a", "claim": "c", "paper": "p", "measured": "m", "verdict": "holds", "interval": "",
           "criterion": "x", "where": "", "chapter": "atari", "page": "p"}
    claims = pd.DataFrame([row | {"package": "aaaa"}, row | {"key": "b", "package": "bbbb"}])
    text = claims_html(claims, package="aaaa")
    parsed = _Cells()
    parsed.feed(text)
    assert OTHER_CODE not in parsed.rows[2][3]
    assert parsed.rows[3][3] == f"✓ holds⚠ {OTHER_CODE} (bbbb)"
    assert OTHER_CODE not in claims_html(claims)
