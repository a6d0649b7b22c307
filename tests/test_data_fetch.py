"""`mfr data fetch`: download (from a loopback server, never the internet), unpack, check."""

from __future__ import annotations

import http.server
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfr.cli import main
from mfr.data.fetch import gdrive_url, unpack


def _mfr2_tree(root: Path) -> Path:
    """A tiny tree in MFR2's layout (two people, a masked and an unmasked image each)."""
    rng = np.random.default_rng(0)
    labels = []
    for name in ("AnnA", "BobB"):
        (root / name).mkdir(parents=True)
        for i, kind in ((1, "no-mask"), (2, "surgical_blue")):
            arr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"{name}_{i:04d}.png")
            labels.append(f"{name}, {i}, {kind}")
    (root / "mfr2_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "pairs.txt").write_text("AnnA 1 2\nAnnA 1 BobB 2\n")
    return root


def _zip(folder: Path, archive: Path, prefix: str = "MFR2") -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, f"{prefix}/{p.relative_to(folder).as_posix()}")
    return archive


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *a):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_downloads_unpacks_and_checks_the_layout(server, tmp_path, capsys):
    served, url, hits = server
    _zip(_mfr2_tree(tmp_path / "src"), served / "mfr2.zip")
    target = tmp_path / "data" / "mfr2"
    args = ["data", "fetch", "mfr2", "--to", str(target), "--url", f"{url}/mfr2.zip",
            "--no-progress"]
    assert main(args) == 0
    assert (target / "MFR2" / "mfr2_labels.txt").is_file()
    assert capsys.readouterr().out.strip() == f"mfr2: {target / 'MFR2'}"
    assert not list(target.parent.glob(".mfr2.download*"))  # the archive is removed
    n = len(hits)
    assert main(args) == 0 and len(hits) == n  # already there: nothing downloaded
    from mfr.data.datasets import load_dataset

    assert load_dataset(target).layout == "mfr2"


def test_offline_fetch_says_what_to_download_and_where(tmp_path, capsys):
    target = tmp_path / "mfr2"
    assert main(["data", "fetch", "mfr2", "--to", str(target), "--no-progress", "--url",
                 f"http://127.0.0.1:{_closed_port()}/mfr2.zip"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "https://drive.google.com/file/d/1ukk0n_srRqcsotK2MjlFPj7L0sXcR2fH" in err
    assert "mfr data fetch mfr2 --from FILE" in err and str(target) in err
    assert gdrive_url("x") == "https://drive.google.com/uc?id=x"


def test_manual_downloads_archive_or_folder(tmp_path, capsys):
    tree = _mfr2_tree(tmp_path / "src")
    archive = _zip(tree, tmp_path / "dl.zip")
    assert main(["data", "fetch", "mfr2", "--to", str(tmp_path / "a"), "--from",
                 str(archive)]) == 0
    assert (tmp_path / "a" / "MFR2" / "pairs.txt").is_file()
    assert main(["data", "fetch", "mfr2", "--to", str(tmp_path / "b"), "--from", str(tree)]) == 0
    assert (tmp_path / "b").resolve() == tree.resolve()  # a folder is linked, not copied
    capsys.readouterr()
    assert main(["data", "fetch", "rmfrd", "--to", str(tmp_path / "c"), "--from",
                 str(tree)]) == 2  # an MFR2 tree is not RMFRD
    assert "not a rmfrd tree" in capsys.readouterr().err


def test_bad_archives_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="outside the target folder"):
        unpack(evil, tmp_path / "t")
    assert not (tmp_path / "outside.txt").exists()
    rar = tmp_path / "x.rar"
    rar.write_bytes(b"Rar!\x1a\x07\x00" + b"\x00" * 20)
    with pytest.raises(ValueError, match="a RAR archive; unpack it yourself"):
        unpack(rar, tmp_path / "t2")
