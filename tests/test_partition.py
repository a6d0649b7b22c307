"""The thesis's partition (mfr.data.partition) and `mfr partition`."""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split
from sklearn.utils import shuffle

from mfr.cli import main
from mfr.core import outputs
from mfr.data.datasets import MASKED_DIR, UNMASKED_DIR, mfr2_pairs
from mfr.data.datasets.synthetic import make_rmfrd_tree, table_4_2_counts
from mfr.data.pairs import COLUMNS, read_pairs
from mfr.data.partition import (
    TABLE_KEYS,
    THESIS_TABLE_4_2,
    partition,
    table_4_2,
    write_partition,
)

U, M = UNMASKED_DIR, MASKED_DIR


def thesis_reference(root: Path, max_pick: int = 20, seed: int = 2021):
    """The thesis's code, restated with DataFrames of path tuples (fine at small scale)."""
    subjects = sorted(set(os.listdir(root / M)) & set(os.listdir(root / U)))
    n_tv = int(0.8 * len(subjects))

    def images(split, side):
        return [(os.path.relpath(p, root).replace(os.sep, "/"), s) for s in split
                for p in sorted(glob.glob(str(root / side / glob.escape(s) / "*.jpg")))[:max_pick]]

    def pairs(split):
        rows = [(u, m, 1 if su == sm else 0, su, sm)
                for u, su in images(split, U) for m, sm in images(split, M)]
        df = pd.DataFrame(rows, columns=COLUMNS)
        return df[df.label == 1], df[df.label == 0]

    gen, imp = pairs(subjects[:n_tv])
    g_tr, g_va = train_test_split(gen, test_size=0.2, random_state=seed)
    i_tr, i_va = train_test_split(imp, test_size=0.2, random_state=seed)
    train = shuffle(pd.concat([g_tr, i_tr[: len(g_tr)]]), random_state=seed)
    val = shuffle(pd.concat([g_va, i_va[: len(g_va)]]), random_state=seed)
    gen, imp = pairs(subjects[n_tv:])
    test = pd.concat([gen, imp[: len(gen)]])
    return [d.reset_index(drop=True) for d in (train, val, test)]


def _tree(tmp_path, counts, **kw):
    return make_rmfrd_tree(tmp_path / "data", counts, image_size=16, distinct=1, **kw)


def test_index_split_equals_dataframe_split():
    df = pd.DataFrame({"x": np.arange(1000) * 3, "y": [f"r{i}" for i in range(1000)]})
    tr, te = train_test_split(df, test_size=0.2, random_state=2021)
    itr, ite = train_test_split(np.arange(1000), test_size=0.2, random_state=2021)
    assert (tr.index.to_numpy() == itr).all() and (te.index.to_numpy() == ite).all()
    assert (shuffle(df, random_state=2021).index.to_numpy()
            == shuffle(np.arange(1000), random_state=2021)).all()


