"""`mfr recipes` (issue 19's comparison) end to end on a generated sample: the table's rows and
columns, a byte-identical rerun that computes nothing, --only, a recipe chosen on validation
pairs, one partition shared by every row, and bad recipes as one-line errors."""

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
from mfr.study.recipes import load_recipes, run_recipes

PROFILE = """\
backbone: dlib_resnet
weights: null
image_size: 64
optimizer: adam
learning_rate: 1.0e-03
epochs: 1
batch_size: 8
trainable_layers: [4]
bootstrap_resamples: 20
seeds: [2021, 2022]
recipes:
  - name: pretrained
    train: false
  - name: contrastive
    overrides: {loss: contrastive}
  - name: triplet
    overrides: {loss: triplet, trainable_layers: 8}
  - name: best+add
    base: best_val
    seeds: [2021]
    note: one seed
    overrides: {synthetic_masks: add, synthetic_kinds: surgical}
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipes")
    tree = make_demo_tree(base / "tree", n_subjects=6, image_size=64, seed=3)
    profile = base / "tiny-recipes.yaml"
    profile.write_text(PROFILE)
    out = base / "out"
    args = ["recipes", "--profile", str(profile), "--data-root", str(tree), "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    return tree, profile, out, args


def test_the_table_has_a_row_per_recipe_and_the_numbers_of_its_runs(made):
    tree, _, out, _ = made
    t = pd.read_csv(out / "recipes.csv", dtype={"seeds": str, "based_on": str})
    t["based_on"] = t["based_on"].fillna("")
    assert list(t["recipe"]) == ["pretrained", "contrastive", "triplet", "best+add"]
    for stat in ("auc", "eer", "fnmr_at_fmr_1pct"):
        for suffix in ("", "_low", "_high", "_mean", "_sd", "_min", "_max"):
            assert f"{stat}{suffix}" in t.columns
    assert {"val_auc", "val_auc_mean", "loss", "synthetic_masks", "trainable_layers",
            "seeds", "based_on", "test_pairs"} <= set(t.columns)
    assert list(t["seeds"]) == ["2021", "2021,2022", "2021,2022", "2021"]
    assert not (out / "runs" / "best+add_s2022").exists()
    assert list(t["trainable_layers"]) == [0, 4, 8, 4 if t["based_on"][3] == "contrastive"
                                         else 8]
    assert list(t["synthetic_masks"]) == ["none", "none", "none", "add"]
    # the base chosen on validation pairs: the higher val AUC of the profile seed's runs
    cands = t.iloc[1:3].set_index("recipe")["val_auc"]
    assert t["based_on"][3] == cands.idxmax()
    assert t["loss"][3] == t.set_index("recipe")["loss"][t["based_on"][3]]
    # the row's numbers are its runs' test pairs (the profile seed's, and the spread)
    from mfr.evaluation.metrics import verification_metrics

    aucs = []
    for seed in (2021, 2022):
        d = pd.read_csv(out / "runs" / f"triplet_s{seed}" / "distances.csv")
        d = d[d["split"] == "test"]
        aucs.append(verification_metrics(d["sum_squared"].to_numpy(), d["label"].to_numpy())["auc"])
    row = t.set_index("recipe").loc["triplet"]
    assert row["auc"] == pytest.approx(aucs[0], abs=1e-6)
    assert row["auc_mean"] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert row["auc_sd"] == pytest.approx(np.std(aucs, ddof=1), abs=1e-6)
    assert row["auc_low"] <= row["auc"] <= row["auc_high"]
    assert np.isnan(t["auc_sd"][0]) and t["seeds"][0] == "2021"  # pretrained: one run
    assert t["test_pairs"].nunique() == 1  # the same test pairs for every row
    # one partition per synthetic mode, with the same val and test pairs
    for split in ("val", "test"):
        assert (out / "partition_none" / f"{split}.csv").read_bytes() == \
            (out / "partition_add" / f"{split}.csv").read_bytes()
    run = json.loads((out / "runs" / "triplet_s2022" / "run.json").read_text())
    assert run["config"]["seed"] == 2022 and run["config"]["loss"] == "triplet"
    assert run["pairs_dir"] == str((out / "partition_none").resolve())
    md = (out / "recipes.md").read_text()
    assert "| best+add |" in md and "Chosen on validation pairs" in md and "Compute:" in md
    assert "- best+add (seeds 2021): one seed" in md
    assert (out / "recipes_auc.png").stat().st_size > 1000


def test_a_rerun_computes_nothing_and_writes_the_same_table(made, capsys):
    _, _, out, args = made
    csv = (out / "recipes.csv").read_bytes()
    times = (out / "times.json").read_bytes()
    runs = {p: p.read_bytes() for p in (out / "runs").rglob("run.json")}
    assert main(args) == 0
    assert (out / "recipes.csv").read_bytes() == csv
    assert (out / "times.json").read_bytes() == times
    assert {p: p.read_bytes() for p in (out / "runs").rglob("run.json")} == runs


def test_only_writes_those_rows(made, tmp_path):
    tree, profile, out, args = made
    full = pd.read_csv(out / "recipes.csv").set_index("recipe")
    assert main([*args[:-3], "--out", str(out), "--only", "triplet,pretrained",
                 "--no-progress"]) == 0
    t = pd.read_csv(out / "recipes.csv")
    assert list(t["recipe"]) == ["pretrained", "triplet"]
    assert t.set_index("recipe").loc["triplet", "auc"] == full.loc["triplet", "auc"]
    assert main(args) == 0  # back to every row


@pytest.mark.parametrize("recipes, message", [
    ("  - name: a\n    loss: triplet\n", "recipe 'a': unknown key(s) ['loss']"),
    ("  - name: a\n    overrides: {loss: nope}\n", "recipe 'a': "),
    ("  - name: a\n    overrides: {seed: 3}\n", "cannot differ between recipes"),
    ("  - name: a\n    overrides: {trainable_layers: [4, 8]}\n", "one N per recipe"),
    ("  - name: a\n    base: b\n", "base must be"),
    ("  - name: a\n  - name: a\n", "names must be unique"),
    ("  - name: a\n    seeds: 2021\n", "seeds must be a non-empty list"),
    ("  - name: a\n    train: false\n    overrides: {epochs: 2}\n", "takes no base"),
])
def test_a_bad_recipe_is_a_one_line_error(tmp_path, capsys, recipes, message):
    profile = tmp_path / "bad.yaml"
    profile.write_text("weights: null\ntrainable_layers: [4]\nrecipes:\n" + recipes)
    with pytest.raises(InputError, match=re.escape(message)):
        load_recipes(profile)
    assert main(["recipes", "--profile", str(profile), "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(profile) in err and "mfr recipes: error:" in err


def test_no_recipes_and_an_unknown_only_are_errors(tmp_path, capsys):
    profile = tmp_path / "none.yaml"
    profile.write_text("weights: null\n")
    with pytest.raises(InputError, match="non-empty 'recipes:' list"):
        load_recipes(profile)
    profile.write_text("weights: null\ntrainable_layers: [4]\nrecipes:\n  - name: a\n")
    assert main(["recipes", "--profile", str(profile), "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--only", "b"]) == 2
    assert "--only: no recipe ['b']" in capsys.readouterr().err


def test_the_profile_loads(tmp_path):
    plan = load_recipes("rmfrd-recipes", data_root=str(tmp_path))
    names = [r.name for r in plan.recipes]
    assert names[:2] == ["pretrained", "thesis"]
    assert plan.config.backbone == "dlib_resnet" and plan.config.trainable_layers == (15,)
    assert {r.overrides.get("loss") for r in plan.recipes} >= {
        "contrastive", "triplet", "arcface", "cosface", "dlib_metric"}
    assert Path(plan.path).stem == "rmfrd-recipes"


def test_notebook_07_shows_the_table_and_the_figure(made, tmp_path):
    pm = pytest.importorskip("papermill")
    tree, profile, out, _ = made
    csv = (out / "recipes.csv").read_bytes()
    nb = Path(__file__).resolve().parent.parent / "notebooks" / "07_recipes.ipynb"
    pm.execute_notebook(str(nb), str(tmp_path / "07.ipynb"), kernel_name="python3",
                        cwd=str(tmp_path), progress_bar=False,
                        parameters={"profile": str(profile), "data_root": str(tree),
                                    "out_dir": str(out)})
    text = (tmp_path / "07.ipynb").read_text()
    assert "| best+add |" in text and "image/png" in text
    assert (out / "recipes.csv").read_bytes() == csv  # read back, the same table


def test_seeds_flag_and_an_out_inside_the_data_root(made, tmp_path, capsys):
    tree, profile, out, args = made
    assert main([*args, "--seeds", "2021"]) == 0
    t = pd.read_csv(out / "recipes.csv", dtype={"seeds": str})
    assert set(t["seeds"]) == {"2021"} and t["auc_sd"].isna().all()
    assert main(["recipes", "--profile", str(profile), "--data-root", str(tree),
                 "--out", str(tree), "--seeds", "2021"]) == 2
    assert "data root" in capsys.readouterr().err
    assert main(args) == 0


def test_a_recipes_seeds_must_hold_the_profile_seed(made, tmp_path):
    tree, _, _, _ = made
    profile = tmp_path / "p.yaml"
    profile.write_text("weights: null\ntrainable_layers: [4]\nrecipes:\n  - name: a\n"
                       "    seeds: [7]\n")
    with pytest.raises(InputError, match="must hold the profile's seed 2021"):
        run_recipes(load_recipes(profile, data_root=str(tree)), tmp_path / "o")
