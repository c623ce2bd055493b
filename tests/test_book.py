"""Glued numbers are plain numbers the book can format."""

from __future__ import annotations

import nbformat
import numpy as np

from rewinterp_utils.book import plain, plain_glue_reprs


def test_plain_turns_numpy_scalars_into_python_numbers():
    assert type(plain(np.float32(0.5))) is float and type(plain(np.int64(3))) is int
    assert plain("x") == "x" and plain(2.5) == 2.5


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
