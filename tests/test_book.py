"""The book's plumbing: glued numbers the book can format, one repository URL, install cells that use it."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from rewinterp_utils.pipeline.book import (
    SOURCE_KEY,
    _config_with_url,
    install_cell_source,
    mark_page,
    plain_glue_reprs,
    ran_with_line,
    reformat_sources,
    repository_url,
)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_numpy_reprs_in_glue_outputs_are_rewritten(tmp_path):
    glued = nbformat.v4.new_output("display_data", data={"application/papermill.record/text/plain": "np.float64(0.25)"},
                                   metadata={"scrapbook": {"name": "x", "mime_prefix": "application/papermill.record/"}})
    shown = nbformat.v4.new_output("display_data", data={"text/plain": "np.float64(0.25)"})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("", outputs=[glued, shown])])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    plain_glue_reprs(path)
    outs = nbformat.read(path, as_version=4).cells[0].outputs
    assert outs[0].data["application/papermill.record/text/plain"] == "0.25"
    assert outs[1].data["text/plain"] == "np.float64(0.25)"  # only glue records are touched


def test_reformat_sources_shows_the_committed_layout_only_for_the_same_program(tmp_path):
    """Executed and committed notebooks with one cell per case; the source each must show, worked out by hand."""
    cases = {  # id: (source that ran, committed source, the source the book must show)
        "layout": ("x = f(1,2)\ny=[1,\n 2]", "x = f(1, 2)\ny = [1, 2]", "committed"),
        "comment": ("x = 1", "# set x\nx = 1  # one", "committed"),
        "docstring": ('def f():\n    """Old words."""\n    return 1', 'def f():\n    """New words."""\n    return 1',
                      "committed"),
        "docstring-added": ("class A:\n    pass", 'class A:\n    """An A."""', "committed"),
        "changed": ("x = f(1, 2)", "x = f(1, 3)", "ran"),
        "string-changed": ('print("old")', 'print("new")', "ran"),
        "renamed": ("x = 1", "y = 1", "ran"),
        "syntax": ("x = (1,", "x = (1,)", "ran"),
        "only-ran": ("z = 3", None, "ran"),
    }
    ran = [nbformat.v4.new_markdown_cell("x = f(1,2)", id="md")]
    committed = [nbformat.v4.new_markdown_cell("x = f(1, 2)", id="md")]
    for cid, (old, new, _) in cases.items():
        out = nbformat.v4.new_output("stream", text=f"output of {cid}")
        ran.append(nbformat.v4.new_code_cell(old, id=cid, outputs=[out], execution_count=1))
        if new is not None:
            committed.append(nbformat.v4.new_code_cell(new, id=cid))
    path, source = tmp_path / "executed.ipynb", tmp_path / "committed.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=ran), path)
    nbformat.write(nbformat.v4.new_notebook(cells=committed[::-1]), source)  # matched by id, not position
    reformat_sources(path, source)
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].source == "x = f(1,2)", "markdown cells are left alone"
    for cell, (cid, (old, new, shown)) in zip(cells[1:], cases.items()):
        assert cell.id == cid and cell.source == (new if shown == "committed" else old), cid
        assert cell.outputs[0].text == f"output of {cid}" and cell.execution_count == 1, "outputs are kept"


def test_repository_url_is_written_once():
    pyproject = (REPO / "pyproject.toml").read_text()
    url = re.search(r'(?m)^Repository = "([^"]+)"', pyproject).group(1)
    assert repository_url() == url
    tracked = [p for p in REPO.rglob("*") if p.is_file() and p.suffix in {".py", ".md", ".yml", ".toml", ".ipynb"}
               and not any(part.startswith((".", "_build", "artifacts")) for part in p.relative_to(REPO).parts)]
    holders = [p.relative_to(REPO).as_posix() for p in tracked if url in p.read_text(errors="ignore")
               and p.suffix != ".ipynb"]
    assert holders == ["pyproject.toml"]
    config = _config_with_url((REPO / "_config.yml").read_text(), url)
    assert f"repository:\n  url: {url}\n" in config


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_install_cell_is_the_generated_one(path):
    """Every notebook's first code cell installs from pyproject's URL (regenerate with install_cell_source)."""
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert first.source == install_cell_source()
    assert "remove-cell" in first.metadata.get("tags", [])


def test_no_file_outside_the_repository_is_cited():
    brief = "PAPER" + ".md"
    files = [*REPO.joinpath("rewinterp_utils").rglob("*.py"), *REPO.joinpath("book").glob("*.md"), *NOTEBOOKS,
             REPO / "README.md"]
    assert [p.name for p in files if brief in p.read_text()] == []


# -- verdicts are computed, never typed -------------------------------------------------------------------
BOOK_PAGES = sorted((REPO / "book").glob("*.md"))
VERDICT_WORDS = re.compile(
    r"\b(held(?![- ]out)|holds|did not hold|same sign|not worse|about half|several times|a few percent|"
    r"about as well|unchanged to|as in the paper|random level)\b", re.IGNORECASE)
FALSIFIABLE = re.compile(
    r"\b(exactly when a reward|too few|collapses? to|start of learning|as direct a cue|reproduces the paper|"
    r"matches the constant)\b", re.IGNORECASE)
"""Findings of one build typed as prose (past offenders): no chapter or notebook page may state them."""
CLAIMS_GLUES = {"gridworld.md": ["maze_claims", "maze_fig3_claims"], "atari.md": ["atari_claims"], "preferences.md": ["pref_claims"],
                "table1.md": ["atari_table1_claims"]}


def _prose(md: Path) -> str:
    """A book page without its glue roles and fenced blocks (what the author typed)."""
    text = re.sub(r"\{glue:[a-z]+\}`[^`]*`", " ", md.read_text())
    return re.sub(r"```.*?```", " ", text, flags=re.DOTALL)


def _markdown(nb: Path) -> str:
    """A notebook's markdown cells without glue roles (what the author typed)."""
    text = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "markdown")
    return re.sub(r"\{glue:[a-z]+\}`[^`]*`", " ", text)


