"""Run folders know what made them: no silent stale input, no mixed or lost outputs, and a
one-line error (or a listed item) for every bad input (issue 8)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mfr.cli import main
from mfr.core import provenance
from mfr.core.errors import InputError
from mfr.data.datasets.synthetic import make_demo_tree
from mfr.data.image_cache import build_image_cache, reusable
from mfr.data.images import load_image
from mfr.data.pairs import COLUMNS, read_pairs

ROOT = Path(__file__).resolve().parent.parent


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("WARNING: RANDOM WEIGHTS")]
    assert len(lines) == 1, err  # one line, no traceback
    return lines[0]


TRAIN = ["--trainable-layers", "10", "--weights", "none", "--batch-size", "4",
         "--learning-rate", "0.01", "--optimizer", "adam", "--no-progress"]


# --------------------------------------------------------------------------- provenance


def test_run_json_records_what_made_it_and_an_equal_run_is_up_to_date(parted, tmp_path, capsys):
    tree, pairs = parted
    out = tmp_path / "base"
    args = ["embed", "--pairs", str(pairs), "--out", str(out), "--weights", "none",
            "--split", "val,test", "--no-progress"]
    assert main(args) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "embed" and run["status"] == "complete"
    fp = run["fingerprint"]
    assert fp["pairs"] == {f"{s}.csv": provenance.file_digest(pairs / f"{s}.csv")
                           for s in ("val", "test")}
    assert fp["weights"] == "random init, seed 2021" and len(fp["images"]) == 64
    assert fp["settings"]["splits"] == ["val", "test"]
    for name, digest in run["outputs"].items():  # the outputs, as they are on disk
        assert provenance.file_digest(out / name) == digest
    assert {"distances.csv", "summary.json", "embeddings/embeddings.npy"} <= set(run["outputs"])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(args) == 0  # the same run again: up to date, nothing rewritten
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # the partition's own record: the listing of the data tree and the protocol's settings
    part = json.loads((pairs / "run.json").read_text())
    assert part["command"] == "partition" and part["status"] == "complete"
    assert part["fingerprint"]["data"] == provenance.listing_digest(Path(part["data_root"]))


def test_commands_never_overwrite_each_others_folders(parted, tmp_path, capsys):
    tree, pairs = parted
    emb = tmp_path / "emb"
    assert main(["embed", "--pairs", str(pairs), "--out", str(emb), "--weights", "none",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "--pairs", str(pairs), "--out", str(emb), "--epochs", "1",
                 *TRAIN]) == 2
    assert "holds an `mfr embed` run" in _err(capsys) and (emb / "summary.md").is_file()
    assert main(["partition", "--data-root", str(tree), "--out", str(emb)]) == 2
    assert "holds an `mfr embed` run" in _err(capsys)
    assert main(["train", "--pairs", str(pairs), "--out", str(emb), "--epochs", "1", "--force",
                 *TRAIN]) == 0  # --force: replaced whole
    assert not (emb / "summary.md").exists() and (emb / "history.csv").is_file()
    assert json.loads((emb / "run.json").read_text())["command"] == "train"
    # a folder with files no mfr run recorded is never mfr's to replace
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    for extra in ([], ["--force"]):
        assert main(["partition", "--data-root", str(tree), "--out", str(other), *extra]) == 2
        assert "holds files that no mfr run recorded (notes.txt)" in _err(capsys)
    assert (other / "notes.txt").read_text() == "keep me"


def test_unwritable_out_is_refused_before_slow_work(parted, tmp_path, capsys):
    _, pairs = parted
    (tmp_path / "a_file").write_text("")
    assert main(["embed", "--pairs", str(pairs), "--out", str(tmp_path / "a_file" / "sub"),
                 "--weights", "none", "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "cannot write here" in _err(capsys) and not (tmp_path / "cache").exists()


def test_partition_set_is_never_mixed(parted, tmp_path, capsys, monkeypatch):
    tree, _ = parted
    out = tmp_path / "p"
    assert main(["partition", "--data-root", str(tree), "--out", str(out)]) == 0
    assert main(["partition", "--data-root", str(tree), "--out", str(out), "--seed", "7"]) == 2
    assert "differs in: settings.seed" in _err(capsys)
    # a failure after train.csv: the old set is gone (replaced whole), the new one is marked
    # unfinished, and no step reads it
    import mfr.core.config
    import mfr.data.partition
    import mfr.study.steps

    real = mfr.data.partition.write_json
    monkeypatch.setattr(mfr.data.partition, "write_json", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        mfr.study.steps.partition_step(mfr.core.config.load_config("thesis", data_root=str(tree), seed=7),
                                 out, force=True)
    monkeypatch.setattr(mfr.data.partition, "write_json", real)
    run = json.loads((out / "run.json").read_text())  # marked by the step itself, not the CLI
    assert run["status"] == "failed" and run["error"].startswith("ZeroDivisionError")
    assert not (out / "stats.json").exists()
    capsys.readouterr()
    assert main(["embed", "--pairs", str(out), "--out", str(tmp_path / "e"),
                 "--weights", "none"]) == 2
    assert "did not finish" in _err(capsys)


def test_resume_checks_inputs_settings_and_epochs(parted, tmp_path, capsys):
    _, pairs = parted
    out = tmp_path / "t"
    base = ["train", "--pairs", str(pairs), "--out", str(out), *TRAIN]
    assert main([*base, "--epochs", "2"]) == 0
    capsys.readouterr()
    assert main([*base, "--epochs", "1", "--resume"]) == 2
    assert "trained for 2 epochs already; epochs 1 asks for fewer" in _err(capsys)
    assert main([*base, "--epochs", "2", "--seed", "7", "--resume"]) == 2
    msg = _err(capsys)
    assert "other inputs or settings" in msg and "settings.seed" in msg and "weights" in msg
    other = tmp_path / "pairs2"  # other pairs of the same size
    shutil.copytree(pairs, other, ignore=shutil.ignore_patterns("cache"))
    val = pd.read_csv(other / "val.csv")
    val.iloc[::-1].to_csv(other / "val.csv", index=False)
    part = json.loads((other / "run.json").read_text())  # a partition that recorded this val.csv
    part["outputs"]["val.csv"] = provenance.file_digest(other / "val.csv")
    (other / "run.json").write_text(json.dumps(part))
    assert main(["train", "--pairs", str(other), "--out", str(out), *TRAIN, "--epochs", "2",
                 "--resume"]) == 2
    assert "pairs.val.csv" in _err(capsys)
    assert main([*base, "--epochs", "3"]) == 2
    assert "add --resume" in _err(capsys)
    assert main([*base, "--epochs", "3", "--resume"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["epochs_trained"] == 3 and run["config"]["epochs"] == 3
    assert len(pd.read_csv(out / "history.csv")) == 3
    assert [p.name for p in (out / "checkpoints").glob("*.npz")] == ["epoch_003.npz"]
    assert list(json.loads((out / "checkpoints" / "checkpoints.json").read_text())) == [
        "epoch_003.npz"]  # the sha256 of each checkpoint kept, as it was saved


def test_empty_splits_are_refused_before_slow_work(parted, tmp_path, capsys):
    _, pairs = parted
    empty = tmp_path / "pairs"
    shutil.copytree(pairs, empty, ignore=shutil.ignore_patterns("cache"))
    pd.DataFrame(columns=COLUMNS).to_csv(empty / "test.csv", index=False)  # header only
    part = json.loads((empty / "run.json").read_text())  # as a partition that wrote it records
    part["outputs"]["test.csv"] = provenance.file_digest(empty / "test.csv")
    (empty / "run.json").write_text(json.dumps(part))
    assert main(["train", "--pairs", str(empty), "--out", str(tmp_path / "t"), "--epochs", "1",
                 *TRAIN]) == 2
    assert "test.csv: no pairs" in _err(capsys) and not (tmp_path / "t").exists()
    assert main(["embed", "--pairs", str(empty), "--out", str(tmp_path / "e"),
                 "--weights", "none"]) == 2
    assert "test.csv: no pairs" in _err(capsys)


# --------------------------------------------------------------------------- the image cache


def test_changed_source_images_make_the_cache_stale(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(tmp_path / f"{i}.png")
    paths = ["0.png", "1.png", "2.png"]
    first = build_image_cache(tmp_path, paths, tmp_path / "c", progress=False)
    assert reusable(tmp_path / "c", paths, 224, tmp_path, "pil") is not None
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(tmp_path / "1.png")
    os.utime(tmp_path / "1.png", ns=(1, 1))  # a rewritten file, whatever its time
    assert reusable(tmp_path / "c", paths, 224, tmp_path, "pil") is None
    old = np.array(first.images[1])
    again = build_image_cache(tmp_path, paths, tmp_path / "c", progress=False)
    assert not np.array_equal(old, again.images[1])
    np.testing.assert_array_equal(again.images[1], load_image(tmp_path / "1.png"))


def test_16_bit_and_tiny_images(tmp_path):
    grey16 = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    img = load_image(tmp_path / "g16.png", 64)
    np.testing.assert_array_equal(img[..., 0], np.rint(grey16 / 257.0).astype(np.uint8))
    assert (img == 255).mean() < 0.01  # not the 99.5% white of convert("RGB")
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.warns(UserWarning, match="1 of 2 images could not be read"):
        cache = build_image_cache(tmp_path, ["g16.png", "tiny.png"], tmp_path / "c",
                                  progress=False)
    assert "12x10 px, smaller than the minimum 16 px" in cache.failed["reason"][0]


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (a decompression bomb for PIL)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


def test_bad_files_in_a_tree_are_listed_not_fatal(tmp_path, capsys):
    tree = make_demo_tree(tmp_path / "tree", n_subjects=5, image_size=64)
    masked = tree / "AFDB_masked_face_dataset"
    _png_header_only(masked / "subject_00" / "bomb.jpg", 40000, 40000)  # a .jpg name: selected
    os.symlink("loop", masked / "loop")  # a subject-level symlink loop
    odd = os.path.join(os.fsencode(tree / "AFDB_face_dataset" / "subject_01"), b"\xff\xfe.jpg")
    shutil.copy(tree / "AFDB_face_dataset" / "subject_01" / "0000.jpg", odd)
    out = tmp_path / "p"
    assert main(["partition", "--data-root", str(tree), "--out", str(out)]) == 0
    files = json.loads((out / "stats.json").read_text())["excluded"]["files"]
    reasons = {e["path"]: e["reason"] for e in files}
    assert "too many pixels" in reasons["AFDB_masked_face_dataset/subject_00/bomb.jpg"]
    assert "symbolic links" in reasons["AFDB_masked_face_dataset/loop"]
    assert reasons["AFDB_face_dataset/subject_01/\\xff\\xfe.jpg"] == "name is not valid UTF-8"
    with pytest.warns(UserWarning):
        cache = build_image_cache(tree, ["AFDB_masked_face_dataset/subject_00/bomb.jpg",
                                         "AFDB_masked_face_dataset/subject_00/0000.jpg"],
                                  tmp_path / "c", progress=False)
    # the one pixel bound of every image reader: the same words as the partition's
    assert "too many pixels" in cache.failed["reason"][0]


# --------------------------------------------------------------------------- pair files


@pytest.mark.parametrize("row, message", [
    ("a/1.jpg,b/1.jpg,yes,a,b", r"line 3: label must be 0 or 1, got 'yes'"),
    ("a/1.jpg,b/1.jpg,1,a,a,extra", r"line 3: 6 field\(s\), expected 5"),
    ("../a/1.jpg,b/1.jpg,1,a,a", r"line 3: unmasked_path '../a/1.jpg' points outside"),
    ("a/1.jpg,/etc/b.jpg,0,a,b", r"line 3: masked_path '/etc/b.jpg' points outside"),
])
def test_bad_pair_csvs_name_the_file_and_line(tmp_path, row, message):
    path = tmp_path / "test.csv"
    path.write_text(",".join(COLUMNS) + "\na/0.jpg,b/0.jpg,1,a,a\n" + row + "\n")
    with pytest.raises(InputError, match=message) as e:
        read_pairs(path)
    assert str(path) in str(e.value)


# --------------------------------------------------------------------------- weights


def test_bad_weights_files_are_one_line_errors(parted, tmp_path, capsys):
    _, pairs = parted
    empty, garbage, truncated = tmp_path / "e.h5", tmp_path / "g.h5", tmp_path / "t.h5"
    empty.write_bytes(b"")
    garbage.write_bytes(b"not hdf5 at all" * 100)
    with h5py.File(truncated, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv1/7x7_s2"])
        f.create_dataset("x", data=np.zeros(100_000, np.float32))
    truncated.write_bytes(truncated.read_bytes()[:50_000])
    for path in (empty, garbage, truncated):
        assert main(["embed", "--pairs", str(pairs), "--out", str(tmp_path / "o"),
                     "--weights", str(path)]) == 2
        msg = _err(capsys)
        assert str(path) in msg and "not a readable HDF5 weights file" in msg
    small = tmp_path / "small.h5"
    with h5py.File(small, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv1/7x7_s2"])
    assert main(["embed", "--pairs", str(pairs), "--out", str(tmp_path / "o"),
                 "--weights", str(small)]) == 2
    assert "lacks 137 of SENet50's 138 weighted layers" in _err(capsys)
    assert not (tmp_path / "o").exists()


def test_damaged_cached_weights_are_fetched_again(tmp_path, monkeypatch):
    from mfr.backbones.vggface import pretrained
    from mfr.backbones.vggface.senet50 import VGGFACE_NAMES

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = pretrained.weights_cache_dir() / pretrained.VGGFACE2["file"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x89HDF\r\n\x1a\n truncated")  # an interrupted copy

    def fetch(progress=True):  # stands in for the download: a file with SENet50's layers
        with h5py.File(cached, "w") as f:
            f.attrs["layer_names"] = np.array([n.encode() for n in VGGFACE_NAMES.values()])
        return cached

    monkeypatch.setattr(pretrained, "get_weights_file", fetch)
    with pytest.warns(UserWarning, match="not a readable HDF5 weights file.*downloading it again"):
        assert pretrained.vggface2_weights_file() == cached
    pretrained.check_senet50_file(cached)


# --------------------------------------------------------------------------- faults


def test_unexpected_errors_are_bugs_with_a_traceback(monkeypatch, tmp_path, capsys):
    import mfr.study.steps

    monkeypatch.setattr(mfr.study.steps, "partition_step", lambda *a, **k: {}["boom"])
    assert main(["partition", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err and "this is a bug in mfr" in err


_FSIZE = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))  # a disk with 400 kB free
from mfr.data.image_cache import build_image_cache
paths = sorted(p.name for p in __import__("pathlib").Path(sys.argv[1]).glob("*.png"))
try:
    build_image_cache(sys.argv[1], paths, sys.argv[2], progress=False)
except OSError as e:
    print("OSError", e)
"""


