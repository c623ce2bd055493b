"""What code made a cell: a hash of a stage notebook's code, a hash of the package, and the sizes a notebook reads.

Both hashes are of Python's tokens, not of bytes: whitespace, blank lines, line breaks inside brackets and comments
do not count, so reformatting code or editing a comment changes neither hash (markdown cells never count). A
notebook's ``parameters`` cell does not count either: its values are already part of a cell's identity, one by
one (a new default or a new parameter changes the identity through them). A code cell Python cannot tokenize (a
shell escape, say) is hashed line by line with trailing whitespace and blank lines dropped. A Python whose
tokenizer splits code differently (3.12 splits f-strings) gives other hashes: its cells are remade.

This module imports nothing of the pipeline (:mod:`~rewinterp_utils.pipeline.stages` uses it for a cell's
identity, :mod:`~rewinterp_utils.pipeline.artifacts` for the manifest).
"""

from __future__ import annotations

import hashlib
import io
import json
import tokenize
from functools import cache
from pathlib import Path

_SKIP = {"COMMENT", "NL", "ENDMARKER"}
_SHAPE_ONLY = {"NEWLINE", "INDENT", "DEDENT"}  # their text is whitespace


def tokens(source: str) -> list[tuple[str, str]]:
    """``(token type name, text)`` of ``source`` without comments and layout (indentation kept as INDENT/DEDENT);
    ``("LINE", line)`` for each non-blank line of a source Python cannot tokenize. Type names, not numbers: the
    numbers differ between Python versions."""
    try:
        found = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return [("LINE", line.rstrip()) for line in source.splitlines() if line.strip()]
    named = [(tokenize.tok_name[t.type], t.string) for t in found]
    return [(kind, "" if kind in _SHAPE_ONLY else text) for kind, text in named if kind not in _SKIP]


def code_cells(path: Path) -> list[str]:
    """The sources of a notebook's code cells, its ``parameters`` cell left out."""
    cells = json.loads(Path(path).read_text())["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells
            if c["cell_type"] == "code" and "parameters" not in c.get("metadata", {}).get("tags", [])]


def _digest(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


@cache
def _notebook_hash(path: str, mtime_ns: int, size: int) -> str:
    return _digest([tokens(source) for source in code_cells(Path(path))])


def notebook_code_hash(path: Path) -> str:
    """A hash of the notebook's code cells (see the module docstring for what counts); recomputed when the file
    changes."""
    st = Path(path).stat()
    return _notebook_hash(str(path), st.st_mtime_ns, st.st_size)


@cache
def package_hash(root: Path | None = None) -> str:
    """A hash of every Python source file of the package (``rewinterp_utils``, or the folder ``root``), by path;
    computed once per process (the code a process runs is what it imported)."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    return _digest([[p.relative_to(root).as_posix(), tokens(p.read_text())] for p in sorted(root.rglob("*.py"))])


def size_reads(source: str) -> list[tuple[str, str | None]]:
    """The ``profiles.resolve`` calls in ``source``: ``(entry, profile)`` for ``resolve("<entry>", "<profile>")``
    and ``(entry, None)`` for ``resolve("<entry>", profile)`` (the cell's own profile). ``ValueError`` quoting a
    call whose entry and profile are not written out that way (nobody could tell which sizes it reads), and for
    ``SIZES`` read directly."""
    toks = []
    for kind, text in tokens(source):
        if kind == "LINE":  # a line of a cell Python cannot tokenize: read on its own
            toks += tokens(text) if "resolve" in text or "SIZES" in text else []
        elif kind != "NEWLINE":
            toks.append((kind, text))
    reads = []
    for i, (kind, text) in enumerate(toks):
        if kind == "LINE":
            raise ValueError(f"cannot read `{text}`: it may read sizes (write the call on a line of its own)")
        if (kind, text) == ("NAME", "SIZES"):
            raise ValueError("reads profiles.SIZES directly: read sizes with resolve(\"<entry>\", profile)")
        if (kind, text) != ("NAME", "resolve") or toks[i + 1:i + 2] != [("OP", "(")]:
            continue
        if i >= 1 and toks[i - 1] == ("OP", ".") and (i < 2 or toks[i - 2] != ("NAME", "profiles")):
            continue  # another object's resolve (Path.resolve)
        args = toks[i + 2:i + 6]
        call = " ".join(t for _, t in toks[i:i + 6])
        if (len(args) < 4 or args[0][0] != "STRING" or args[1] != ("OP", ",")
                or args[3] not in (("OP", ")"), ("OP", ","))
                or args[2] != ("NAME", "profile") and args[2][0] != "STRING"):
            raise ValueError(f"cannot tell which sizes `{call} ...` reads: write resolve(\"<entry>\", profile) "
                             f"or resolve(\"<entry>\", \"<profile>\")")
        entry = _literal(args[0][1], call)
        reads.append((entry, None if args[2][0] == "NAME" else _literal(args[2][1], call)))
    return reads


def _literal(text: str, call: str) -> str:
    """A plain string literal's value (an f-string or bytes is refused)."""
    import ast

    value = ast.literal_eval(text) if not text.lower().startswith(("f", "rf", "fr", "b", "rb", "br")) else None
    if not isinstance(value, str):
        raise ValueError(f"cannot tell which sizes `{call} ...` reads: its arguments must be plain strings")
    return value