def test_no_verdict_is_typed_in_the_book():
    """A sentence that judges a claim ("held", "same sign", "about half") would be false in another build: every
    verdict is glued from a notebook that computed it. Notebook pages, which state their criteria in words, are
    held to the list of findings once typed as prose."""
    assert BOOK_PAGES
    typed = {md.name: VERDICT_WORDS.findall(_prose(md)) + FALSIFIABLE.findall(_prose(md)) for md in BOOK_PAGES}
    typed |= {nb.name: FALSIFIABLE.findall(_markdown(nb)) for nb in NOTEBOOKS}
    assert not {k: v for k, v in typed.items() if v}, typed


def test_no_claims_table_is_typed_and_each_chapter_glues_its_own():
    for md in BOOK_PAGES:
        for line in _prose(md).splitlines():
            if line.startswith("|"):
                assert not re.search(r"verdict|\bclaim\b|this run|this build", line, re.IGNORECASE), (md.name, line)
    for page, glues in CLAIMS_GLUES.items():
        text = (REPO / "book" / page).read_text()
        for name in glues:
            assert f"```{{glue}} {name}\n" in text, (page, name)


def test_notebook_code_fits_the_page():
    """Code cells are formatted to 76 columns (notebooks/ruff.toml), so no reader scrolls sideways."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", str(REPO / "notebooks")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                long = [line for line in cell.source.splitlines() if len(line) > 76]
                assert not long, (path.name, long)


# -- launch buttons open the notebook a page ran; each page says what it ran with ----------------------------
def _launch_links():
    import importlib.util

    spec = importlib.util.spec_from_file_location("launch_links", REPO / "book" / "_ext" / "launch_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ran_with_line_names_the_parameters_and_the_notebook():
    from rewinterp_utils.pipeline.stages import STAGES

    cell = STAGES["atari_dataset"].pages("smoke")["atari_dataset_Seaquest"]
    assert ran_with_line(cell) == ("Ran with `-p game Seaquest -p seed 0` at profile `smoke` "
                                   "(`notebooks/atari_dataset.ipynb`).")
    cell = STAGES["maze_retrain"].cell("default", env_id="EmptyMaze-10x10-TwoGoals-v3", total_timesteps=512)
    assert ran_with_line(cell) == (
        "Ran with `-p env_id EmptyMaze-10x10-TwoGoals-v3 -p reward learned -p seed 0 -p rm_env_id "
        "EmptyMaze-10x10-CoinFlipGoal-v3 -p rm_seed 0 -p total_timesteps 512` at profile `default` "
        "(`notebooks/maze_retrain.ipynb`).")
    assert ran_with_line(cell, "0123456789ab").endswith("(`notebooks/maze_retrain.ipynb`, commit `0123456789ab`).")


def test_the_build_commit_is_the_checkouts():
    import subprocess

    from rewinterp_utils.pipeline.book import REPO, build_commit

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    commit = build_commit()
    assert commit is not None and commit.split(" ")[0] == head


def test_the_install_cell_shows_progress_and_fails_in_one_line(tmp_path):
    """Run the install cell where rewinterp is missing and pip fails: it exits naming the address it tried."""
    import subprocess
    import sys

    source = install_cell_source().replace('find_spec("rewinterp_utils")', 'find_spec("no_such_module_x")')
    source = source.replace('"-m pip install --progress-bar on".split()', '["-c", "raise SystemExit(1)"]')
    assert "--progress-bar on" in install_cell_source() and "raise SystemExit(1)" in source
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("pip could not install git+https://") and "pip install -e ." in done.stderr


def test_a_page_is_marked_with_its_notebook_and_parameters(tmp_path):
    from rewinterp_utils.pipeline.stages import STAGES

    cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1"),
             nbformat.v4.new_code_cell("game = 'x'", metadata={"tags": ["parameters"]})]
    path = tmp_path / "page.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    cell = STAGES["atari_expert"].pages("smoke")["atari_expert_Breakout"]
    for _ in range(2):  # marking twice marks once
        mark_page(path, cell, "notebooks/atari_expert.ipynb")
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata[SOURCE_KEY] == "notebooks/atari_expert.ipynb"
    assert [c.source for c in nb.cells] == ["# Title", "x = 1", ran_with_line(cell), "game = 'x'"]
    mark_page(path, cell, None, ran_with=False)
    nb = nbformat.read(path, as_version=4)
    assert SOURCE_KEY not in nb.metadata and len(nb.cells) == 3


def test_launch_links_are_pointed_at_the_notebook_or_removed():
    ext = _launch_links()
    colab = {"type": "link", "text": "Colab",
             "url": "https://colab.research.google.com/github/o/r/blob/main/notebooks/atari_expert_Breakout.ipynb"}
    encoded = {"type": "link", "text": "Deepnote", "url": "https://deepnote.com/launch?url=x%2Fatari_expert_Breakout"}
    live = {"type": "javascript", "text": "Live Code"}
    old = "notebooks/atari_expert_Breakout.ipynb"
    assert ext.retarget([colab, encoded, live], old, "notebooks/atari_expert.ipynb") == [
        {**colab, "url": "https://colab.research.google.com/github/o/r/blob/main/notebooks/atari_expert.ipynb"}]
    assert ext.retarget([colab, live], old, None) == []
    assert ext.SOURCE_KEY == SOURCE_KEY


def test_every_launch_link_of_the_book_opens_a_notebook_of_the_repository(smoke_book):
    """Colab links name a notebook the repository has (a sweep's pages its stage notebook), and every page of a
    stage says which parameters it ran with."""
    html = smoke_book
    links = {}
    for page in html.rglob("*.html"):
        for url in re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page.read_text()):
            links.setdefault(page.relative_to(html).as_posix(), []).append(url)
    target = re.compile(r"^https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/(.+)$")
    named = {page: [target.match(u).group(1) if target.match(u) else u for u in urls] for page, urls in links.items()}
    assert {p: n for p, n in named.items() if not all((REPO / x).is_file() for x in n)} == {}
    assert named["notebooks/atari_expert_Breakout.html"] == ["notebooks/atari_expert.ipynb"]
    assert named["notebooks/atari_reward_model_Seaquest_hidden.html"] == ["notebooks/atari_reward_model.ipynb"]
    assert named["notebooks/maze_expert.html"] == ["notebooks/maze_expert.ipynb"]
    assert not any(p.startswith("book/") for p in named)  # prose pages have no notebook to launch
    text = re.sub(r"<[^>]+>", "", (html / "notebooks" / "atari_expert_Seaquest.html").read_text())
    assert "Ran with -p game Seaquest -p seed 0 at profile smoke" in text
