"""Issue 28: a corpus of bad inputs of every class, made here from code (no binary file is
committed), run through every command as a user runs it (`python -m mfr.cli ...` in a
subprocess). Each bad input is either refused -- exit 2, one line on stderr naming the file
(or the option), no traceback, within a timeout (no hang), no output folder left -- or, where
one bad file must not stop a run (an image in a tree), handled: exit 0 and the file listed.

The classes: not UTF-8, a BOM, a NUL byte, a FIFO, a symlink loop, a ``../`` escape, a row with
four fields, a genuine label on two subjects, a YAML alias bomb, a key given twice, a huge
number, a negative number, JSON of the wrong shape, an encrypted zip member, a truncated
image, a zero-byte image, a PNG header of huge dimensions, a folder where a file is expected.

The subprocess matrix is slow (``@pytest.mark.slow``); a fast subset runs the same corpus
in-process through :func:`mfr.cli.main`.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data_fetch import _mfr2_tree  # the same tiny MFR2 tree

from mfr.cli import main
from mfr.data.pairs import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 90  # seconds: a hang fails the case


# --------------------------------------------------------------------------- the corpus


def _png_header(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def _face(path: Path, seed: int = 0, size: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _encrypted_zip(tree: Path, path: Path) -> Path:
    """An MFR2 archive one of whose members carries the 'encrypted' flag (as a tool that
    encrypts sets it; zipfile cannot write encrypted members)."""
    with zipfile.ZipFile(path, "w") as z:
        for p in sorted(tree.rglob("*")):
            if p.is_file():
                z.write(p, f"MFR2/{p.relative_to(tree).as_posix()}")
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 6] |= 1
    data[central + 8] |= 1
    path.write_bytes(bytes(data))
    return path


@dataclass
class Corpus:
    """Bad files of each class, and the good inputs the commands need beside them."""

    root: Path
    tree: Path  # a small RMFRD-layout tree
    pairs: Path  # its partition (mfr partition)
    mfr2: Path  # a tiny MFR2 tree
    image: Path  # a good photo
    study: Path  # an empty folder (a --study that exists)
    profiles: dict[str, Path] = field(default_factory=dict)
    pair_folders: dict[str, Path] = field(default_factory=dict)
    mfr2_trees: dict[str, Path] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)
    thresholds: dict[str, Path] = field(default_factory=dict)
    archives: dict[str, Path] = field(default_factory=dict)


def make_corpus(base: Path, tree: Path, pairs: Path) -> Corpus:
    c = Corpus(base, tree, pairs, _mfr2_tree(base / "mfr2"), _face(base / "good.png"),
               base / "empty_study")
    c.study.mkdir()
    bad = base / "bad"
    bad.mkdir()
    # profiles (YAML)
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]" for n, p in zip("bcdefgh", "abcdefg",
                                                                             strict=True)]
    bomb.append("epochs: [" + ",".join(["*h"] * 9) + "]")
    texts = {"not_utf8": "epochs: 2\n# r\xe9sum\xe9\n".encode("latin-1"),
             "nul": b"epochs: 2\n\0\n",
             "alias_bomb": ("\n".join(bomb) + "\n").encode(),
             "duplicate_key": b"epochs: 2\nseed: 1\nepochs: 3\n",
             "huge_number": b"bootstrap_resamples: 1000000000000\n",
             "negative_number": b"seed: -1\n"}
    for name, data in texts.items():
        (bad / f"{name}.yaml").write_bytes(data)
        c.profiles[name] = bad / f"{name}.yaml"
    os.mkfifo(bad / "fifo.yaml")
    os.symlink("loop.yaml", bad / "loop.yaml")
    (bad / "dir.yaml").mkdir()
    c.profiles.update(fifo=bad / "fifo.yaml", symlink_loop=bad / "loop.yaml",
                      directory=bad / "dir.yaml")
    # pair folders: each a copy of the partition with every split damaged the same way
    good = {s: (pairs / f"{s}.csv").read_text() for s in ("train", "val", "test")}

    def damaged(name: str, change) -> None:
        folder = bad / f"pairs_{name}"
        shutil.copytree(pairs, folder)
        for split, body in good.items():
            target = folder / f"{split}.csv"
            target.unlink()
            change(target, body)
        c.pair_folders[name] = folder

    def row_edit(edit):
        def change(target: Path, body: str) -> None:
            lines = body.splitlines()
            lines[1] = edit(lines[1].split(","))
            target.write_text("\n".join(lines) + "\n")
        return change

    damaged("not_utf8", lambda t, b: t.write_bytes(b.encode() + "x/\xe9/1.jpg,y/\xe9/2.jpg,0,"
                                                   "\xe9,\xe9\n".encode("latin-1")))
    damaged("nul", lambda t, b: t.write_bytes(b.encode().replace(b"\n", b"\0\n", 2)))
    damaged("four_fields", row_edit(lambda r: ",".join(r[:4])))
    damaged("escape", row_edit(lambda r: ",".join(["../outside/" + r[0], *r[1:]])))
    damaged("inconsistent_label", row_edit(
        lambda r: ",".join([*r[:2], "0" if r[2] == "1" else "1", *r[3:]])))
    damaged("fifo", lambda t, b: os.mkfifo(t))
    damaged("directory", lambda t, b: t.mkdir())
    # MFR2 trees with a bad labels file
    for name, labels in (("not_utf8", "AnnA, 1, no-mask\nJos\xe9, 1, cloth\n".encode("latin-1")),
                         ("escape", b"AnnA, 1, no-mask\n../outside, 1, cloth\n"),
                         ("bom", None)):
        t = bad / f"mfr2_{name}"
        shutil.copytree(c.mfr2, t)
        if labels is None:  # a BOM: read as without
            labels = b"\xef\xbb\xbf" + (t / "mfr2_labels.txt").read_bytes()
        (t / "mfr2_labels.txt").write_bytes(labels)
        c.mfr2_trees[name] = t
    # images
    img = bad / "images"
    img.mkdir()
    data = c.image.read_bytes()
    (img / "truncated.png").write_bytes(data[: len(data) // 3])
    (img / "zero.jpg").write_bytes(b"")
    _png_header(img / "huge.png", 60000, 60000)
    os.mkfifo(img / "fifo.jpg")
    os.symlink("loop.jpg", img / "loop.jpg")
    (img / "dir.jpg").mkdir()
    c.images = {p.stem if p.stem != "dir" else "directory": p for p in
                (img / "truncated.png", img / "zero.jpg", img / "huge.png", img / "fifo.jpg",
                 img / "loop.jpg", img / "dir.jpg")}
    c.images["symlink_loop"] = c.images.pop("loop")
    # thresholds.json of the wrong shape
    for name, value in (("settings_list", {"settings": [1, 2]}),
                        ("embedder_list", {"pair_sets": {"p": {"euclidean_raw": 0.5}},
                                           "embedder": ["dlib"]}),
                        ("threshold_text", {"pair_sets": {"p": {"euclidean_raw": "0.5"}}}),
                        ("a_list", [1, 2])):
        (bad / f"{name}.json").write_text(json.dumps(value))
        c.thresholds[name] = bad / f"{name}.json"
    # archives
    c.archives["encrypted"] = _encrypted_zip(c.mfr2, bad / "encrypted.zip")
    os.mkfifo(bad / "fifo.zip")
    c.archives["fifo"] = bad / "fifo.zip"
    return c


def _rmfrd_tree(root: Path, subjects: int = 3) -> Path:
    """A tiny tree in RMFRD's layout: two unmasked and one masked photo per subject."""
    for s in range(subjects):
        for i in range(2):
            _face(root / "AFDB_face_dataset" / f"s{s}" / f"{i}.jpg", seed=10 * s + i)
        _face(root / "AFDB_masked_face_dataset" / f"s{s}" / "m0.jpg", seed=10 * s + 5)
    return root


