"""MLFW and M2FRED in the registry: detection, loading, mask flags, own splits, broken trees;
the registry's lazy imports (mfr.data.datasets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mfr.core.errors import InputError, MissingError
from mfr.data.datasets import (
    FaceImage,
    detect_dataset,
    get_dataset,
    load_dataset,
    load_m2fred,
    load_mlfw,
    require_mask_flags,
)
from mfr.data.datasets.synthetic import make_m2fred_tree, make_mlfw_tree, make_rmfrd_tree

ROOT = Path(__file__).resolve().parent.parent

#: a small MLFW tree: train A (photos 1, 1', 2), B (1, 2), C (1); val D (1, 2, 3), E (1)
MLFW = {"train": {"Ann_A": [(1, 0), (1, 1), (2, 0)], "Bob_B": [(1, 0), (2, 0)],
                  "Cy_C": [(1, 0)]},
        "val": {"Dee_D": [(1, 0), (2, 0), (3, 0)], "Eve_E": [(1, 0)]}}


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_mlfw_loads_identities_with_no_mask_flag(tmp_path):
    root = make_mlfw_tree(tmp_path / "mlfw", MLFW)
    ds = load_mlfw(root)
    assert ds.layout == "mlfw" and ds.root == root
    assert ds.subjects == ["Ann_A", "Bob_B", "Cy_C", "Dee_D", "Eve_E"]
    assert ds.images[:3] == [FaceImage(f"train/Ann_A/Ann_A_000{i}_000{k}.jpg", "Ann_A", None)
                             for i, k in ((1, 0), (1, 1), (2, 0))]
    assert all(im.masked is None for im in ds.images) and len(ds.images) == 10
    # an unknown flag is neither side, and counted apart
    assert ds.summary() == {"subjects": 5, "unmasked_images": 0, "masked_images": 0,
                            "unknown_mask_images": 10}
    assert not any(ds.by_subject(False).values()) and not any(ds.by_subject(True).values())
    assert sum(map(len, ds.by_subject(None).values())) == 10
    assert ds.excluded == {"subjects": [], "files": []}
    spec = get_dataset("mlfw")
    assert spec.own_splits(ds) == {"train": ["Ann_A", "Bob_B", "Cy_C"],
                                   "val": ["Dee_D", "Eve_E"], "test": []}
    assert spec.photo_of("train/Ann_A/Ann_A_0001_0001.jpg") == "train/Ann_A/Ann_A_0001"


def test_mlfw_one_split_alone_has_no_own_splits(tmp_path):
    root = make_mlfw_tree(tmp_path / "only", {None: MLFW["train"]})
    spec, found = detect_dataset(root)
    assert (spec.name, found) == ("mlfw", root)
    ds = load_dataset(root)
    assert ds.subjects == ["Ann_A", "Bob_B", "Cy_C"]
    assert ds.images[0].path == "Ann_A/Ann_A_0001_0000.jpg"
    assert spec.own_splits(ds) is None


def test_mlfw_odd_entries_are_listed_not_fatal(tmp_path):
    root = make_mlfw_tree(tmp_path / "mlfw", {"train": {"Ann_A": [(1, 0), (2, 0)],
                                                       "Both_X": [(1, 0)]},
                                              "val": {"Both_X": [(2, 0)], "Dee_D": [(1, 0)]}})
    a = root / "train" / "Ann_A"
    (a / "Bob_B_0001_0000.jpg").write_bytes((a / "Ann_A_0001_0000.jpg").read_bytes())
    (a / "notes.txt").write_text("x")
    (a / ".hidden.jpg").write_bytes(b"")
    (a / "other.PNG").write_bytes((a / "Ann_A_0001_0000.jpg").read_bytes())
    (root / "train" / "stray.jpg").write_bytes(b"")
    (root / "train" / "Empty_E").mkdir()
    (root / "README.txt").write_text("x")
    ds = load_mlfw(root)
    assert ds.subjects == ["Ann_A", "Dee_D"]  # Both_X would leak: left out of every split
    assert [im.path for im in ds.images if im.subject == "Ann_A"] == [
        "train/Ann_A/Ann_A_0001_0000.jpg", "train/Ann_A/Ann_A_0002_0000.jpg",
        "train/Ann_A/other.PNG"]  # an identity is its folder: any image name counts
    files = {e["path"]: e["reason"] for e in ds.excluded["files"]}
    assert "another identity (Bob_B)" in files["train/Ann_A/Bob_B_0001_0000.jpg"]
    assert files["train/Ann_A/notes.txt"].startswith("not an image file")
    assert files["train/Ann_A/.hidden.jpg"] == "hidden file"
    assert files["train/stray.jpg"] == "not inside an identity folder"
    assert files["README.txt"] == "not a split folder (train, val, test)"
    subj = {e["subject"]: e for e in ds.excluded["subjects"]}
    assert "train/ and val/" in subj["Both_X"]["reason"] and subj["Both_X"]["files"] == 2
    assert subj["Empty_E"]["action"] == "not a subject"


def test_m2fred_mask_flag_from_the_file_name(tmp_path):
    root = make_m2fred_tree(tmp_path / "m2", {"000": (2, 2), "002": (1, 0)})
    p = root / "000"
    (p / "photo.png").write_bytes((p / "1-0-0.png").read_bytes())
    (p / "1-2-0.png").write_bytes((p / "1-0-0.png").read_bytes())
    (p / "x.txt").write_text("x")
    (root / "003").mkdir()
    ds = load_m2fred(tmp_path)  # found one folder down
    assert ds.layout == "m2fred" and ds.root == root and ds.subjects == ["000", "002"]
    assert ds.images[:4] == [FaceImage("000/1-0-0.png", "000", False),
                             FaceImage("000/2-0-0.png", "000", False),
                             FaceImage("000/1-1-0.png", "000", True),
                             FaceImage("000/2-1-0.png", "000", True)]
    assert ds.summary() == {"subjects": 2, "unmasked_images": 3, "masked_images": 2}
    files = {e["path"]: e["reason"] for e in ds.excluded["files"]}
    # a name that gives no mask flag: left out, never taken as unmasked
    assert files["000/photo.png"].startswith("no mask flag")
    assert files["000/1-2-0.png"].startswith("no mask flag")
    assert files["000/x.txt"].startswith("not an image")
    subj = {(e["subject"], e["side"]): e for e in ds.excluded["subjects"]}
    assert "kept" in subj[("002", "masked")]["action"]
    assert subj[("003", "all")]["action"] == "not a subject"
    assert require_mask_flags(ds, "x") == []


def test_detection_closest_wins_and_registry_order(tmp_path):
    m2 = make_m2fred_tree(tmp_path / "a" / "m2fred", {"000": (1, 1)})
    ml = make_mlfw_tree(tmp_path / "a" / "mlfw", MLFW)
    assert detect_dataset(m2) == (get_dataset("m2fred"), m2)
    assert detect_dataset(ml) == (get_dataset("mlfw"), ml)
    # both one level down: the first in registry order (mlfw before m2fred)
    assert detect_dataset(tmp_path / "a") == (get_dataset("mlfw"), ml)
    # an RMFRD tree in the folder itself wins over an M2FRED tree below it
    rm = make_rmfrd_tree(tmp_path / "b", {"s": (1, 1)}, image_size=16, dirname=None)
    make_m2fred_tree(tmp_path / "b" / "deeper", {"000": (1, 1)})
    assert detect_dataset(rm) == (get_dataset("rmfrd"), rm)
    # MLFW's split folders are one tree, not two
    assert detect_dataset(tmp_path / "a" / "mlfw")[1] == ml


def test_broken_trees_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    for load, words in ((load_mlfw, "MLFW"), (load_m2fred, "M2FRED")):
        with pytest.raises(MissingError) as e:
            load(tmp_path / "empty")
        msg = _one_line(e)
        assert f"no {words} tree found" in msg and str(tmp_path / "empty") in msg
        with pytest.raises(MissingError) as e:
            load(tmp_path / "nowhere")
        assert "no such directory" in _one_line(e)
    for k in (1, 2):
        make_m2fred_tree(tmp_path / "two" / f"m{k}", {"000": (1, 1)})
        make_mlfw_tree(tmp_path / "twice" / f"t{k}", {"train": {"Ann_A": [(1, 0)]}})
    with pytest.raises(InputError) as e:
        load_m2fred(tmp_path / "two")
    assert "several M2FRED trees" in _one_line(e)
    with pytest.raises(InputError) as e:
        load_mlfw(tmp_path / "twice")
    assert "several MLFW trees" in _one_line(e)
    # a tree with no mask flag, where a side is needed
    ds = load_mlfw(make_mlfw_tree(tmp_path / "mlfw", MLFW))
    with pytest.raises(InputError) as e:
        require_mask_flags(ds, "protocol thesis")
    msg = _one_line(e)
    assert "carry no mask flag" in msg and "protocol identity" in msg


def test_a_direct_evaluation_refuses_a_dataset_with_no_mask_flag(tmp_path):
    from mfr.core.config import StudyConfig
    from mfr.study.steps.evaluate import _dataset_images

    root = make_mlfw_tree(tmp_path / "mlfw", MLFW)
    with pytest.raises(InputError, match="carry no mask flag"):
        _dataset_images(StudyConfig(), root, "mlfw")
    m2 = make_m2fred_tree(tmp_path / "m2", {"000": (1, 2), "001": (2, 1)})
    ds, unmasked, masked = _dataset_images(StudyConfig(), m2, "m2fred")
    assert len(unmasked) == len(masked) == 3


def test_fetch_of_a_dataset_given_on_request(tmp_path, monkeypatch, capsys):
    """No URL is made up: `mfr data fetch mlfw` says how to get it; --from takes it."""
    from mfr.cli import main

    monkeypatch.setenv("MFR_DATA", str(tmp_path / "home"))
    assert main(["data", "fetch", "mlfw"]) == 2
    err = capsys.readouterr().err
    assert "not downloaded by mfr" in err and "TiaBerte/masked-face" in err
    assert len(err.strip().splitlines()) == 1
    tree = make_m2fred_tree(tmp_path / "got", {"000": (1, 1)})
    assert main(["data", "fetch", "m2fred", "--from", str(tree)]) == 0
    assert capsys.readouterr().out.strip() == f"m2fred: {tmp_path / 'home' / 'm2fred'}"
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "mlfw: MLFW" in out and "by hand: MLFW's makers give it on request" in out
    assert f"{tmp_path / 'home' / 'm2fred'}\n" in out  # fetched: its folder, not "not fetched"


def test_the_package_imports_its_dataset_modules_lazily():
    code = ("import sys, mfr.data.datasets as d\n"
            "mods = [m for m in sys.modules if m.startswith('mfr.data.datasets.')]\n"
            "assert mods == ['mfr.data.datasets.common'], mods\n"
            "from mfr.data.datasets import MASKED_DIR, load_mfr2\n"
            "assert 'mfr.data.datasets.rmfrd' in sys.modules and 'mfr.data.datasets.mlfw' "
            "not in sys.modules\n"
            "assert MASKED_DIR == 'AFDB_masked_face_dataset' and 'load_mlfw' in dir(d)\n"
            "try:\n    d.nothing\nexcept AttributeError:\n    pass\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------- the shared sets


def test_mlfw_dev(mlfw_dev):
    ds = load_dataset(mlfw_dev)
    assert ds.layout == "mlfw" and ds.root == mlfw_dev
    own = get_dataset("mlfw").own_splits(ds)
    # as the shared README gives them: 2,387 train and 299 val identities, none in both
    assert (len(own["train"]), len(own["val"]), own["test"]) == (2387, 299, [])
    assert not set(own["train"]) & set(own["val"])
    assert len(ds.images) == 9204 + 1207 and ds.excluded["files"] == []
    assert all(im.masked is None for im in ds.images)


def test_m2fred_dev(m2fred_dev):
    ds = load_dataset(m2fred_dev)
    assert ds.layout == "m2fred" and len(ds.subjects) == 22
    s = ds.summary()
    assert s["unmasked_images"] + s["masked_images"] == 174 and "unknown_mask_images" not in s
    # both sides for every person (the README), and the flag is the name's
    assert ds.excluded == {"subjects": [], "files": []}
    assert all(im.masked == (im.path.split("-")[1] == "1") for im in ds.images)
