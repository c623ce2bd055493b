"""A build shared as one archive: :func:`pack` writes the cells a set of notebooks needs (manifests included);
:func:`unpack` checks every file and manifest of an archive and installs its cells so that the notebooks find them
done, or refuses it in one line and writes nothing.

A lab builds ``default`` once (``rewinterp run``), packs the Atari chapter (``rewinterp pack --profile default
--stages atari_saliency``), and puts the archive on a web server or a shared drive; a Colab user sets
``REWINTERP_BUNDLE`` to its path or address, and a notebook whose upstream cells are missing unpacks it instead
of training them (:func:`~rewinterp_utils.pipeline.on_demand.build_on_demand`).

The archive is a gzipped tar: ``bundle.json`` (format, profile, the package hash of the build, and the SHA-256 of
every file of every cell), then each cell folder under ``<profile>/<stage>/<cell key>/`` as in the artifact store.
A cell is installed only when it verifies here as the runner's own would: the same identity (parameters, sizes,
notebook code), device and precision, file digests and upstream manifests.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

from rewinterp_utils.pipeline.artifacts import (
    ArtifactError,
    artifacts_root,
    cell_dir,
    done_reason,
    read_manifest,
    run_lock,
    sha256,
)
from rewinterp_utils.pipeline.codehash import package_hash
from rewinterp_utils.pipeline.profiles import check_profile
from rewinterp_utils.pipeline.stages import STAGES, Cell, get_stage

BUNDLE_ENV = "REWINTERP_BUNDLE"
"""A bundle's path or http(s) address: a notebook run alone unpacks it before it builds any missing cell."""
INDEX = "bundle.json"
FORMAT = 1


class BundleError(ValueError):
    """An archive that is not a bundle this checkout can install (tampered, truncated, another profile or code)."""


def needed_cells(profile: str, stages: Sequence[str] | None = None) -> list[Cell]:
    """The cells of ``stages`` (default: every stage) at ``profile`` and of every stage they read, transitively,
    in the stage table's order."""
    check_profile(profile)
    todo, names = list(stages or STAGES), set()
    while todo:
        name = get_stage(todo.pop()).name
        if name not in names:
            names.add(name)
            todo += STAGES[name].upstream
    return [c for name in STAGES if name in names for c in STAGES[name].cells(profile)]


def pack(profile: str, stages: Sequence[str] | None = None, out: str | Path | None = None) -> Path:
    """Write the archive of :func:`needed_cells` to ``out`` (default ``rewinterp-<profile>.tar.gz`` here); every
    cell must be done (else ``ValueError`` naming the first missing one and what to run, and nothing written)."""
    cells = needed_cells(profile, stages)
    root = artifacts_root()
    for cell in cells:
        reason = done_reason(cell)
        if reason is not None:
            raise ValueError(f"cannot pack {cell.describe()}: {reason}; build it first with `rewinterp run --profile "
                             f"{profile} --chapter {cell.stage.chapter}`")
    index = {"format": FORMAT, "profile": profile, "package": package_hash(), "cells": {}}
    for cell in cells:
        folder = cell_dir(cell)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        index["cells"][folder.relative_to(root).as_posix()] = {p.relative_to(folder).as_posix(): sha256(p)
                                                               for p in files}
    out = Path(out or f"rewinterp-{profile}.tar.gz").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            data = json.dumps(index, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(INDEX)
            info.size = len(data)
            tar.addfile(info, _bytes(data))
            for rel, files in index["cells"].items():
                for name in files:
                    tar.add(root / rel / name, arcname=f"{rel}/{name}", recursive=False)
        tmp.rename(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _bytes(data: bytes):
    import io

    return io.BytesIO(data)


def fetch(source: str | Path, folder: Path) -> Path:
    """The archive at ``source``: a local path, or an http(s) address downloaded into ``folder``."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        dest = folder / "bundle.tar.gz"
        try:
            urllib.request.urlretrieve(text, dest)
        except OSError as e:
            raise BundleError(f"could not download the bundle {text} ({e})") from None
        return dest
    path = Path(text).expanduser()
    if not path.is_file():
        raise BundleError(f"no bundle at {path}")
    return path


def _read_index(tar: tarfile.TarFile, source: str) -> dict:
    """The index, which :func:`pack` writes as the archive's first member (read in one pass, as a stream)."""
    try:
        member = tar.next()
        if member is None or member.name != INDEX or not member.isfile():
            raise BundleError(f"{source} is not a rewinterp bundle (it does not open with {INDEX})")
        index = json.loads(tar.extractfile(member).read())
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"{source} is not a readable bundle ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise BundleError(f"{source} has an unreadable {INDEX} ({e})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("cells"), dict):
        raise BundleError(f"{source} is not a rewinterp bundle of format {FORMAT}")
    return index


def _safe(rel: str, profile: str) -> bool:
    """A cell folder path of ``profile``'s store: ``<profile>/<stage>/<key>``, nothing outside it."""
    parts = PurePosixPath(rel).parts
    return len(parts) == 3 and parts[0] == profile and parts[1] in STAGES and ".." not in parts and \
        not PurePosixPath(rel).is_absolute() and not parts[2].startswith(".")


@contextmanager
def _store_at(folder: Path) -> Iterator[None]:
    """The artifact store seen at ``folder`` for the duration (to verify cells before they are installed)."""
    old = os.environ.get("REWINTERP_ARTIFACTS")
    os.environ["REWINTERP_ARTIFACTS"] = str(folder)
    try:
        yield
    finally:
        os.environ.pop("REWINTERP_ARTIFACTS") if old is None else os.environ.__setitem__("REWINTERP_ARTIFACTS", old)


def _cell_of(folder: Path, profile: str) -> Cell:
    """The cell this checkout makes for the identity recorded in ``folder``'s manifest."""
    identity = read_manifest(folder).get("identity") or {}
    stage = STAGES.get(identity.get("stage"))
    if stage is None or identity.get("profile") != profile:
        raise BundleError(f"{folder.name}: its manifest records stage {identity.get('stage')!r} at profile "
                          f"{identity.get('profile')!r}, not a cell of profile {profile!r} here")
    params = {k: v for k, v in identity.items() if k in stage.parameters}
    return stage.cell(profile, **params)


def unpack(source: str | Path, profile: str | None = None) -> list[Path]:
    """Check the bundle at ``source`` (a path or an http(s) address) and install its cells into the artifact
    store; the installed cell folders (cells already done here are kept, not replaced). ``BundleError`` in one
    line, with nothing written, for an archive that is truncated or not a bundle, a file whose digest differs from
    the index or from its cell's manifest, a path outside the store, a bundle of another profile than ``profile``,
    or a cell that this checkout's code, sizes, device or precision would not make."""
    root = artifacts_root()
    made_root = not root.exists()
    try:
        return _unpack(source, profile, root)
    finally:
        if made_root and root.is_dir() and not any(root.iterdir()):
            root.rmdir()  # a refused bundle leaves no trace, not even the store's folder


def _unpack(source: str | Path, profile: str | None, root: Path) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="rewinterp-bundle-") as download:
        path = fetch(source, Path(download))
        try:
            tar = tarfile.open(path, "r|gz")  # one pass, as a stream
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError(f"{source} is not a readable bundle ({e})") from None
        with tar:
            index = _read_index(tar, str(source))
            found = index.get("profile")
            if profile is not None and found != profile:
                raise BundleError(f"{source} is a bundle of profile {found!r}, not {profile!r}")
            check_profile(found)
            cells = index["cells"]
            bad = [rel for rel in cells if not _safe(rel, found)]
            if bad:
                raise BundleError(f"{source} holds a path outside profile {found!r}'s store: {bad[0]}")
            expected = {f"{rel}/{name}": digest for rel, files in cells.items() for name, digest in files.items()}
            staging = root / f".unpack-{uuid.uuid4().hex[:8]}"
            try:
                _extract(tar, expected, staging, str(source))
                with _store_at(staging):
                    for rel in cells:
                        _check_cell(staging / rel, found, str(source))
                return _install(staging, list(cells), found)
            finally:
                shutil.rmtree(staging, ignore_errors=True)


