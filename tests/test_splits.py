"""`mfr splits` (issue 26: recipes judged on K folds over subjects) on a generated sample: the
folds test every subject once with every masked x unmasked pair, the tables are the runs'
numbers and their spread, the folds share one image cache and one trunk store per N, a rerun
trains nothing and writes the same files, and bad profiles are one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mfr.cli import main
from mfr.core.errors import InputError
from mfr.data.datasets.synthetic import make_demo_tree
from mfr.study.splits import fold_summary, load_splits

PROFILE = """\
backbone: dlib_resnet
weights: null
image_size: 64
protocol: all_pairs
optimizer: adam
learning_rate: 1.0e-03
epochs: 1
batch_size: 8
trainable_layers: [4]
bootstrap_resamples: 20
folds: 3
split_seed: 7
recipes:
  - name: pretrained
    train: false
  - name: n4
    note: the last 4 layers
  - name: n8
    overrides: {trainable_layers: 8}
"""
K = 3
STATS = ("auc", "eer", "fnmr_at_fmr_1pct")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("splits")
    tree = make_demo_tree(base / "tree", n_subjects=6, image_size=64, seed=3)
    profile = base / "tiny-splits.yaml"
    profile.write_text(PROFILE)
    out = base / "out"
    args = ["splits", "--profile", str(profile), "--data-root", str(tree), "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    return tree, profile, out, args


def test_the_folds_test_every_subject_once_with_every_pair(made):
    tree, _, out, _ = made
    everyone = sorted(p.name for p in (tree / "AFDB_face_dataset").iterdir())
    tested = []
    for f in range(K):
        part = out / f"fold{f}" / "partition"
        split = json.loads((part / "stats.json").read_text())["split_subjects"]
        assert sorted(split["train_val"] + split["test"]) == everyone
        tested += split["test"]
        test = pd.read_csv(part / "test.csv")
        # every unmasked x masked pair of the fold's test subjects (all_pairs)
        assert set(test["unmasked_subject"]) | set(test["masked_subject"]) == set(split["test"])
        assert len(test) == test["unmasked_path"].nunique() * test["masked_path"].nunique()
        assert not test.duplicated(["unmasked_path", "masked_path"]).any()
        train = pd.concat([pd.read_csv(part / "train.csv"), pd.read_csv(part / "val.csv")])
        assert not set(train["unmasked_subject"]) & set(split["test"])
    assert sorted(tested) == everyone  # disjoint folds that cover everyone
    run = json.loads((out / "run.json").read_text())
    assert sorted(sum(run["fold_test_subjects"], [])) == everyone
    assert run["folds"] == K and run["split_seed"] == 7 and run["reference"] == "pretrained"


def test_the_tables_are_the_runs_numbers_and_their_spread(made):
    from mfr.evaluation.metrics import verification_metrics

    _, _, out, _ = made
    per_fold = pd.read_csv(out / "splits_folds.csv")
    assert list(zip(per_fold["fold"], per_fold["recipe"], strict=True)) == [
        (f, r) for f in range(K) for r in ("pretrained", "n4", "n8")]
    for _, row in per_fold.iterrows():
        run = out / f"fold{row['fold']}" / "runs" / row["recipe"]
        d = pd.read_csv(run / "distances.csv")
        d = d[d["split"] == "test"]
        m = verification_metrics(d["sum_squared"].to_numpy(), d["label"].to_numpy())
        for stat in STATS:
            assert row[stat] == pytest.approx(m[stat], abs=1e-6)
            assert row[f"{stat}_low"] <= row[stat] + 1e-6 <= row[f"{stat}_high"] + 2e-6
        assert row["test_pairs"] == len(d) == row["test_genuine"] + row["test_impostor"]
    summary = pd.read_csv(out / "splits.csv")
    assert list(summary["recipe"]) == ["pretrained", "n4", "n8"]
    assert list(summary["trainable_layers"]) == [0, 4, 8]
    n8 = summary.set_index("recipe").loc["n8"]
    aucs = per_fold[per_fold["recipe"] == "n8"]["auc"].to_numpy()
    assert n8["auc_mean"] == pytest.approx(aucs.mean(), abs=1e-6)
    assert n8["auc_sd"] == pytest.approx(aucs.std(ddof=1), abs=1e-6)
    assert n8["auc_fold0"] == pytest.approx(aucs[0], abs=1e-6)
    assert summary["auc_better_folds"].isna().tolist() == [True, False, False]
    md = (out / "splits.md").read_text()
    assert "| n8 | 8 |" in md and "- n4: the last 4 layers" in md and "Compute:" in md
    assert "n8 against pretrained: AUC better in" in md
    assert (out / "splits_auc.png").stat().st_size > 1000


def test_the_folds_share_one_image_cache_and_one_trunk_store_per_n(made):
    _, _, out, _ = made
    for f in range(K):
        assert not (out / f"fold{f}" / "partition" / "cache").exists()
        for name in ("n4", "n8"):
            run = json.loads((out / f"fold{f}" / "runs" / name / "run.json").read_text())
            assert run["cache_dir"] == str((out / "cache").resolve())
            assert run["fingerprint"]["settings"]["trunk_store"] is True
    assert len(list((out / "trunk_store").glob("trunk_*"))) == 2  # N = 4 and 8, all folds


def test_a_rerun_trains_nothing_and_writes_the_same_files(made, monkeypatch):
    import mfr.training.fit

    _, _, out, args = made
    names = ("splits.csv", "splits_folds.csv", "splits.md", "run.json", "times.json",
             "splits_auc.png")
    before = {n: (out / n).read_bytes() for n in names}
    runs = {p: p.read_bytes() for p in out.rglob("run.json")}

    def refuse(*a, **k):
        raise AssertionError("a rerun trained")

    monkeypatch.setattr(mfr.training.fit, "train_siamese", refuse)
    assert main(args) == 0
    assert {n: (out / n).read_bytes() for n in names} == before
    assert {p: p.read_bytes() for p in out.rglob("run.json")} == runs


def test_the_spread_columns_on_hand_made_numbers():
    rows = []
    values = {"ref": [0.60, 0.50, 0.70], "a": [0.70, 0.40, 0.75]}
    for name, aucs in values.items():
        for f, auc in enumerate(aucs):
            row = {"recipe": name, "trainable_layers": 0 if name == "ref" else 4, "fold": f,
                   "test_pairs": 10 + f}
            for stat in STATS:
                v = auc if stat == "auc" else 1 - auc
                row.update({stat: v, f"{stat}_low": v - 0.1, f"{stat}_high": v + 0.1})
            rows.append(row)
    t = fold_summary(pd.DataFrame(rows), "ref").set_index("recipe")
    a = t.loc["a"]
    assert a["folds"] == 3 and a["test_pairs"] == 33
    assert a["auc_mean"] == pytest.approx(np.mean([0.70, 0.40, 0.75]))
    assert a["auc_sd"] == pytest.approx(np.std([0.70, 0.40, 0.75], ddof=1))
    assert (a["auc_min"], a["auc_max"]) == pytest.approx((0.40, 0.75))
    assert (a["auc_fold0"], a["auc_fold0_low"], a["auc_fold0_high"]) == pytest.approx(
        (0.70, 0.60, 0.80))
    assert a["auc_diff_mean"] == pytest.approx((0.10 - 0.10 + 0.05) / 3)
    assert (a["auc_diff_min"], a["auc_diff_max"]) == pytest.approx((-0.10, 0.10))
    assert a["auc_better_folds"] == 2  # higher AUC in folds 0 and 2
    assert a["eer_better_folds"] == 2  # lower EER (1 - AUC here) in the same folds
    assert a["eer_diff_mean"] == pytest.approx(-a["auc_diff_mean"])
    assert pd.isna(t.loc["ref", "auc_better_folds"]) and np.isnan(t.loc["ref", "auc_diff_mean"])
    one = fold_summary(pd.DataFrame(rows[:1]), None)
    assert np.isnan(one["auc_sd"][0]) and pd.isna(one["auc_better_folds"][0])


@pytest.mark.parametrize("extra, recipes, message", [
    ("", "  - name: a\n    base: best_val\n", "base best_val is not taken here"),
    ("", "  - name: a\n    seeds: [2021]\n", "mfr splits trains each fold once"),
    ("", "  - name: a\n    overrides: {image_size: 32}\n", "share one image cache"),
    ("", "  - name: a\n    overrides: {synthetic_masks: add}\n", "synthetic_masks: not taken"),
    ("folds: 1\n", "  - name: a\n", "folds must be an integer >= 2"),
    ("folds: x\n", "  - name: a\n", "folds must be an integer >= 2"),
    ("split_seed: -3\n", "  - name: a\n", "split_seed must be None or an integer"),
    ("seeds: [1, 2]\n", "  - name: a\n", "mfr splits trains each fold once"),
])
def test_a_bad_splits_profile_is_a_one_line_error(tmp_path, capsys, extra, recipes, message):
    profile = tmp_path / "bad.yaml"
    profile.write_text("weights: null\nprotocol: all_pairs\ntrainable_layers: [4]\n" + extra
                       + "recipes:\n" + recipes)
    with pytest.raises(InputError, match=re.escape(message)):
        load_splits(profile)
    assert main(["splits", "--profile", str(profile), "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(profile) in err and "mfr splits: error:" in err
    assert not (tmp_path / "o").exists()


def test_the_profile_loads_with_rmfrd_dlibs_values(tmp_path):
    from mfr.core.config import load_config

    s = load_splits("rmfrd-splits", data_root=str(tmp_path))
    assert (s.folds, s.split_seed) == (5, None) and Path(s.path).stem == "rmfrd-splits"
    assert [r.name for r in s.plan.recipes] == ["pretrained", "thesis-N4", "thesis-N15",
                                                "thesis-N27"]
    thesis = load_config("rmfrd-dlib", data_root=str(tmp_path)).to_dict()
    here = s.config.to_dict()
    assert {k for k in thesis if thesis[k] != here[k]} == {
        "profile", "protocol", "trainable_layers", "gradcam_images", "table_5_2_pairs"}
    assert here["protocol"] == "all_pairs" and here["face_box"] == "mtcnn"
    assert load_splits("rmfrd-splits", folds=3, split_seed=11).folds == 3