def _pairs_folder(folder: Path) -> Path:
    """Pair tables of the tiny tree as `mfr partition` writes them (every unmasked x masked
    pair of its subjects, in each split: enough for the readers)."""
    folder.mkdir(parents=True)
    rows = [",".join(COLUMNS)]
    for a in range(3):
        for b in range(3):
            for i in range(2):
                rows.append(f"AFDB_face_dataset/s{a}/{i}.jpg,AFDB_masked_face_dataset/s{b}/m0.jpg,"
                            f"{int(a == b)},s{a},s{b}")
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    base = tmp_path_factory.mktemp("corpus")
    return make_corpus(base, _rmfrd_tree(base / "tree"), _pairs_folder(base / "pairs"))


# --------------------------------------------------------------------------- the cases


#: how each command is given a profile (it writes into OUT, which must not be left behind)
def _with_profile(c: Corpus, command: str, profile: Path, out: Path) -> list[str]:
    return {
        "partition": ["partition", "--config", str(profile), "--data-root", str(c.tree),
                      "--out", str(out)],
        "embed": ["embed", "--config", str(profile), "--pairs", str(c.pairs), "--out", str(out),
                  "--weights", "none"],
        "train": ["train", "--config", str(profile), "--pairs", str(c.pairs), "--out", str(out)],
        "evaluate": ["evaluate", "--config", str(profile), "--study", str(c.study), "--out",
                     str(out)],
        "gradcam": ["gradcam", "--config", str(profile), "--weights", "none", "--pairs",
                    str(c.pairs), "--out", str(out)],
        "verify": ["verify", str(c.image), str(c.image), "--config", str(profile)],
        "search": ["search", "--config", str(profile), "--data-root", str(c.tree), "--out",
                   str(out)],
        "study": ["study", "--profile", str(profile), "--out", str(out)],
        "recipes": ["recipes", "--profile", str(profile), "--out", str(out)],
    }[command]