def test_hand_computed_small_tree(tmp_path):
    # 6 subjects: int(0.8*6) = 4 for train+val (a, b, c, d), test e, f
    counts = {"a": (2, 1), "b": (1, 2), "c": (3, 0), "d": (1, 1), "e": (2, 1), "f": (1, 2)}
    p = partition(_tree(tmp_path, counts))
    # train/val: 7 unmasked x 4 masked = 28 pairs, genuine 2+2+0+1 = 5, impostor 23;
    # genuine split 4/1 (ceil(0.2*5) = 1), impostors 18/5 cut to 4 and 1
    assert p.stats["train_val"] == {"subjects": 4, "unmasked_images": 7, "masked_images": 4}
    assert p.stats["train"] == {"pairs": 8, "genuine": 4, "impostor": 4}
    assert p.stats["val"] == {"pairs": 2, "genuine": 1, "impostor": 1}
    assert p.stats["test"] == {"subjects": 2, "unmasked_images": 3, "masked_images": 3}
    # test: unmasked e0 e1 f0, masked e0 f0 f1; genuine in enumeration order, then the first
    # four impostors (all from e's unmasked images)
    t = p.test
    got = list(zip(t.unmasked_path.str[len(U) + 1:], t.masked_path.str[len(M) + 1:],
                   t.label, strict=True))
    assert got == [
        ("e/0000.jpg", "e/0000.jpg", 1), ("e/0001.jpg", "e/0000.jpg", 1),
        ("f/0000.jpg", "f/0000.jpg", 1), ("f/0000.jpg", "f/0001.jpg", 1),
        ("e/0000.jpg", "f/0000.jpg", 0), ("e/0000.jpg", "f/0001.jpg", 0),
        ("e/0001.jpg", "f/0000.jpg", 0), ("e/0001.jpg", "f/0001.jpg", 0),
    ]
    assert list(t.columns) == COLUMNS and t.label.dtype == np.int64
    assert [(e["subject"], e["side"]) for e in p.excluded["subjects"]] == [("c", "masked")]


def test_matches_thesis_reference_implementation(tmp_path):
    rng = np.random.default_rng(7)
    counts = {f"s{i:02d} ü": (int(rng.integers(0, 25)), int(rng.integers(0, 23)))
              for i in range(23)}
    root = _tree(tmp_path, counts)
    p = partition(root)
    ref = thesis_reference(root)
    for got, want in zip((p.train, p.val, p.test), ref, strict=True):
        assert len(got) > 0
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)
    # other seeds and caps too
    p = partition(root, seed=5, max_per_subject=7)
    for got, want in zip((p.train, p.val, p.test), thesis_reference(root, 7, 5), strict=True):
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)


def test_balanced_differs_and_is_seeded(tmp_path):
    rng = np.random.default_rng(3)
    counts = {f"s{i:02d}": (int(rng.integers(3, 8)), int(rng.integers(1, 4))) for i in range(30)}
    root = _tree(tmp_path, counts)
    (root / M / "s29" / "extra.PNG").write_bytes((root / M / "s29" / "0000.jpg").read_bytes())
    th = partition(root)
    b1, b2 = partition(root, protocol="balanced"), partition(root, protocol="balanced")
    b3 = partition(root, protocol="balanced", seed=1)
    pd.testing.assert_frame_equal(b1.test, b2.test)
    assert not b1.test.equals(b3.test) and not b1.test.equals(th.test)
    assert b1.stats["test"]["masked_images"] == th.stats["test"]["masked_images"] + 1
    imp = {k: p.test[p.test.label == 0] for k, p in (("thesis", th), ("balanced", b1))}
    assert len(imp["balanced"]) == b1.stats["test_pairs"]["genuine"]
    assert len(imp["thesis"]) == th.stats["test_pairs"]["genuine"]
    assert imp["thesis"].unmasked_path.nunique() < imp["balanced"].unmasked_path.nunique()
    with pytest.raises(ValueError, match="protocol"):
        partition(root, protocol="nope")


@pytest.fixture(scope="module")
def table_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("rmfrd")
    make_rmfrd_tree(base, table_4_2_counts("capped"), image_size=8, distinct=1)
    return base


