"""A build shared as one archive: ``rewinterp pack`` at smoke, unpacked into an empty store by a notebook run alone
(from a web address, as Colab would), and every broken archive refused with nothing written."""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from rewinterp_utils.pipeline.artifacts import cell_dir, sha256
from rewinterp_utils.pipeline.bundle import BundleError, needed_cells, pack, unpack
from rewinterp_utils.pipeline.stages import STAGES

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "rewinterp_utils.pipeline.cli"]


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_needed_cells_are_the_stages_and_everything_they_read():
    names = {c.stage.name for c in needed_cells("smoke", ["atari_saliency"])}
    assert names == {"atari_expert", "atari_dataset", "atari_reward_model", "atari_saliency"}
    assert len(needed_cells("smoke", ["maze_dataset"])) == len(STAGES["maze_expert"].cells("smoke")) + \
        len(STAGES["maze_dataset"].cells("smoke"))
    with pytest.raises(ValueError, match="profile"):
        needed_cells("fast", ["maze_dataset"])


def test_pack_refuses_a_cell_not_built_and_writes_nothing(root, tmp_path):
    with pytest.raises(ValueError, match=r"cannot pack .*maze_expert.*rewinterp run --profile smoke"):
        pack("smoke", ["maze_dataset"], tmp_path / "b.tar.gz")
    assert not list(tmp_path.glob("*.tar.gz")) and not list(tmp_path.glob(".*"))


def test_a_notebook_run_alone_unpacks_the_bundle_from_an_address_instead_of_training(smoke, tmp_path, monkeypatch):
    """Pack the Atari reward models (and the experts and data they read) at smoke, serve the archive over HTTP,
    and run the saliency notebook alone on an empty store with ``REWINTERP_BUNDLE`` set to the address: it installs
    the build's cells, byte for byte, and trains nothing."""
    archive = pack("smoke", ["atari_reward_model"], tmp_path / "serve" / "atari.tar.gz")
    upstream = needed_cells("smoke", ["atari_reward_model"])
    server = HTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(archive.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    empty = tmp_path / "colab" / "artifacts"
    work = tmp_path / "work"
    work.mkdir()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "papermill", str(REPO / "notebooks" / "atari_saliency.ipynb"), str(work / "out.ipynb"),
             "-p", "profile", "smoke", "--no-progress-bar", "--execution-timeout", "600"],
            cwd=work, capture_output=True, text=True, timeout=900,
            env={**os.environ, "REWINTERP_ARTIFACTS": str(empty), "TQDM_DISABLE": "1",
                 "REWINTERP_BUNDLE": f"http://127.0.0.1:{server.server_address[1]}/atari.tar.gz"})
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    printed = (work / "out.ipynb").read_text()
    assert f"unpacked {len(upstream)} cell(s)" in printed and "building it first" not in printed
    for cell in upstream:  # the build's own cells: every file the same bytes
        ours = cell_dir(cell)
        theirs = empty / ours.relative_to(smoke[0])
        assert sorted(p.relative_to(ours) for p in ours.rglob("*")) == \
            sorted(p.relative_to(theirs) for p in theirs.rglob("*")), cell.describe()
        assert all(sha256(p) == sha256(theirs / p.relative_to(ours)) for p in ours.rglob("*") if p.is_file())
    assert list((empty / "smoke" / "by-hand" / "atari_saliency").glob("*/manifest.json")), "the notebook ran by hand"


def rewrite(archive: Path, out: Path, change) -> Path:
    """A copy of ``archive`` with each member's bytes passed through ``change(name, data) -> data``."""
    with tarfile.open(archive, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = change(member.name, src.extractfile(member).read())
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


@pytest.fixture
def data_bundle(smoke, tmp_path):
    return pack("smoke", ["atari_dataset"], tmp_path / "data.tar.gz")


def _flip_first_byte(target: str):
    def change(name: str, data: bytes) -> bytes:
        return bytes([data[0] ^ 1]) + data[1:] if name.endswith(target) else data
    return change


def _tamper_file_and_index(archive: Path):
    """Change the expert's metrics and write their new digest into the index: the index agrees, the cell's own
    manifest does not."""
    with tarfile.open(archive, "r:gz") as src:
        index = json.loads(src.extractfile("bundle.json").read())
    new = b'{"tampered": 1}'
    for files in index["cells"].values():
        if "metrics.json" in files:
            files["metrics.json"] = __import__("hashlib").sha256(new).hexdigest()

    def change(name: str, data: bytes) -> bytes:
        if name == "bundle.json":
            return json.dumps(index).encode()
        return new if name.endswith("metrics.json") else data
    return change


BROKEN = {
    "truncated": lambda a, out: out.write_bytes(a.read_bytes()[: a.stat().st_size // 2]) and out,
    "a file changed": lambda a, out: rewrite(a, out, _flip_first_byte("metrics.json")),
    "a file and its index entry changed": lambda a, out: rewrite(a, out, _tamper_file_and_index(a)),
    "not a bundle": lambda a, out: out.write_bytes(gzip.compress(b"not a tar")) and out,
}
REFUSAL = {"truncated": "truncated or damaged", "a file changed": "differs from the digest in its index",
           "a file and its index entry changed": "does not verify here", "not a bundle": "not a readable bundle"}


@pytest.mark.parametrize("how", list(BROKEN))
def test_a_broken_bundle_is_refused_in_one_line_and_nothing_is_written(data_bundle, tmp_path, monkeypatch, how):
    broken = BROKEN[how](data_bundle, tmp_path / "broken.tar.gz")
    store = tmp_path / "store"
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(store))
    with pytest.raises(BundleError, match=REFUSAL[how]) as err:
        unpack(broken)
    assert "\n" not in str(err.value)
    assert not store.exists(), "nothing is written"
    done = subprocess.run([*CLI, "unpack", str(broken)], capture_output=True, text=True,
                          env={**os.environ, "REWINTERP_ARTIFACTS": str(store)})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not store.exists()


def test_a_bundle_of_another_profile_is_refused_and_a_good_one_installs_once(data_bundle, tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(store))
    with pytest.raises(BundleError, match="a bundle of profile 'smoke', not 'default'"):
        unpack(data_bundle, "default")
    assert not store.exists()
    installed = unpack(data_bundle, "smoke")
    assert len(installed) == len(needed_cells("smoke", ["atari_dataset"])) and all(p.is_dir() for p in installed)
    assert unpack(data_bundle, "smoke") == [], "cells done here are kept, not replaced"