PROFILE_COMMANDS = ("partition", "embed", "train", "evaluate", "gradcam", "verify", "search",
                    "study", "recipes")
PROFILE_CLASSES = ("not_utf8", "nul", "alias_bomb", "duplicate_key", "huge_number",
                   "negative_number", "fifo", "symlink_loop", "directory")
#: every class through every command that reads a profile would be 81 runs (a few seconds
#: each): three classes run through all of them, the others through `mfr train` (and all of
#: them in-process, fast, through `mfr partition`); every command reads its profile with the
#: same reader
PROFILE_MATRIX = [(cls, cmd) for cls in PROFILE_CLASSES for cmd in PROFILE_COMMANDS
                  if cls in ("not_utf8", "alias_bomb", "fifo") or cmd == "train"]

PAIR_CLASSES = ("not_utf8", "nul", "four_fields", "escape", "inconsistent_label", "fifo",
                "directory")
#: every class through `mfr embed`, two through the other commands that read pair tables
PAIR_MATRIX = [(cls, cmd) for cls in PAIR_CLASSES for cmd in ("embed", "train", "gradcam")
               if cmd == "embed" or cls in ("four_fields", "fifo")]

#: (command, option, value): the numbers the issue found unchecked, and their kin
NUMBERS = [
    ("gradcam", "--n-boot", "0"), ("gradcam", "--n-boot", "-5"),
    ("gradcam", "--n-boot", "1000000000"), ("gradcam", "--seed", "-1"),
    ("mask", "--seed", "-1"), ("mask", "--per-image", "1000000"),
    ("evaluate", "--bootstrap-resamples", "1000000000000"),
    ("evaluate", "--bootstrap-resamples", "-5"),
    ("embed", "--image-size", "100000"), ("embed", "--embed-batch-size", "-1"),
    ("train", "--epochs", "-1"), ("train", "--batch-size", "1000000000"),
    ("partition", "--seed", "-1"), ("partition", "--max-per-subject", "1000000000000"),
    ("verify", "--seed", "-1"), ("study", "--num-cpus", "-1"), ("study", "--seeds", "-1"),
    ("study", "--max-retries", "1000000"), ("search", "--n", "-1"),
    ("search", "--learning-rates", "1e9"), ("search", "--epoch-counts", "0"),
    ("recipes", "--seeds", "-1"), ("recipes", "--seeds", str(2**40)),
]