def _extract(tar: tarfile.TarFile, expected: dict[str, str], staging: Path, source: str) -> None:
    """Extract exactly the indexed files into ``staging``, each checked against its digest."""
    seen = set()
    try:
        for i, member in enumerate(tar):
            if i == 0:  # the index, read already
                continue
            if member.name not in expected or not member.isfile() or member.name in seen:
                raise BundleError(f"{source} holds {member.name}, which its index does not list once as a file")
            dest = staging / member.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as f, open(dest, "wb") as out:
                shutil.copyfileobj(f, out)
            if sha256(dest) != expected[member.name]:
                raise BundleError(f"{source}: {member.name} differs from the digest in its index (changed or "
                                  f"damaged)")
            seen.add(member.name)
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        if isinstance(e, BundleError):
            raise
        raise BundleError(f"{source} is truncated or damaged ({type(e).__name__}: {e})") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise BundleError(f"{source} is truncated or incomplete: {missing[0]} is listed but missing")


def _check_cell(folder: Path, profile: str, source: str) -> None:
    """``BundleError`` unless ``folder`` (in the staging store) verifies as this checkout's cell at its path."""
    try:
        cell = _cell_of(folder, profile)
        if cell_dir(cell).resolve() != folder.resolve():
            raise BundleError(f"{folder.name}: this checkout's cell for its identity is {cell_dir(cell).name}")
        reason = done_reason(cell)
    except ArtifactError as e:
        reason = str(e)
    except (BundleError, ValueError) as e:
        reason = str(e)
    if reason is not None:
        raise BundleError(f"{source}: cell {folder.parent.name}/{folder.name} does not verify here: "
                          f"{reason.splitlines()[0]}")


def _install(staging: Path, rels: list[str], profile: str) -> list[Path]:
    """Move the checked cells into the store under the profile's run lock; a cell already done here stays."""
    root = artifacts_root()
    installed = []
    with run_lock(profile, nested=True):
        for rel in rels:
            final = root / rel
            if final.exists() and _done_here(final, profile):
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            if final.exists():
                final.rename(old)
            (staging / rel).rename(final)
            shutil.rmtree(old, ignore_errors=True)
            installed.append(final)
    return installed


def _done_here(folder: Path, profile: str) -> bool:
    try:
        return done_reason(_cell_of(folder, profile)) is None
    except (ArtifactError, ValueError):
        return False


def unpack_from_env(profile: str) -> list[Path]:
    """Unpack ``$REWINTERP_BUNDLE`` (once per process) for a notebook run alone; nothing when it is not set."""
    source = os.environ.get(BUNDLE_ENV)
    if not source or _unpacked.get(source):
        return []
    installed = unpack(source, profile)
    _unpacked[source] = True
    print(f"unpacked {len(installed)} cell(s) at profile {profile!r} from {source} into {artifacts_root()}",
          flush=True)
    return installed


_unpacked: dict[str, bool] = {}
