"""``rewinterp book``: assemble the book's sources from the executed notebooks of a profile and build the HTML.

The repository's URL is written once, in ``pyproject.toml`` (``[project.urls] Repository``); the book's
repository and launch buttons and every notebook's Colab install cell (:func:`install_cell_source`) take it
from there.

A page is one execution of a stage notebook: ``notebooks/atari_expert_Breakout`` ran ``notebooks/atari_expert.ipynb``
with ``game="Breakout"``. :func:`mark_page` writes on each page the parameters it ran with and, in the page's
metadata (:data:`SOURCE_KEY`), the repository notebook it ran, where that notebook exists; the book's extension
``book/_ext/launch_links.py`` points the page's launch buttons (Colab) at that notebook and removes them where
there is none.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

if TYPE_CHECKING:
    from rewinterp_utils.pipeline.stages import Cell

REPO = Path(__file__).resolve().parents[2]
SOURCE_KEY = "rewinterp_notebook"
"""Page metadata: the repository notebook the page ran, relative to the book's root (``repository.path_to_book``)."""
RAN_WITH_ID = "rewinterp-ran-with"
"""Id of the markdown cell :func:`mark_page` adds."""
_NUMPY_REPR = re.compile(r"^np\.(?:float|int|uint|bool_)\w*\((.*)\)$")


def repository_url() -> str:
    """The project's repository (``[project.urls] Repository`` of ``pyproject.toml``)."""
    try:
        urls = metadata("rewinterp").get_all("Project-URL") or []
    except PackageNotFoundError:
        urls = []
    for entry in urls:
        name, _, url = entry.partition(",")
        if name.strip().lower() == "repository":
            return url.strip()
    raise RuntimeError("rewinterp is not installed with a Repository URL: `pip install -e .` in the repository")


def install_cell_source() -> str:
    """The first cell of every notebook: installs rewinterp in Colab when it is missing (hidden in the book), with
    pip's progress shown; a failed install stops the notebook with one line naming the address it tried and how
    to install otherwise."""
    return ("# Colab: install rewinterp when it is missing (hidden in the book).\n"
            "import importlib.util, subprocess, sys\n"
            "\n"
            "if importlib.util.find_spec(\"rewinterp_utils\") is None:\n"
            f"    url = \"git+{repository_url()}\"\n"
            "    pip = \"-m pip install --progress-bar on\".split()\n"
            "    if subprocess.run([sys.executable, *pip, url]).returncode:\n"
            "        sys.exit(\n"
            "            f\"pip could not install {url}; install it by hand \"\n"
            "            f\"(pip install {url}), or clone the repository and \"\n"
            "            \"run: pip install -e .\"\n"
            "        )")


def build_commit() -> str | None:
    """The commit of the checkout the book is built from (12 hex digits, ``+ local changes`` when tracked files
    differ from it), or ``None`` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit} + local changes" if dirty else commit


def plain_glue_reprs(path: Path) -> None:
    """Rewrite numpy-2 scalar reprs (``np.float64(0.5)``) in a notebook's glued outputs as plain numbers
    (myst-nb cannot format ``np.float64(...)`` text; a notebook may glue a numpy scalar directly)."""
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


def _config_with_url(text: str, url: str) -> str:
    """``_config.yml`` with ``repository.url`` set (the repository's copy leaves it to ``pyproject.toml``)."""
    return re.sub(r"(?m)^repository:\n", f"repository:\n  url: {url}\n", text, count=1)


def book_sources(profile: str, dest: Path) -> Path:
    """Assemble the book's source tree (config, toc, prose chapters, executed notebooks) in ``dest``.

    Checks first that every page's executed notebook exists (``FileNotFoundError`` naming the missing ones and
    what to run) and only then replaces ``dest``.
    """
    from rewinterp_utils.pipeline.artifacts import executed_path, is_done
    from rewinterp_utils.pipeline.stages import STAGES, notebooks_dir

    pages, missing, overview, stage_of, cells = {}, [], set(), {}, {}
    for s in STAGES.values():
        for page, cell in s.pages(profile).items():
            stage_of[page], cells[page] = s.name, cell
            if s.chapter == "book":
                overview.add(page)
            if is_done(cell):
                pages[page] = executed_path(cell)
            else:
                missing.append(page)
    if missing:
        raise FileNotFoundError(f"no executed notebook for {', '.join(missing)} at profile {profile!r}: "
                                f"run `rewinterp run --profile {profile}` first")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "_config.yml").write_text(_config_with_url((REPO / "_config.yml").read_text(), repository_url()))
    shutil.copy(REPO / "_toc.yml", dest / "_toc.yml")
    shutil.copytree(REPO / "book", dest / "book")
    (dest / "notebooks").mkdir()
    commit = build_commit()
    for page, executed in pages.items():
        shutil.copy(executed, dest / "notebooks" / f"{page}.ipynb")
        plain_glue_reprs(dest / "notebooks" / f"{page}.ipynb")
        reformat_sources(dest / "notebooks" / f"{page}.ipynb", notebooks_dir() / f"{stage_of[page]}.ipynb")
        if page in overview:
            hide_injected_parameters(dest / "notebooks" / f"{page}.ipynb")
        source = f"notebooks/{stage_of[page]}.ipynb"
        mark_page(dest / "notebooks" / f"{page}.ipynb", cells[page], source if (REPO / source).is_file() else None,
                  ran_with=page not in overview, commit=commit)
    return dest