def _number_args(c: Corpus, command: str, out: Path) -> list[str]:
    return {
        "gradcam": ["gradcam", "--weights", "none", "--pairs", str(c.pairs), "--out", str(out)],
        "mask": ["mask", "--data-root", str(c.tree), "--out", str(out), "--detector", "none"],
        "evaluate": ["evaluate", "--study", str(c.study), "--out", str(out)],
        "embed": ["embed", "--pairs", str(c.pairs), "--out", str(out), "--weights", "none"],
        "train": ["train", "--pairs", str(c.pairs), "--out", str(out), "--weights", "none"],
        "partition": ["partition", "--data-root", str(c.tree), "--out", str(out)],
        "verify": ["verify", str(c.image), str(c.image)],
        "study": ["study", "--out", str(out)],
        "search": ["search", "--data-root", str(c.tree), "--out", str(out)],
        "recipes": ["recipes", "--out", str(out)],
    }[command]


# --------------------------------------------------------------------------- running


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run([sys.executable, "-m", "mfr.cli", *args], capture_output=True,
                              text=True, env=env, cwd=cwd, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mfr {' '.join(args)}: no answer in {TIMEOUT} s (a hang)")


def _refused(rc: int, err: str, command: str, named: str, out: Path | None) -> None:
    """Exit 2, one line (the random-weights warning aside) naming `named`, no traceback, no
    output folder left."""
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("WARNING: RANDOM")]
    assert rc == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"mfr {command}: error: "), err
    assert named in lines[0], (named, err)
    assert len(lines[0]) < 600, err  # no value echoed whole
    if out is not None:
        assert not out.exists(), f"{out} left behind: {sorted(p.name for p in out.iterdir())}"


def _in_process(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        rc = main(args)
    except SystemExit as e:  # argparse's refusals
        rc = e.code
    return rc, capsys.readouterr().err


# --------------------------------------------------------------------------- slow: subprocesses


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "command"), PROFILE_MATRIX)
def test_bad_profile_through_every_command(corpus, tmp_path, cls, command):
    out = tmp_path / "out"
    profile = corpus.profiles[cls]
    r = _run(_with_profile(corpus, command, profile, out), tmp_path)
    _refused(r.returncode, r.stderr, command, profile.name, out)


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "command"), PAIR_MATRIX)
def test_bad_pair_table_through_every_command_that_reads_pairs(corpus, tmp_path, cls, command):
    folder = corpus.pair_folders[cls]
    out = tmp_path / "out"
    args = {"embed": ["embed", "--pairs", str(folder), "--out", str(out), "--split", "test"],
            "train": ["train", "--pairs", str(folder), "--out", str(out)],
            "gradcam": ["gradcam", "--pairs", str(folder), "--out", str(out)]}[command]
    r = _run([*args, "--weights", "none", "--no-progress"], tmp_path)
    named = folder.name  # FILE: line N ..., or the folder's split file
    _refused(r.returncode, r.stderr, command, named, None)
    if out.exists():  # a run that had started records its failure, nothing else
        assert sorted(p.name for p in out.iterdir()) == ["run.json"], list(out.iterdir())
        assert json.loads((out / "run.json").read_text())["status"] == "failed"


@pytest.mark.slow
@pytest.mark.parametrize(("command", "option", "value"), NUMBERS)
def test_out_of_range_numbers_through_every_command(corpus, tmp_path, command, option, value):
    out = tmp_path / "out"
    r = _run([*_number_args(corpus, command, out), f"{option}={value}"], tmp_path)
    _refused(r.returncode, r.stderr, command, option, out)


