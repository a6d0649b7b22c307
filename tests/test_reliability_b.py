"""Issue 20, part B: run folders, caches, checkpoints and downloads fail with one line (exit 2),
lose nothing and are never left marked running."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data_fetch import _mfr2_tree  # the same tiny MFR2 tree

from mfr.cli import main
from mfr.core import provenance
from mfr.core.errors import InputError
from mfr.data.fetch import unpack
from mfr.data.image_cache import build_image_cache

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["--trainable-layers", "10", "--weights", "none", "--batch-size", "4",
         "--learning-rate", "0.01", "--optimizer", "adam", "--no-progress"]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("WARNING: RANDOM WEIGHTS")]
    assert len(lines) == 1, err  # one line, no traceback
    assert "Traceback" not in err
    return lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- --out apart


def test_out_that_is_or_holds_an_input_is_refused_before_any_work(parted, tmp_path, capsys):
    tree, pairs = parted
    before, listing = _files(pairs), provenance.listing_digest(tree)
    capsys.readouterr()
    assert main(["embed", "--pairs", str(pairs), "--out", str(pairs), "--force",
                 "--weights", "none"]) == 2
    assert "the output folder is the pairs folder" in _err(capsys)
    assert main(["embed", "--pairs", str(pairs), "--out", str(pairs.parent), "--force",
                 "--weights", "none"]) == 2
    assert "holds the pairs folder" in _err(capsys)
    assert main(["embed", "--pairs", str(pairs), "--out", str(tree), "--force",
                 "--data-root", str(tree), "--weights", "none"]) == 2
    assert "the output folder is the data root" in _err(capsys)
    assert main(["embed", "--pairs", str(pairs), "--out", str(tmp_path / "c" / "o"),
                 "--cache-dir", str(tmp_path / "c"), "--weights", "none"]) == 2
    assert "lies inside the image cache" in _err(capsys)
    assert _files(pairs) == before and provenance.listing_digest(tree) == listing


# --------------------------------------------------------------------------- image cache


def test_a_fifo_in_the_pairs_is_a_listed_failed_image_not_a_hang(tmp_path):
    root = tmp_path / "root"
    (root / "u").mkdir(parents=True)
    Image.fromarray(np.full((40, 40, 3), 9, np.uint8)).save(root / "u" / "a.png")
    os.mkfifo(root / "u" / "fifo.png")
    (root / "u" / "dir.png").mkdir()
    signal.alarm(60)  # a hang fails the test instead of blocking the suite
    try:
        cache = build_image_cache(root, ["u/a.png", "u/fifo.png", "u/dir.png"],
                                  tmp_path / "c", size=32, progress=False, num_workers=1)
    finally:
        signal.alarm(0)
    assert cache.paths == ["u/a.png"]
    reasons = dict(zip(cache.failed["path"], cache.failed["reason"], strict=True))
    assert "FIFO" in reasons["u/fifo.png"] and "folder" in reasons["u/dir.png"]
    assert not list((tmp_path / "c").glob(".*.tmp"))


def test_cache_dir_of_the_users_files_or_of_other_images_is_refused(parted, tmp_path, capsys):
    tree, pairs = parted
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.csv").write_text("my own index\n")
    (mine / "failed.csv").write_text("my own list\n")
    capsys.readouterr()
    assert main(["embed", "--pairs", str(pairs), "--out", str(tmp_path / "e"), "--weights",
                 "none", "--cache-dir", str(mine), "--no-progress"]) == 2
    assert "holds files that no mfr image cache made" in _err(capsys)
    assert (mine / "index.csv").read_text() == "my own index\n"
    assert json.loads((tmp_path / "e" / "run.json").read_text())["status"] == "failed"
    # another cache, of other images: rebuilt in place, said on stderr (not silently)
    other = tmp_path / "other"
    root = tmp_path / "root"
    (root / "x").mkdir(parents=True)
    Image.fromarray(np.full((40, 40, 3), 1, np.uint8)).save(root / "x" / "0.png")
    build_image_cache(root, ["x/0.png"], other, size=224, progress=False)
    capsys.readouterr()
    assert main(["embed", "--pairs", str(pairs), "--out", str(tmp_path / "e2"), "--weights",
                 "none", "--cache-dir", str(other), "--no-progress"]) == 0
    assert f"{other}: an image cache of images under {root.resolve()}; rebuilt in place" in (
        capsys.readouterr().err)
    assert "x/0.png" not in (other / "index.csv").read_text()
    # an empty folder is taken, and gets its record
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["embed", "--pairs", str(pairs), "--out", str(tmp_path / "e3"), "--weights",
                 "none", "--cache-dir", str(empty), "--no-progress"]) == 0
    assert (empty / ".mfr-image-cache.json").is_file() and (empty / "cache.json").is_file()


# --------------------------------------------------------------------------- locks


def test_a_folder_being_written_by_another_process_is_refused_and_a_dead_ones_lock_taken(
        parted, tmp_path, capsys):
    _, pairs = parted
    out = tmp_path / "e"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from mfr.core import provenance; "
         "provenance.lock(sys.argv[1]); print('locked', flush=True); time.sleep(120)",
         str(out)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        args = ["embed", "--pairs", str(pairs), "--out", str(out), "--weights", "none",
                "--no-progress"]
        assert main(args) == 2
        assert f"is being written by process {holder.pid} since" in _err(capsys)
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".e.lock").is_file()  # the killed process's lock: stale, taken over
    assert main(args) == 0
    assert not (tmp_path / ".e.lock").exists()  # released on completion
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_abandon_never_leaves_a_folder_running_and_releases_its_lock(tmp_path):
    out = tmp_path / "r"
    assert provenance.claim(out, "x", {"a": 1}) == "new"
    assert (tmp_path / ".r.lock").read_text().split()[0] == str(os.getpid())
    assert provenance.abandon("boom") == [out.resolve()]
    run = provenance.read_run(out)
    assert run["status"] == "failed" and run["error"] == "boom"
    assert not (tmp_path / ".r.lock").exists()
    assert provenance.claim(out, "x", {"a": 1}) == "resume"  # a failed run is resumed
    (out / "o.txt").write_text("done")
    provenance.complete(out, "x", {"a": 1}, outputs=["o.txt"])
    # a complete run reopened that fails before changing its outputs: complete again
    assert provenance.claim(out, "x", {"a": 1}, reopen=True) == "resume"
    assert provenance.read_run(out)["status"] == "running"
    provenance.abandon("boom")
    assert provenance.read_run(out)["status"] == "complete"


# --------------------------------------------------------------------------- checkpoints


def test_resume_from_a_damaged_checkpoint_starts_over_with_a_word(parted, tmp_path, capsys):
    _, pairs = parted
    out = tmp_path / "t"
    base = ["train", "--pairs", str(pairs), "--out", str(out), *TRAIN]
    assert main([*base, "--epochs", "1"]) == 0
    ckpt = out / "checkpoints" / "epoch_001.npz"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # truncated
    capsys.readouterr()
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"{ckpt}: damaged checkpoint" in err and "starting over from epoch 1" in err
    assert "Traceback" not in err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["epochs_trained"] == 2
    assert run["resumed_from_epoch"] == 0
    assert (out / "checkpoints" / "epoch_001.npz.damaged").read_bytes() == data[: len(data) // 2]


# --------------------------------------------------------------------------- unpacking


def _tar(path: Path, tree: Path, extra: tarfile.TarInfo | None = None, mode: str = "w:gz"):
    with tarfile.open(path, mode) as t:
        t.add(tree, arcname="MFR2")
        if extra is not None:
            t.addfile(extra)
    return path


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _device() -> tarfile.TarInfo:
    info = tarfile.TarInfo("MFR2/null")
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info


def _bad_crc(path: Path, tree: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for p in sorted(tree.rglob("*")):
            if p.is_file():
                z.write(p, f"MFR2/{p.relative_to(tree).as_posix()}")
    data = bytearray(path.read_bytes())
    at = data.index(b"AnnA, 1")  # a stored member's bytes: flip one, its CRC no longer fits
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case", ["abs_link", "climbing_link", "device", "bad_crc",
                                  "truncated"])
def test_bad_archives_are_one_line_and_leave_nothing(tmp_path, capsys, case):
    tree = _mfr2_tree(tmp_path / "src")
    a = tmp_path / ("a.zip" if case == "bad_crc" else "a.tar.gz")
    if case == "abs_link":
        _tar(a, tree, _link("MFR2/evil", "/etc/passwd"))
    elif case == "climbing_link":
        _tar(a, tree, _link("MFR2/evil", "../../../outside"))
    elif case == "device":
        _tar(a, tree, _device())
    elif case == "bad_crc":
        _bad_crc(a, tree)
    else:
        _tar(a, tree)
        a.write_bytes(a.read_bytes()[:-200])
    target = tmp_path / "data" / "mfr2"
    capsys.readouterr()
    assert main(["data", "fetch", "mfr2", "--to", str(target), "--from", str(a)]) == 2
    err = _err(capsys)
    assert str(a) in err
    expect = {"abs_link": "symbolic link", "climbing_link": "symbolic link",
              "device": "device node", "bad_crc": "damaged", "truncated": "damaged"}[case]
    assert expect in err, err
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing partial


def test_an_archive_that_unpacks_too_large_is_refused_from_its_list(tmp_path):
    a = tmp_path / "bomb.zip"
    with zipfile.ZipFile(a, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("MFR2/zeros", b"\0" * 1_000_000)
    assert a.stat().st_size < 5000
    with pytest.raises(InputError, match="would unpack to 0.0 GB, over the limit"):
        unpack(a, tmp_path / "t", limit=100_000)
    assert list(tmp_path.iterdir()) == [a]  # nothing written
    assert (unpack(a, tmp_path / "t") / "MFR2" / "zeros").stat().st_size == 1_000_000


def test_a_failed_unpack_leaves_nothing_and_the_next_fetch_unpacks(tmp_path, capsys):
    tree = _mfr2_tree(tmp_path / "src")
    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as z:
        z.writestr("readme.txt", "not a dataset")
    target = tmp_path / "data" / "mfr2"
    assert main(["data", "fetch", "mfr2", "--to", str(target), "--from", str(wrong)]) == 2
    assert "no mfr2 layout" in _err(capsys) and not target.exists()
    good = _tar(tmp_path / "good.tar.gz", tree)
    assert main(["data", "fetch", "mfr2", "--to", str(target), "--from", str(good)]) == 0
    assert (target / "MFR2" / "pairs.txt").is_file()


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_download_that_is_a_web_page_is_refused_and_not_kept(server, tmp_path, capsys):
    served, url = server
    (served / "quota.zip").write_text("<!DOCTYPE html><html><body>Quota exceeded</body></html>")
    target = tmp_path / "data" / "mfr2"
    assert main(["data", "fetch", "mfr2", "--to", str(target), "--url", f"{url}/quota.zip",
                 "--no-progress"]) == 2
    assert "sent a web page, not the mfr2 archive" in _err(capsys)
    assert list(target.parent.iterdir()) == []  # no download kept, nothing unpacked




def test_embed_batch_size_is_part_of_the_fingerprint_of_embed_and_train_runs():
    """Images per forward pass change the order of the float sums (measured on the demo's
    pairs: distances differ by 1e-6, their last printed digit, between 16 and 64), so a run
    made with another value is not the same run."""
    from mfr.core.config import StudyConfig
    from mfr.study.steps.settings import embed_settings, train_settings

    a, b = StudyConfig(embed_batch_size=16), StudyConfig(embed_batch_size=64)
    assert embed_settings(a) != embed_settings(b)
    assert train_settings(a) != train_settings(b)
    assert embed_settings(a)["embed_batch_size"] == 16
