"""The HTML of audit reports (:mod:`rewinterp_utils.html_report`): MyST roles as text, verdicts by colour and word,
rows linked to their reports, code hidden behind a toggle."""

from __future__ import annotations

import pandas as pd

from rewinterp_utils.claims import FAILS, HOLDS, UNDECIDED
from rewinterp_utils.html_report import VERDICT_COLOURS, myst_roles_as_text, table_html, with_code_hidden


def test_myst_roles_become_the_text_a_reader_needs():
    text = ("See {doc}`../notebooks/audit_compare`, {func}`~rewinterp_utils.audit.audit_model`, "
            "{mod}`rewinterp_utils.checks`, {doc}`the results <results>` and {glue:text}`n_models`.")
    assert myst_roles_as_text(text) == ("See audit compare, `audit_model()`, `rewinterp_utils.checks`, the results "
                                        "and n_models.")
    assert myst_roles_as_text("no roles, `code` stays") == "no roles, `code` stays"


def test_verdicts_are_marked_by_colour_and_word_and_rows_link_to_reports():
    table = pd.DataFrame({"heldout": [HOLDS, FAILS], "epic": [UNDECIDED, 0.123456], "n": [3, 4]},
                         index=pd.Index(["a", "b"], name="model"))
    out = table_html(table, links={"a": "a.html"})
    for verdict in (HOLDS, FAILS, UNDECIDED):
        assert f'<td style="background:{VERDICT_COLOURS[verdict]}">{verdict}</td>' in out
    assert "<td>0.1235</td>" in out and "<td>3</td>" in out
    assert '<th><a href="a.html">a</a></th>' in out and "<th>b</th>" in out


def test_code_is_hidden_at_first_and_the_first_part_opens_the_body():
    body = '<html><head></head><body class="jp-Notebook" data-x="1"><div class="jp-Cell-inputWrapper">x</div></body>'
    out = with_code_hidden(body, "<h2>Verdicts</h2>")
    assert '<body class="rewinterp-hide-code jp-Notebook" data-x="1">' in out
    assert out.index("Show code") < out.index("<h2>Verdicts</h2>") < out.index("jp-Cell-inputWrapper\">x")
    assert with_code_hidden("<body>x</body>").startswith('<body class="rewinterp-hide-code">')
    assert ".rewinterp-hide-code .jp-CodeCell .jp-Cell-inputWrapper" in out, "only code is hidden, not the prose"
    assert "jp-MarkdownCell" not in out.split("</style>")[0]
