"""The partition at scale (mfr.data.partition): protocols identity and all_pairs, repeated subject
splits, a dataset's own splits, a dataset's own pair sets by name."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_data_fetch import _mfr2_tree  # the same tiny MFR2 tree

from mfr.cli import main
from mfr.core.errors import InputError
from mfr.data.datasets import EVERY_PAIR, MASKED_DIR, UNMASKED_DIR, DatasetSpec, load_rmfrd
from mfr.data.datasets.synthetic import make_m2fred_tree, make_mlfw_tree, make_rmfrd_tree
from mfr.data.identity_pairs import identity_pairs
from mfr.data.pairs import COLUMNS, own_pair_sets, parse_splits, read_pairs
from mfr.data.partition import partition, partition_fingerprint, write_partition
from mfr.data.subject_splits import train_val_test, val_subjects

U, M = UNMASKED_DIR, MASKED_DIR
#: train A (photos 1, 1', 2), B (1, 2), C (1); val D (1, 2, 3), E (1)
MLFW = {"train": {"Ann_A": [(1, 0), (1, 1), (2, 0)], "Bob_B": [(1, 0), (2, 0)],
                  "Cy_C": [(1, 0)]},
        "val": {"Dee_D": [(1, 0), (2, 0), (3, 0)], "Eve_E": [(1, 0)]}}


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.csv"))}


def _short(path: str) -> str:
    return path.rsplit("/", 1)[1].rsplit(".", 1)[0]


def _pairs(df: pd.DataFrame, label: int) -> set[frozenset]:
    d = df[df.label == label]
    return {frozenset((_short(a), _short(b))) for a, b in zip(d.unmasked_path, d.masked_path,
                                                               strict=True)}


# ------------------------------------------------------------------------ protocol identity


def test_identity_on_mlfw_by_hand(tmp_path):
    root = make_mlfw_tree(tmp_path / "mlfw", MLFW)
    with pytest.warns(UserWarning, match="test split has 0 genuine and 0 impostor pairs"):
        p = partition(root, protocol="identity")
    # own splits: train A, B, C; val D, E; no test folder
    assert p.stats["split_subjects"] == {"train": ["Ann_A", "Bob_B", "Cy_C"],
                                         "val": ["Dee_D", "Eve_E"], "test": []}
    # train genuine: A's 3 pairs less the two versions of photo 1; B's one; C none
    assert _pairs(p.train, 1) == {frozenset(("Ann_A_0001_0000", "Ann_A_0002_0000")),
                                  frozenset(("Ann_A_0001_0001", "Ann_A_0002_0000")),
                                  frozenset(("Bob_B_0001_0000", "Bob_B_0002_0000"))}
    assert p.stats["train"] == {"pairs": 6, "genuine": 3, "impostor": 3, "subjects": 3,
                                "images": 6, "same_photo_left_out": 1}
    imp = p.train[p.train.label == 0]
    assert (imp.unmasked_subject != imp.masked_subject).all()
    # val: D's three pairs; the only impostors there are, D x E (3 = as many as genuine)
    assert _pairs(p.val, 0) == {frozenset((f"Dee_D_000{i}_0000", "Eve_E_0001_0000"))
                                for i in (1, 2, 3)}
    assert p.stats["val"]["genuine"] == 3 and len(p.test) == 0
    # first / second image in path order (no flag says which is unmasked)
    assert (p.train.unmasked_path < p.train.masked_path).all()
    assert list(p.train.columns) == COLUMNS and p.train.label.dtype == np.int64
    assert p.stats["train_val"]["unknown_mask_images"] == 10
    assert p.params["subject_split"] == "own" and p.params["pairs_per_subject"] is None
    assert p.params["mask_sides"] is False
    assert p.train_val_unmasked == {}


def test_identity_pairs_cap_covers_every_image():
    from mfr.data.datasets import FaceImage

    chosen = {s: [FaceImage(f"{s}/{i}.jpg", s, None) for i in range(n)]
              for s, n in (("a", 5), ("b", 2), ("c", 7))}
    full = identity_pairs(chosen, ["a", "b", "c"], seed=3)
    assert int(full.label.sum()) == 10 + 1 + 21 and (full.label == 0).sum() == 32
    capped = identity_pairs(chosen, ["a", "b", "c"], seed=3, pairs_per_subject=3)
    gen = capped[capped.label == 1]
    assert gen.groupby("unmasked_subject").size().to_dict() == {"a": 3, "b": 1, "c": 3}
    # 5 images in 3 pairs: the covering pairs, every image in one
    a = gen[gen.unmasked_subject == "a"]
    assert set(a.unmasked_path) | set(a.masked_path) == {f"a/{i}.jpg" for i in range(5)}
    assert len(capped) == 14 and capped.attrs["genuine_before_cap"] == 32
    # each pair once, either order; impostor anchors go round every image
    keys = [frozenset(r) for r in zip(capped.unmasked_path, capped.masked_path, strict=True)]
    assert len(set(keys)) == len(keys)
    full_imp = full[full.label == 0]
    assert set(full_imp.unmasked_path) | set(full_imp.masked_path) == {
        im.path for v in chosen.values() for im in v}
    # an identity's pairs do not depend on the others
    alone = identity_pairs(chosen, ["a"], seed=3, pairs_per_subject=3)
    pd.testing.assert_frame_equal(alone, capped[capped.unmasked_subject == "a"].iloc[:3]
                                  .reset_index(drop=True), check_like=False)
    # too few distinct impostor pairs: as many as there are
    tiny = identity_pairs({"a": chosen["a"], "b": chosen["b"][:1]}, ["a", "b"], seed=0)
    assert (tiny.label == 1).sum() == 10 and (tiny.label == 0).sum() == 5


def test_identity_without_own_splits_splits_subjects_seeded(tmp_path):
    people = {f"P_{k:02d}": [(1, 0), (2, 0)] for k in range(10)}
    root = make_mlfw_tree(tmp_path / "one", {None: people})
    p = partition(root, protocol="identity", verify=False)
    tv, te = train_val_test(sorted(people), 0.8)
    tr, va = val_subjects(tv, 0.2, 2021)
    assert p.stats["split_subjects"] == {"train": tr, "val": va, "test": te}
    assert (len(tr), len(va), len(te)) == (6, 2, 2)
    for df, subjects in ((p.train, tr), (p.val, va), (p.test, te)):  # subject-disjoint
        assert set(df.unmasked_subject) | set(df.masked_subject) <= set(subjects)
        assert int(df.label.sum()) == len(subjects) == (df.label == 0).sum()
    assert "subject_split" not in p.params


def test_identity_on_a_tree_with_flags_pairs_any_mask(tmp_path):
    root = make_m2fred_tree(tmp_path / "m2", {f"{k:03d}": (2, 2) for k in range(10)})
    p = partition(root, protocol="identity", verify=False)
    g = p.train[p.train.label == 1]
    masks = {(a.split("-")[1], b.split("-")[1]) for a, b in zip(g.unmasked_path, g.masked_path,
                                                                 strict=True)}
    assert masks == {("0", "0"), ("0", "1"), ("1", "1")}  # unmasked first where they differ
    assert p.stats["train"]["genuine"] == 6 * 6


def test_identity_is_byte_identical_and_fingerprinted(tmp_path, capsys):
    root = make_mlfw_tree(tmp_path / "mlfw", {
        "train": {f"T_{k}": [(i, 0) for i in range(1, 2 + k % 4)] for k in range(12)},
        "val": {f"V_{k}": [(1, 0), (2, 0), (2, 1)] for k in range(4)},
        "test": {f"X_{k}": [(1, 0), (3, 0)] for k in range(3)}})
    outs = []
    for k in (1, 2):
        out = tmp_path / f"o{k}"
        assert main(["partition", "--data-root", str(root), "--out", str(out), "--protocol",
                     "identity", "--pairs-per-subject", "2"]) == 0
        outs.append(out)
    assert _digests(outs[0]) == _digests(outs[1])
    assert set(_digests(outs[0])) == {"train.csv", "val.csv", "test.csv"}
    capsys.readouterr()
    assert main(["partition", "--data-root", str(root), "--out", str(outs[0]), "--protocol",
                 "identity", "--pairs-per-subject", "2"]) == 0
    assert "is up to date" in capsys.readouterr().out  # the step's fingerprint is the written one
    run = json.loads((outs[0] / "run.json").read_text())
    assert run["fingerprint"]["settings"]["pairs_per_subject"] == 2
    assert run["partition"]["subject_split"] == "own"
    stats = json.loads((outs[0] / "stats.json").read_text())
    assert stats["test_pairs"]["genuine"] == 3 and stats["train"]["genuine_before_cap"] == 30
    table = (outs[0] / "table_4_2.md").read_text()
    assert "no mask flag" in table and "12 train, 4 validation, 3 test" in table
    # another seed: other impostors
    other = partition(root, protocol="identity", seed=5, pairs_per_subject=2)
    first = read_pairs(outs[0] / "train.csv")
    assert _pairs(other.train, 0) != _pairs(first, 0)


def test_mask_flag_protocols_refuse_mlfw_and_own_splits_refuse_repeats(tmp_path, capsys):
    root = make_mlfw_tree(tmp_path / "mlfw", MLFW)
    for protocol in ("thesis", "balanced", "all_pairs"):
        with pytest.raises(InputError, match="carry no mask flag"):
            partition(root, protocol=protocol)
    with pytest.raises(InputError, match="own subject splits"):
        partition(root, protocol="identity", split_seed=1)
    assert main(["partition", "--data-root", str(root), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "protocol identity" in err
    with pytest.raises(InputError, match="pairs_per_subject"):
        partition(make_m2fred_tree(tmp_path / "m2", {"000": (1, 1)}), pairs_per_subject=2)
    assert main(["partition", "--data-root", str(root), "--out", str(tmp_path / "o2"),
                 "--protocol", "identity", "--synthetic-masks", "add"]) == 2
    assert "not protocol identity" in capsys.readouterr().err


# ------------------------------------------------------------------------ protocol all_pairs


def _rmfrd(tmp_path, counts):
    return make_rmfrd_tree(tmp_path / "data", counts, image_size=16, distinct=1)


def test_all_pairs_by_hand(tmp_path):
    counts = {"a": (2, 1), "b": (1, 2), "c": (3, 0), "d": (1, 1), "e": (2, 1), "f": (1, 2)}
    root = _rmfrd(tmp_path, counts)
    p, b = partition(root, protocol="all_pairs"), partition(root, protocol="balanced")
    # train / validation: the balanced protocol's, row for row
    pd.testing.assert_frame_equal(p.train, b.train)
    pd.testing.assert_frame_equal(p.val, b.val)
    # test: unmasked e0 e1 f0 x masked e0 f0 f1, all 9 in enumeration order (4 genuine)
    got = [(u[len(U) + 1:], m[len(M) + 1:], y) for u, m, y in
           zip(p.test.unmasked_path, p.test.masked_path, p.test.label, strict=True)]
    assert got == [(f"{su}/000{iu}.jpg", f"{sm}/000{im}.jpg", int(su == sm))
                   for su, iu in (("e", 0), ("e", 1), ("f", 0))
                   for sm, im in (("e", 0), ("f", 0), ("f", 1))]
    assert p.stats["test_pairs"] == {"pairs": 9, "genuine": 4, "impostor": 5}
    assert p.stats["split_subjects"] == {"train_val": ["a", "b", "c", "d"], "test": ["e", "f"]}


# ------------------------------------------------------------------------ repeated splits


def test_folds_and_split_seeds(tmp_path):
    subjects = [f"s{i}" for i in range(10)]
    assert train_val_test(subjects, 0.8) == (subjects[:8], subjects[8:])
    assert train_val_test(subjects, 0.8, folds=5, fold=0) == (subjects[2:], subjects[:2])
    for seed in (None, 7):
        tests = [train_val_test(subjects, 0.8, seed, folds=5, fold=f)[1] for f in range(5)]
        assert sorted(itertools.chain(*tests)) == subjects and all(len(t) == 2 for t in tests)
    a, b = train_val_test(subjects, 0.8, split_seed=7), train_val_test(subjects, 0.8, 7)
    assert a == b and a != train_val_test(subjects, 0.8, split_seed=8)
    assert a[0] == sorted(a[0])  # each split keeps the dataset's order
    for bad in ({"folds": 1}, {"folds": 3, "fold": 3}, {"fold": 1}, {"split_seed": -1},
                {"folds": 11}):
        with pytest.raises(InputError):
            train_val_test(subjects, 0.8, **bad)


def test_repeated_splits_in_the_partition(tmp_path):
    rng = np.random.default_rng(2)
    root = _rmfrd(tmp_path, {f"s{i}": (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
                             for i in range(10)})
    base = partition(root)
    folds = [partition(root, protocol="balanced", folds=5, fold=f, split_seed=3)
             for f in range(5)]
    tested = [s for p in folds for s in p.stats["split_subjects"]["test"]]
    assert sorted(tested) == load_rmfrd(root).subjects
    for p in folds:
        assert set(p.test.unmasked_subject) <= set(p.stats["split_subjects"]["test"])
        assert not set(p.train.unmasked_subject) & set(p.stats["split_subjects"]["test"])
        assert p.params["folds"] == 5 and p.params["split_seed"] == 3
    s1 = partition(root, split_seed=1)
    assert s1.stats["split_subjects"]["test"] != sorted(set(base.test.unmasked_subject))
    # fingerprints: the thesis's split keeps the settings of before; each option is in it
    fp = partition_fingerprint(root, base.params)["settings"]
    assert set(fp) == {"protocol", "max_per_subject", "seed", "train_val_fraction",
                       "val_size", "verify"}
    assert "split_subjects" not in base.stats
    assert partition_fingerprint(root, s1.params)["settings"]["split_seed"] == 1
    fps = {json.dumps(partition_fingerprint(root, p.params), sort_keys=True) for p in folds}
    assert len(fps) == 5
    out = tmp_path / "cli"
    assert main(["partition", "--data-root", str(root), "--out", str(out), "--folds", "5",
                 "--fold", "2", "--split-seed", "3"]) == 0
    pd.testing.assert_frame_equal(read_pairs(out / "test.csv"), partition(
        root, folds=5, fold=2, split_seed=3).test)
    # the same again: up to date (the step's fingerprint is the written one)
    assert main(["partition", "--data-root", str(root), "--out", str(out), "--folds", "5",
                 "--fold", "2", "--split-seed", "3"]) == 0


# ------------------------------------------------------------------------ own pair sets


@pytest.mark.filterwarnings("ignore:.* split has:UserWarning")  # a tree of two people
def test_own_pair_sets_by_name(tmp_path, monkeypatch):
    from mfr.data import datasets
    from mfr.evaluation.thresholds import pair_set_order

    root = _mfr2_tree(tmp_path / "mfr2")
    out = tmp_path / "p"
    assert main(["partition", "--data-root", str(root), "--out", str(out)]) == 0
    assert (out / "mfr2_pairs.csv").is_file()  # the file name of before
    assert own_pair_sets(out) == ["mfr2_pairs"]
    assert parse_splits("test,mfr2_pairs", own_pair_sets(out)) == ["test", "mfr2_pairs"]
    with pytest.raises(InputError, match="split"):
        parse_splits("mfr2_pairs")
    # a partition written before run.json named them: its CSV outputs tell
    run = json.loads((out / "run.json").read_text())
    del run["own_pair_sets"]
    (out / "run.json").write_text(json.dumps(run))
    assert own_pair_sets(out) == ["mfr2_pairs"]
    assert own_pair_sets(tmp_path / "nothing") == []
    # any dataset's own pair sets, by the names in its entry
    monkeypatch.setattr(datasets, "DATASETS", dict(datasets.DATASETS))
    mfr2 = datasets.get_dataset("mfr2")
    datasets.register_dataset(DatasetSpec(
        name="toy", label="toy", layout="mfr2", load=mfr2.load,
        pair_sets={"toy_pairs": mfr2.pair_sets["mfr2_pairs"]}, partition_pair_sets=("toy_pairs",),
        evaluation_pair_sets=("toy_pairs", EVERY_PAIR)))
    monkeypatch.setitem(datasets.DATASETS, "mfr2", DatasetSpec(
        name="mfr2", label="x", layout="mfr2", load=mfr2.load, detect=mfr2.detect,
        pair_sets=mfr2.pair_sets, partition_pair_sets=("mfr2_pairs", "mfr2_pairs_all"),
        evaluation_pair_sets=mfr2.evaluation_pair_sets))
    p = partition(root)
    assert list(p.frames) == ["train", "val", "test", "mfr2_pairs", "mfr2_pairs_all"]
    assert p.stats["mfr2_pairs_all"]["pairs"] == p.stats["mfr2_pairs"]["pairs"] == 2
    out2 = tmp_path / "p2"
    write_partition(p, out2)
    assert own_pair_sets(out2) == ["mfr2_pairs", "mfr2_pairs_all"]
    assert pair_set_order() == ("mfr2_pairs", "toy_pairs", EVERY_PAIR)


# ------------------------------------------------------------------------ image batches


@pytest.mark.filterwarnings("ignore:test split has 0:UserWarning")  # no test/ folder
def test_identity_pairs_give_every_image_to_the_image_batch_losses(tmp_path):
    from mfr.data.pairs import PathIndex, pair_indices
    from mfr.training.image_batches import labelled_images, pk_epoch

    root = make_mlfw_tree(tmp_path / "mlfw", MLFW)
    p = partition(root, protocol="identity")

    class Index(PathIndex):
        def __init__(self, paths):
            self.paths = paths

    train_images = sorted(str(x.relative_to(root)) for x in (root / "train").rglob("*.jpg"))
    rows, ids, names = labelled_images(pair_indices(p.train, Index(train_images)), "train")
    assert [train_images[r] for r in rows] == train_images  # every train image, once
    assert names == ["Ann_A", "Bob_B", "Cy_C"]
    assert [names[i] for i in ids] == [path.split("/")[1] for path in train_images]
    assert len(pk_epoch(ids, 4, seed=0, epoch=0)) % 4 == 0


# ------------------------------------------------------------------------ the shared sets


@pytest.mark.filterwarnings("ignore:test split has 0:UserWarning")  # no test/ folder
def test_identity_on_mlfw_dev(mlfw_dev):
    """Counts checked against the file names: the genuine pairs of different photos."""
    import re

    p = partition(mlfw_dev, protocol="identity", verify=False)
    for split, key in (("train", "train"), ("val", "val")):
        want = 0
        for person in (mlfw_dev / split).iterdir():
            files = sorted(f.name for f in person.iterdir())[:20]  # max_per_subject
            photos = [re.match(r".+_(\d+)_\d+\.jpg$", f)[1] for f in files]
            want += sum(a != b for a, b in itertools.combinations(photos, 2))
        st = p.stats[key]
        assert st["genuine"] == st["impostor"] == want > 0
    assert p.stats["train"]["subjects"] == 2387 and p.stats["val"]["subjects"] == 299


def test_all_pairs_on_m2fred_dev(m2fred_dev):
    p = partition(m2fred_dev, protocol="all_pairs", verify=False)
    te = p.stats["test"]
    assert te["subjects"] == 22 - int(0.8 * 22)
    assert p.stats["test_pairs"]["pairs"] == te["unmasked_images"] * te["masked_images"]