def _digests(out: Path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_table_4_2_exactly_via_cli_and_byte_identical(table_tree, tmp_path, capsys):
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    assert main(["partition", "--data-root", str(table_tree), "--out", str(out1)]) == 0
    printed = capsys.readouterr().out
    assert "Matches the thesis's Table 4.2: yes" in printed
    stats = __import__("json").loads((out1 / "stats.json").read_text())
    assert {k: stats[k] for k in TABLE_KEYS} == THESIS_TABLE_4_2
    assert len(stats["excluded"]["subjects"]) == 1  # the test subject with no masked jpg
    assert sorted(p.name for p in out1.iterdir()) == [
        "run.json", "stats.json", "table_4_2.md", "test.csv", "train.csv", "val.csv"]
    train = read_pairs(out1 / "train.csv")
    assert list(train.columns) == COLUMNS and len(train) == 42904
    assert train.label.sum() == 21452
    test = read_pairs(out1 / "test.csv")
    imp = test[test.label == 0]
    assert imp.unmasked_path.nunique() <= 9095 // 455 + 2  # only the first unmasked images
    assert main(["partition", "--data-root", str(table_tree), "--out", str(out2)]) == 0
    assert _digests(out1) == _digests(out2)
    t = table_4_2(stats)
    assert (t.xs("thesis", axis=1, level=1).fillna(-1) == t.xs("run", axis=1, level=1)
            .fillna(-1)).all().all()


def test_cli_bad_input_one_line(tmp_path, capsys):
    rc = main(["partition", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert str(tmp_path / "missing") in err and "AFDB_masked_face_dataset" in err


def test_cli_options_and_profile(tmp_path):
    rng = np.random.default_rng(1)
    root = _tree(tmp_path, {f"s{i}": (int(rng.integers(2, 6)), 2) for i in range(10)})
    out = tmp_path / "out"
    assert main(["partition", "--data-root", str(root), "--out", str(out), "--config", "balanced",
                 "--max-per-subject", "3", "--seed", "4"]) == 0
    run = __import__("json").loads((out / "run.json").read_text())
    assert run["config"]["protocol"] == "balanced" and run["partition"]["max_per_subject"] == 3
    assert run["config"]["seed"] == 4
    assert "Table 4.2" in (out / "table_4_2.md").read_text()


def test_atomic_writes_leave_no_partial_csv(tmp_path, monkeypatch):
    root = _tree(tmp_path, {f"s{i}": (3, 2) for i in range(6)})
    p = partition(root)
    real = pd.DataFrame.to_csv

    def boom(self, f, *a, **k):
        real(self.head(2), f, *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        write_partition(p, out)
    assert list(out.iterdir()) == []  # no CSV, no temp file
    monkeypatch.setattr(pd.DataFrame, "to_csv", real)
    assert outputs.write_csv is not None
    write_partition(p, out)
    assert len(read_pairs(out / "train.csv")) == len(p.train)


def test_excluded_files_and_corrupt_replacement(tmp_path):
    root = _tree(tmp_path, {f"s{i}": (3, 2) for i in range(5)})
    (root / U / "s0" / "0001.jpg").write_bytes(b"corrupt")
    (root / U / "s0" / "readme.txt").write_text("hi")
    p = partition(root, max_per_subject=2, protocol="balanced")
    files = {e["path"]: e for e in p.excluded["files"]}
    assert "skipped" in files[f"{U}/s0/0001.jpg"]["action"]
    used = set(p.train.unmasked_path) | set(p.val.unmasked_path)
    assert f"{U}/s0/0001.jpg" not in used and f"{U}/s0/0002.jpg" in used
    assert p.stats["train_val"]["unmasked_images"] == 8
    assert p.excluded["beyond_cap"]["unmasked_files"] == 4
    # the thesis selected by file name (glob): the corrupt file keeps its place, and is listed
    t = partition(root, max_per_subject=2)
    files = {e["path"]: e for e in t.excluded["files"]}
    assert files[f"{U}/s0/readme.txt"]["reason"] == "does not match *.jpg"
    assert "kept" in files[f"{U}/s0/0001.jpg"]["action"]
    used = set(t.train.unmasked_path) | set(t.val.unmasked_path)
    assert f"{U}/s0/0001.jpg" in used and f"{U}/s0/0002.jpg" not in used
    assert t.stats["train_val"]["unmasked_images"] == 8
    assert t.excluded["beyond_cap"]["unmasked_files"] == 5


def test_thesis_counts_hold_with_placeholder_files(tmp_path):
    """Files selected by name: a tree of empty placeholder files still gives the pair counts."""
    root = _tree(tmp_path, {f"s{i}": (3, 2) for i in range(5)})
    for f in root.rglob("*.jpg"):
        f.write_bytes(b"")
    real = partition(_tree(tmp_path / "real", {f"s{i}": (3, 2) for i in range(5)}))
    empty = partition(root)
    assert empty.stats["train"] == real.stats["train"] and empty.stats["test_pairs"] == real.stats["test_pairs"]
    assert len(empty.excluded["files"]) == 25


def test_read_pairs_keeps_strings(tmp_path):
    # each image in its subject's folder, as every layout keeps them (read_pairs checks it)
    df = pd.DataFrame([("NA/NA.jpg", "0001/0001.jpg", 0, "NA", "0001")], columns=COLUMNS)
    outputs.write_csv(tmp_path / "p.csv", df)
    got = read_pairs(tmp_path / "p.csv")
    assert got.iloc[0].tolist() == ["NA/NA.jpg", "0001/0001.jpg", 0, "NA", "0001"]
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_pairs(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv"):
        read_pairs(tmp_path / "bad.csv")


@pytest.mark.parametrize("layout", ["mfr2", "rmfrd_layout"])
@pytest.mark.parametrize("protocol", ["thesis", "balanced"])
def test_mfr2_real_partitions(mfr2_dev, tmp_path, layout, protocol):
    out = tmp_path / "out"
    assert main(["partition", "--data-root", str(mfr2_dev / layout), "--out", str(out),
                 "--protocol", protocol]) == 0
    stats = __import__("json").loads((out / "stats.json").read_text())
    assert stats["train_val"]["subjects"] == 21 and stats["test"]["subjects"] == 6
    assert stats["test_pairs"]["genuine"] > 0 and stats["excluded"]["files"] == []
    test = read_pairs(out / "test.csv")
    root = mfr2_dev / layout
    assert all((root / p).is_file() for p in pd.concat([test.unmasked_path, test.masked_path]))
    # an MFR2 tree's own pairs.txt protocol is written beside the thesis's splits
    theirs = out / "mfr2_pairs.csv"
    assert theirs.is_file() == (layout == "mfr2")
    if layout == "mfr2":
        df = read_pairs(theirs)
        pd.testing.assert_frame_equal(df, mfr2_pairs(root), check_like=False)
        assert stats["mfr2_pairs"]["pairs"] == len(df) > 0


def test_mfr2_pairs(mfr2_dev):
    root = mfr2_dev / "mfr2"
    df = mfr2_pairs(root)
    kinds = df.attrs["kinds"]
    assert sum(kinds.values()) == 325 and df.attrs["dropped"] == 325 - len(df)
    assert len(df) == kinds["masked-unmasked"] > 0
    labels = {f"{n}/{n}_{int(i):04d}.png": t for n, i, t in
              (line.split(", ") for line in (root / "mfr2_labels.txt").read_text().splitlines())}
    assert all(labels[p] == "no-mask" for p in df.unmasked_path)
    assert all(labels[p] != "no-mask" for p in df.masked_path)
    assert (df.label == (df.unmasked_subject == df.masked_subject)).all()
    keep = mfr2_pairs(root, mixed="keep")
    assert len(keep) == 325 and keep.attrs["dropped"] == 0


def test_warns_when_a_split_has_one_class(tmp_path):
    # 5 subjects: int(0.8*5) = 4 for train+val, one test subject: no test impostor can exist
    counts = {"a": (1, 1), "b": (1, 1), "c": (1, 1), "d": (1, 1), "e": (2, 1)}
    with pytest.warns(UserWarning, match="test split has 2 genuine and 0 impostor pairs"):
        p = partition(_tree(tmp_path, counts))
    assert p.stats["warnings"] == [
        "test split has 2 genuine and 0 impostor pairs: metrics that compare the two (ROC, EER, "
        "thresholds) are undefined on it"]