def ran_with_line(cell: Cell, commit: str | None = None) -> str:
    """The line a page says it ran with: the parameters papermill gave its notebook (those set), the profile and,
    when known, the commit the book was built from, e.g. "Ran with `-p game Breakout -p seed 0` at profile `smoke`
    (`notebooks/atari_expert.ipynb`, commit `0123456789ab`)."."""
    args = " ".join(f"-p {k} {shlex.quote(str(v))}" for k, v in cell.params.items() if v is not None)
    how = f"with `{args}`" if args else "with the notebook's defaults"
    at = f", commit `{commit}`" if commit else ""
    return f"Ran {how} at profile `{cell.profile}` (`notebooks/{cell.stage.name}.ipynb`{at})."


def mark_page(path: Path, cell: Cell, source: str | None, ran_with: bool = True, commit: str | None = None) -> None:
    """Record on the page at ``path`` (an executed notebook of ``cell``) the repository notebook it ran (``source``,
    relative to the book's root; ``None``: none exists, so no launch buttons) and, with ``ran_with``, the line
    :func:`ran_with_line` just before its ``parameters`` cell (or at the top)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop(SOURCE_KEY, None)
    if source is not None:
        nb.metadata[SOURCE_KEY] = source
    nb.cells = [c for c in nb.cells if c.get("id") != RAN_WITH_ID]
    if ran_with:
        at = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), 0)
        line = nbformat.v4.new_markdown_cell(ran_with_line(cell, commit))
        line["id"] = RAN_WITH_ID
        nb.cells.insert(at, line)
    nbformat.write(nb, path)


def reformat_sources(path: Path, committed: Path) -> None:
    """Show each code cell of an executed notebook as the committed notebook writes it, where the two are the same
    program (equal syntax trees once docstrings are set aside: only layout, comments or docstrings differ, e.g. a
    cell executed before the code was formatted). A cell whose code changed since it ran keeps the code that ran.
    Cells are matched by their ids."""
    import ast

    def tree(source: str) -> str | None:
        try:
            parsed = ast.parse(source)
        except SyntaxError:
            return None
        for node in ast.walk(parsed):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        return ast.dump(parsed)

    nb = nbformat.read(path, as_version=4)
    now = {c.get("id"): c.source for c in nbformat.read(committed, as_version=4).cells if c.cell_type == "code"}
    changed = False
    for cell in nb.cells:
        new = now.get(cell.get("id"))
        if cell.cell_type == "code" and new is not None and new != cell.source:
            old_tree = tree(cell.source)
            if old_tree is not None and old_tree == tree(new):
                cell.source, changed = new, True
    if changed:
        nbformat.write(nb, path)


def hide_injected_parameters(path: Path) -> None:
    """Tag the cell papermill injected (``injected-parameters``) ``remove-cell``: pages about the whole build show
    their results, not their parameters."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, path)


BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
"""What the book is built from besides the notebooks: in a checkout, not in the wheel."""


def check_checkout(root: Path = REPO) -> None:
    """``ValueError`` in one line when ``root`` (where this package lives) is not a checkout of the repository,
    e.g. an installed wheel: the book's sources are not shipped in the wheel, and a build would write into
    ``site-packages``."""
    missing = [name for name in BOOK_SOURCES if not (root / name).exists()]
    if missing:
        try:
            where = f" ({repository_url()})"
        except RuntimeError:
            where = ""
        raise ValueError(f"`rewinterp book` needs a checkout of the repository{where}: this installation "
                         f"({root}) has no {', '.join(missing)}; clone it and run `make book` there "
                         "(the notebooks themselves run from the installed package)")


def build_book(profile: str, out: Path | None = None, strict: bool = True) -> Path:
    """Build the HTML book from the executed notebooks of ``profile``; returns the HTML folder. ``ValueError``
    before anything is written outside a checkout (:func:`check_checkout`)."""
    check_checkout()
    out = (out or REPO / "_build" / profile).resolve()
    src = book_sources(profile, out / "src")
    # jupyter-book 1.x has no ``python -m jupyter_book``; call its CLI in this interpreter (no PATH lookup)
    # --all: pages glue figures from other pages, so an incremental build would keep stale references to images
    # it no longer copies; every build rewrites every page
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())", "build",
           str(src), "--builder", "html", "--path-output", str(out), "--all"]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    subprocess.run(cmd, check=True)
    return out / "_build" / "html"