@pytest.mark.slow
@pytest.mark.parametrize("cls", ["huge", "fifo"])  # every class in-process, below
def test_bad_photo_through_verify(corpus, tmp_path, cls):
    bad = corpus.images[cls]
    r = _run(["verify", str(corpus.image), str(bad), "--embedder", "dlib_reference"], tmp_path)
    _refused(r.returncode, r.stderr, "verify", str(bad), None)


@pytest.mark.slow
def test_bad_images_in_a_tree_are_listed_by_partition_and_mask(corpus, tmp_path):
    """One bad image never stops a run: each is listed with its reason (the handled row)."""
    tree = tmp_path / "tree"
    shutil.copytree(corpus.tree, tree)
    subject = tree / "AFDB_masked_face_dataset" / sorted(
        os.listdir(tree / "AFDB_masked_face_dataset"))[0]
    unmasked = tree / "AFDB_face_dataset" / subject.name
    for name, p in corpus.images.items():
        target = subject / f"bad_{name}.jpg"
        if name == "fifo":
            os.mkfifo(target)
        elif name == "symlink_loop":
            os.symlink(target.name, target)
        elif name == "directory":
            target.mkdir()
        else:
            shutil.copy(p, target)
            shutil.copy(p, unmasked / f"bad_{name}.jpg")
    os.symlink("loop", tree / "AFDB_masked_face_dataset" / "loop")  # a subject-level loop
    r = _run(["partition", "--data-root", str(tree), "--out", str(tmp_path / "p")], tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    listed = {e["path"] for e in json.loads((tmp_path / "p" / "stats.json").read_text())[
        "excluded"]["files"]}
    # the partition reads headers only: a truncated image is listed where it is decoded
    for name in ("zero", "huge", "fifo", "symlink_loop", "directory"):
        assert f"AFDB_masked_face_dataset/{subject.name}/bad_{name}.jpg" in listed, name
    assert "AFDB_masked_face_dataset/loop" in listed
    r = _run(["mask", "--data-root", str(tree), "--out", str(tmp_path / "m"), "--detector",
              "none", "--crop-fallback", "--no-progress"], tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    failed = (tmp_path / "m" / "failed.csv").read_text()
    for name in ("truncated", "zero", "huge"):
        assert f"bad_{name}.jpg" in failed, name


@pytest.mark.slow
@pytest.mark.parametrize("cls", ["not_utf8", "escape"])
def test_bad_mfr2_labels_through_partition_and_evaluate(corpus, tmp_path, cls):
    tree = corpus.mfr2_trees[cls]
    for args in (["partition", "--data-root", str(tree), "--out", str(tmp_path / "o")],
                 ["evaluate", "--data-root", str(tree), "--layout", "mfr2", "--embedder",
                  "dlib_reference", "--out", str(tmp_path / "o")]):
        r = _run(args, tmp_path)
        _refused(r.returncode, r.stderr, args[0], "mfr2_labels.txt", tmp_path / "o")


@pytest.mark.slow
@pytest.mark.parametrize("cls", ["encrypted", "fifo"])
def test_bad_archive_through_data_fetch(corpus, tmp_path, cls):
    target = tmp_path / "data" / "mfr2"
    archive = corpus.archives[cls]
    r = _run(["data", "fetch", "mfr2", "--to", str(target), "--from", str(archive)], tmp_path)
    _refused(r.returncode, r.stderr, "data", str(archive), target)


# --------------------------------------------------------------------------- fast: in-process


@pytest.mark.parametrize("cls", PROFILE_CLASSES)
def test_bad_profile_is_one_line(corpus, tmp_path, capsys, cls):
    profile = corpus.profiles[cls]
    out = tmp_path / "out"
    rc, err = _in_process(_with_profile(corpus, "partition", profile, out), capsys)
    _refused(rc, err, "partition", profile.name, out)


def test_the_alias_bomb_answers_at_once(corpus, tmp_path):
    """374 bytes that expand to gigabytes: refused on the first anchor, in a subprocess (the
    time is the interpreter's start and the imports)."""
    out = tmp_path / "out"
    r = _run(_with_profile(corpus, "train", corpus.profiles["alias_bomb"], out), tmp_path)
    _refused(r.returncode, r.stderr, "train", "alias_bomb.yaml", out)
    assert "an anchor" in r.stderr and len(r.stderr) < 300


@pytest.mark.parametrize(("command", "option", "value"),
                         [n for n in NUMBERS if n[0] in ("gradcam", "mask", "evaluate", "study",
                                                         "recipes", "verify")])
def test_out_of_range_number_is_one_line(corpus, tmp_path, capsys, command, option, value):
    out = tmp_path / "out"
    rc, err = _in_process([*_number_args(corpus, command, out), f"{option}={value}"], capsys)
    _refused(rc, err, command, option, out)


@pytest.mark.parametrize("cls", ["truncated", "zero", "huge", "fifo", "symlink_loop",
                                 "directory"])
def test_bad_photo_is_refused_before_any_model(corpus, capsys, cls):
    bad = corpus.images[cls]
    rc, err = _in_process(["verify", str(corpus.image), str(bad), "--embedder", "dlib_reference"], capsys)
    _refused(rc, err, "verify", str(bad), None)


@pytest.mark.parametrize("cls", ["settings_list", "embedder_list", "threshold_text", "a_list"])
def test_thresholds_of_the_wrong_shape_are_refused_before_any_model(corpus, capsys, cls):
    bad = corpus.thresholds[cls]
    rc, err = _in_process(["verify", str(corpus.image), str(corpus.image), "--embedder", "dlib_reference",
                           "--threshold", str(bad)], capsys)
    _refused(rc, err, "verify", str(bad), None)


def test_an_encrypted_member_and_a_fifo_archive_are_refused(corpus, tmp_path, capsys):
    for cls in ("encrypted", "fifo"):
        target = tmp_path / cls / "mfr2"
        archive = corpus.archives[cls]
        rc, err = _in_process(["data", "fetch", "mfr2", "--to", str(target), "--from",
                               str(archive)], capsys)
        _refused(rc, err, "data", str(archive), target)
    assert "encrypted" in _in_process(["data", "fetch", "mfr2", "--to", str(tmp_path / "x"),
                                       "--from", str(corpus.archives["encrypted"])], capsys)[1]


def test_mfr2_labels_bad_or_with_a_bom(corpus, tmp_path, capsys):
    for cls in ("not_utf8", "escape"):
        out = tmp_path / cls
        rc, err = _in_process(["partition", "--data-root", str(corpus.mfr2_trees[cls]), "--out",
                               str(out)], capsys)
        _refused(rc, err, "partition", "mfr2_labels.txt", out)
    # a BOM is dropped: the same partition as without (mfr.data.partition, not written: the
    # writing is timed elsewhere)
    from mfr.data.partition import partition

    bom, plain = partition(corpus.mfr2_trees["bom"]), partition(corpus.mfr2)
    assert bom.test.equals(plain.test) and len(bom.test) > 0


def test_verify_of_a_missing_photo_answers_before_any_import(tmp_path):
    """`mfr verify missing.jpg other.jpg` no longer imports TensorFlow first (22 s before)."""
    r = _run(["verify", "missing.jpg", "other.jpg"], tmp_path)
    _refused(r.returncode, r.stderr, "verify", "missing.jpg", None)
    probe = ("import sys; from mfr.cli import main; rc = main(['verify', 'missing.jpg', "
             "'other.jpg']); print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') "
             "if m in sys.modules), rc)")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       timeout=TIMEOUT)
    assert p.stdout.strip() == "[] 2", p.stdout + p.stderr


def test_pair_folder_classes_are_refused_by_the_pair_reader(corpus):
    """The fast kin of the subprocess matrix: each damaged pair folder's split, read."""
    from mfr.core.errors import InputError
    from mfr.data.pairs import read_pair_csvs

    for cls, folder in corpus.pair_folders.items():
        with pytest.raises(InputError) as e:
            read_pair_csvs(folder)
        msg = str(e.value)
        assert folder.name in msg and "\n" not in msg, (cls, msg)