def test_a_full_disk_is_an_error_and_leaves_no_temporary_file(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(12):  # 12 x 150 kB at 224 px: more than the 400 kB allowed
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), np.uint8)).save(tmp_path / f"{i}.png")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".images.npy.killed.tmp").write_bytes(b"x" * 1000)  # left by a killed build
    p = subprocess.run([sys.executable, "-c", _FSIZE, str(tmp_path), str(cache)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    assert "cannot write the image cache (2 MB) in" in p.stdout, p.stdout
    assert list(cache.iterdir()) == []  # the stale and the new temporary file: both gone


_MEMORY = """
import sys
from mfr.data.image_cache import build_image_cache
build_image_cache(sys.argv[1], [f"{i}.jpg" for i in range(4)], sys.argv[2], progress=False,
                  num_workers=2)
status = open("/proc/self/status").read()  # VmHWM: this process's peak (ru_maxrss is not
print(int(status.split("VmHWM:")[1].split()[0]) // 1024)  # reset by exec on Linux)
"""


def test_parallel_decoding_is_bounded_in_memory(tmp_path):
    big = np.zeros((6000, 6000, 3), np.uint8)
    big[::7] = 200
    for i in range(4):
        big[..., i % 3] = 60 * i + 10
        Image.fromarray(big).save(tmp_path / f"{i}.jpg", quality=80)
    del big
    p = subprocess.run([sys.executable, "-c", _MEMORY, str(tmp_path), str(tmp_path / "c")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    peak_mb = int(p.stdout.split()[-1])
    assert peak_mb < 900, peak_mb  # was 1.5 GB: a float32 copy of each whole image
