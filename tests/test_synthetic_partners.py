"""Training with synthetic masks (mfr.data.synthetic_partners): the partition's train pairs
gain (add) or swap in (replace) synthetic masked partners of the train+validation subjects;
validation and test pairs, and the `none` partition, are those of before."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError
from mfr.core.outputs import write_csv
from mfr.data.datasets.synthetic import make_demo_tree
from mfr.data.partition import _Split, partition
from mfr.data.synthetic_partners import (
    SYNTHETIC_DIR,
    parse_kinds,
    same_source_positions,
    sample_impostors,
)
from mfr.study.steps import partition_step, resolve_data_root

N_SUBJECTS = 6  # 4 train+validation subjects, 2 test subjects


def _config(tree: Path, mode: str) -> StudyConfig:
    return StudyConfig(data_root=str(tree), synthetic_masks=mode, synthetic_kinds="surgical,n95")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """The demo tree and its partition in each mode (folders), made once."""
    base = tmp_path_factory.mktemp("synth")
    tree = make_demo_tree(base / "tree", n_subjects=N_SUBJECTS, image_size=64, seed=3)
    out = {mode: base / mode for mode in ("none", "add", "replace")}
    made = {mode: partition_step(_config(tree, mode), folder) for mode, folder in out.items()}
    return tree, out, made


def _csv(folder: Path, split: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{split}.csv", dtype=str, keep_default_na=False)


def test_none_is_the_partition_of_before(parts, tmp_path):
    tree, out, _ = parts
    plain = partition(tree, protocol="thesis", max_per_subject=20, seed=2021)
    for split in ("train", "val", "test"):
        write_csv(tmp_path / f"{split}.csv", plain.frames[split])
        assert (out["none"] / f"{split}.csv").read_bytes() == \
            (tmp_path / f"{split}.csv").read_bytes()
    run = json.loads((out["none"] / "run.json").read_text())
    assert "synthetic_masks" not in run["fingerprint"]["settings"]  # old folders stay complete
    assert "dataset_root" not in run and not (out["none"] / "data").exists()
    assert "synthetic" not in json.loads((out["none"] / "stats.json").read_text())


def test_only_train_changes(parts):
    _, out, _ = parts
    for mode in ("add", "replace"):
        for split in ("val", "test"):
            assert (out[mode] / f"{split}.csv").read_bytes() == \
                (out["none"] / f"{split}.csv").read_bytes()
            assert not _csv(out[mode], split)["masked_path"].str.startswith(SYNTHETIC_DIR).any()
        assert (out[mode] / "train.csv").read_bytes() != (out["none"] / "train.csv").read_bytes()
    real = _csv(out["none"], "train")
    add, rep = _csv(out["add"], "train"), _csv(out["replace"], "train")
    key = ["unmasked_path", "masked_path"]
    syn_add = add[add["masked_path"].str.startswith(f"{SYNTHETIC_DIR}/")]
    # add: every real train pair, plus synthetic ones; replace: the same synthetic ones alone
    assert set(map(tuple, add[~add.index.isin(syn_add.index)][key].to_numpy())) == \
        set(map(tuple, real[key].to_numpy()))
    assert len(add) == len(real) + len(syn_add)
    assert rep["masked_path"].str.startswith(f"{SYNTHETIC_DIR}/").all()
    assert set(map(tuple, rep[key].to_numpy())) == set(map(tuple, syn_add[key].to_numpy()))
    for df in (add, rep):
        assert not df["unmasked_path"].str.startswith(SYNTHETIC_DIR).any()
        same = df["unmasked_subject"] == df["masked_subject"]
        assert (df["label"] == same.map({True: "1", False: "0"})).all()


def test_synthetic_pairs_counted_and_balanced(parts):
    _, out, _ = parts
    for mode in ("add", "replace"):
        stats = json.loads((out[mode] / "stats.json").read_text())
        syn = stats["synthetic"]
        df = _csv(out[mode], "train")
        mine = df[df["masked_path"].str.startswith(f"{SYNTHETIC_DIR}/")]
        assert syn["mode"] == mode and syn["kinds"] == ["surgical", "n95"]
        assert syn["pairs"] == len(mine) > 0
        assert syn["genuine"] == (mine["label"] == "1").sum() == syn["impostor"]
        assert syn["real_pairs"] == len(df) - len(mine)
        assert stats["train"]["pairs"] == len(df)
        assert syn["same_source_excluded"] == syn["masked_images"] > 0
        table = (out[mode] / "table_4_2.md").read_text()
        assert f"Train pairs include {syn['pairs']} with a synthetic masked image" in table
        run = json.loads((out[mode] / "run.json").read_text())
        assert run["fingerprint"]["settings"]["synthetic_masks"] == mode
        assert run["fingerprint"]["settings"]["synthetic_kinds"] == "surgical,n95"
        assert run["data_root"] == str((out[mode] / "data").resolve())
        assert run["config"]["synthetic_masks"] == mode


def test_no_test_subject_masked_and_no_same_source_pair(parts):
    tree, out, made = parts
    test_subjects = set(_csv(out["none"], "test")["masked_subject"]) | set(
        _csv(out["none"], "test")["unmasked_subject"])
    tv_subjects = set(made["add"].train_val_unmasked)
    assert test_subjects and not test_subjects & tv_subjects
    with open(out["add"] / "synthetic_masks" / "masks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    masked_subjects = {r["source"].split("/")[0] for r in rows}
    assert masked_subjects == tv_subjects
    written = {p.parent.name for p in (out["add"] / "data" / SYNTHETIC_DIR).rglob("*.jpg")}
    assert written == tv_subjects
    for mode in ("add", "replace"):
        pairs = set(map(tuple, _csv(out[mode], "train")[["unmasked_path", "masked_path"]]
                        .to_numpy()))
        for r in rows:
            src = f"AFDB_face_dataset/{r['source']}"
            synth = f"{SYNTHETIC_DIR}/{r['output'].split('/', 1)[1]}"
            assert (src, synth) not in pairs
            # the same synthetic image does pair with the subject's other photos
            assert any(m == synth and u != src for u, m in pairs)


def test_every_pair_path_reads_from_the_recorded_data_root(parts):
    tree, out, _ = parts
    for mode in ("add", "replace"):
        root = Path(json.loads((out[mode] / "run.json").read_text())["data_root"])
        for split in ("train", "val", "test"):
            df = _csv(out[mode], split)
            for p in set(df["unmasked_path"]) | set(df["masked_path"]):
                assert (root / p).is_file(), p
        # --data-root DATASET (as a study passes it) finds the folder of links
        cfg = _config(tree, mode)
        assert resolve_data_root(tree, out[mode], cfg) == root
        assert resolve_data_root(None, out[mode], cfg) == root
    assert resolve_data_root(tree, out["none"], _config(tree, "none")) == tree


def test_rerun_is_byte_identical_and_reused(parts, tmp_path):
    tree, out, _ = parts
    again = partition_step(_config(tree, "add"), tmp_path / "add")
    for name in ("train.csv", "val.csv", "test.csv", "stats.json",
                 "synthetic_masks/masks.csv"):
        assert (tmp_path / "add" / name).read_bytes() == (out["add"] / name).read_bytes()
    assert not again.up_to_date
    jpg = sorted((out["add"] / "data" / SYNTHETIC_DIR).rglob("*.jpg"))
    assert [p.read_bytes() for p in jpg] == [
        (tmp_path / "add" / "data" / SYNTHETIC_DIR / p.relative_to(
            out["add"] / "data" / SYNTHETIC_DIR)).read_bytes() for p in jpg]
    same = partition_step(_config(tree, "add"), out["add"])
    assert same.up_to_date and same.stats == json.loads((out["add"] / "stats.json").read_text())


def test_train_runs_on_an_add_partition(parts, tmp_path):
    from mfr.cli import main

    tree, out, _ = parts
    rc = main(["train", "--pairs", str(out["add"]), "--data-root",
               str(tree), "--out", str(tmp_path / "train"), "--weights", "none", "--epochs", "1",
               "--batch-size", "8", "--trainable-layers", "10", "--no-progress"])
    assert rc == 0
    history = pd.read_csv(tmp_path / "train" / "history.csv")
    assert len(history) == 1 and np.isfinite(history["loss"]).all()
    # the images came through the folder of links, synthetic ones included
    cache = Path(json.loads((tmp_path / "train" / "run.json").read_text())["cache_dir"])
    assert json.loads((cache / "cache.json").read_text())["data_root"] == \
        str((out["add"] / "data").resolve())
    index = pd.read_csv(cache / "index.csv")
    assert index["path"].str.startswith(f"{SYNTHETIC_DIR}/").sum() == \
        json.loads((out["add"] / "stats.json").read_text())["synthetic"]["masked_images"]


def test_sample_impostors_and_same_source_positions():
    from mfr.data.datasets import FaceImage

    subjects = ["a", "b", "c"]
    un = {s: [FaceImage(f"u/{s}{i}.jpg", s, False) for i in range(3)] for s in subjects}
    ma = {s: [FaceImage(f"s/{s}{i}.jpg", s, True) for i in range(2)] for s in subjects}
    split = _Split(subjects, un, ma)
    imp = sample_impostors(split, split.genuine, 10, seed=1)
    assert len(imp) == 10 and np.all(np.diff(imp) > 0)
    assert not np.isin(imp, split.genuine).any() and imp.max() < split.n_u * split.n_m
    everything = sample_impostors(split, split.genuine, 10**6, seed=1)
    assert len(everything) == split.n_u * split.n_m - len(split.genuine)
    assert np.array_equal(imp, sample_impostors(split, split.genuine, 10, seed=1))
    same = same_source_positions(split, {"s/b1.jpg": "u/b1.jpg"})
    i, j = divmod(int(same[0]), split.n_m)
    assert len(same) == 1 and split.u_path[i] == "u/b1.jpg" and split.m_path[j] == "s/b1.jpg"


def test_bad_kinds_and_mode_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="synthetic_kinds"):
        parse_kinds("surgical,scarf")
    with pytest.raises(InputError, match="synthetic_masks"):
        StudyConfig(synthetic_masks="some")
    from mfr.cli import main

    rc = main(["partition", "--data-root", str(tmp_path), "--out", str(tmp_path / "p"),
               "--synthetic-masks", "add", "--synthetic-kinds", "scarf"])
    assert rc == 2
