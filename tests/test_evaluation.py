"""`mfr evaluate --study DIR`: a study folder's settings found, missing ones listed, metrics
computed from stored distances and embeddings, every Chapter 5 figure and table written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from mfr.core.config import StudyConfig
from mfr.core.outputs import run_metadata, write_csv, write_json
from mfr.core.runs import discover_study
from mfr.data.pairs import COLUMNS, pair_indices
from mfr.evaluation.distances import distance_table
from mfr.evaluation.embeddings import Embeddings, save_embeddings
from mfr.evaluation.figures import study_figures
from mfr.evaluation.pair_sets import EVAL_DISTANCES, masked_vs_unmasked_pairs
from mfr.evaluation.setting_metrics import SEED_STATS, evaluate_study
from mfr.report import thesis_tables

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent

VAL_SUBJECTS = ["s0", "s1", "s2"]
TEST_SUBJECTS = ["s3", "s4", "s5", "s6"]


def _images(subjects):
    u = [(f"u/{s}/{k}.jpg", s) for s in subjects for k in range(2)]
    m = [(f"m/{s}/{k}.jpg", s) for s in subjects for k in range(2)]
    return u, m


def _pairs(subjects) -> pd.DataFrame:
    u, m = _images(subjects)
    rows = [(up, mp, int(us == ms), us, ms) for up, us in u for mp, ms in m]
    return pd.DataFrame(rows, columns=COLUMNS)


def _embeddings(rng, spread: float, subjects) -> Embeddings:
    """Unit vectors around one centre per subject: genuine pairs nearer than impostors."""
    u, m = _images(subjects)
    paths = sorted(p for p, _ in u + m)
    centres = {s: rng.normal(size=16) for s in subjects}
    vec = np.stack([centres[p.split("/")[1]] + spread * rng.normal(size=16) for p in paths])
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    return Embeddings(vec.astype(np.float32), paths)


def _run(run_dir: Path, pairs: dict[str, pd.DataFrame], emb: Embeddings, run: dict,
         history: bool = False, with_embeddings: bool = True, random: bool = True) -> None:
    frames, summaries = [], {}
    for split, df in pairs.items():
        pi = pair_indices(df, emb)
        f, summaries[split] = distance_table(split, df, emb.vectors, pi.u_idx, pi.m_idx, pi.labels)
        frames.append(f)
    write_csv(run_dir / "distances.csv", pd.concat(frames, ignore_index=True),
              float_format="%.6f")
    write_json(run_dir / "summary.json", {"splits": summaries, "random_weights": random})
    if with_embeddings:
        save_embeddings(run_dir / "embeddings", emb.vectors, emb.paths)
    if history:
        write_csv(run_dir / "history.csv", pd.DataFrame(
            {"epoch": [1, 2], "loss": [3.0, 2.5], "val_loss": [3.1, 2.9]}))
    write_json(run_dir / "run.json", run)


def make_study(root: Path, layers=(10, 30), trained=(10,), seed: int = 0) -> Path:
    """A study folder as `mfr partition` + `mfr embed --split val,test` + `mfr train` write
    it (random-init config), with embeddings drawn around per-subject centres."""
    rng = np.random.default_rng(seed)
    pairs = {"val": _pairs(VAL_SUBJECTS), "test": _pairs(TEST_SUBJECTS)}
    part = root / "partition"
    for split, df in pairs.items():
        write_csv(part / f"{split}.csv", df)
    cfg = StudyConfig(weights=None, trainable_layers=tuple(layers))
    _run(root / "baseline", pairs, _embeddings(rng, 1.0, VAL_SUBJECTS + TEST_SUBJECTS),
         run_metadata(cfg, command="embed", random_weights=True))
    for n in trained:
        _run(root / f"train_N{n}", pairs, _embeddings(rng, 0.5, VAL_SUBJECTS + TEST_SUBJECTS),
             run_metadata(cfg, trainable_layers=n), history=True)
    return root


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from mfr.study.steps import evaluate_step

    study = make_study(tmp_path_factory.mktemp("study"))
    with pytest.warns(UserWarning, match="missing N30"):
        ev = evaluate_step(study, config=StudyConfig(bootstrap_resamples=200), progress=False)
    return study, ev


def test_every_figure_and_table_written(evaluated):
    study, _ = evaluated
    out = study / "evaluation"
    names = {p.name for p in out.iterdir()}
    for stem in ("fig_5_1_train_loss", "fig_5_2_val_loss", "fig_5_3_distances", "fig_5_4_medians",
                 "fig_5_5_gap", "roc", "det", "cmc"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names, stem
    for table in ("table_5_1", "verification", "thresholds", "identification"):
        assert {f"{table}.csv", f"{table}.md"} <= names, table
    assert {"metrics.json", "thresholds.json", "summary.md", "run.json"} <= names


def test_missing_setting_listed_and_random_init_labelled(evaluated):
    study, ev = evaluated
    assert [(m["setting"], m["reason"].split(" ")[0]) for m in ev.metrics["missing"]] == \
        [("N30", "asked")]
    assert set(ev.metrics["settings"]) == {"baseline", "N10"}
    t = pd.read_csv(study / "evaluation" / "table_5_1.csv")
    assert list(t["setting"]) == ["SENet50 random init", "last 10 layers (random init)"]
    assert list(t["trained layers"]) == [0, 10]
    assert t["thesis impostor"].tolist() == [1.278899, 1.699373]
    for name in ("verification", "thresholds", "identification"):
        text = (study / "evaluation" / f"{name}.md").read_text()
        assert "pre-trained" not in text and "random init" in text
    assert "N30" in (study / "evaluation" / "summary.md").read_text()


def test_metrics_agree_with_an_independent_computation(evaluated):
    from sklearn.metrics import roc_auc_score

    study, ev = evaluated
    d = pd.read_csv(study / "train_N10" / "distances.csv")
    test = d[d["split"] == "test"]
    m = json.loads((study / "evaluation" / "metrics.json").read_text())
    got = m["settings"]["N10"]["splits"]["test"]
    for dist in EVAL_DISTANCES:
        assert got[dist]["auc"] == pytest.approx(roc_auc_score(test["label"], -test[dist]))
        assert got[dist]["median_genuine"] == pytest.approx(
            test.loc[test["label"] == 1, dist].median())
        ci = got[dist]["ci"]["auc"]
        assert ci["low"] <= got[dist]["auc"] <= ci["high"] and ci["n_valid"] == 200
    assert m["bootstrap"]["unit"] == "subject" and m["bootstrap"]["n_resamples"] == 200
    # the threshold comes from the validation pairs and is applied to the test pairs
    th = json.loads((study / "evaluation" / "thresholds.json").read_text())
    t = th["settings"]["N10"]["sum_squared"]
    val = d[d["split"] == "val"]
    assert t["val"]["n_pairs"] == len(val) and t["test"]["n_pairs"] == len(test)
    acc = np.mean((test["sum_squared"] <= t["threshold"]) == (test["label"] == 1))
    assert t["test"]["accuracy"] == pytest.approx(acc)
    # identification: 8 masked test images against 8 unmasked ones of 4 subjects
    ident = m["settings"]["N10"]["identification"]["sum_squared"]
    assert ident["n_probes"] == 8 and ident["n_gallery_subjects"] == 4
    assert len(ident["cmc"]) == 4 and ident["cmc"][-1] == 1.0
    assert ident["rank_1"] == ident["cmc"][0] and ident["rank_5"] == 1.0


def test_rerun_is_byte_identical(evaluated, tmp_path):
    from mfr.study.steps import evaluate_step

    study, _ = evaluated
    with pytest.warns(UserWarning):
        evaluate_step(study, tmp_path / "again", StudyConfig(bootstrap_resamples=200),
                      progress=False)
    for name in ("thresholds.json", "verification.csv", "identification.csv", "table_5_1.csv"):
        assert (tmp_path / "again" / name).read_bytes() == \
            (study / "evaluation" / name).read_bytes(), name
    a = json.loads((tmp_path / "again" / "metrics.json").read_text())
    b = json.loads((study / "evaluation" / "metrics.json").read_text())
    assert a["settings"] == b["settings"]


def test_incomplete_runs_are_listed(tmp_path):
    study = make_study(tmp_path / "s", layers=(10, 20), trained=(10,))
    (study / "train_N20").mkdir()  # killed before it wrote run.json
    d = pd.read_csv(study / "train_N10" / "distances.csv")  # a run from before val distances
    d[d["split"] == "test"].to_csv(study / "train_N10" / "distances.csv", index=False)
    found = discover_study(study)
    assert [s.key for s in found.settings] == ["baseline", "N10"]
    assert found.missing == []
    assert [e["setting"] for e in found.incomplete] == ["train_N20"]
    ev = evaluate_study(found, n_resamples=0)
    th = ev.metrics["settings"]["N10"]["threshold"]
    assert th["threshold" if "threshold" in th else "null_reason"].startswith("no validation")
    assert any("threshold" in e["reason"] for e in ev.metrics["incomplete"])


def test_empty_class_gives_nulls_not_a_crash(tmp_path):
    study = make_study(tmp_path / "s", layers=(10,), trained=(10,))
    for run in ("baseline", "train_N10"):
        d = pd.read_csv(study / run / "distances.csv")
        d = d[(d["split"] == "val") | (d["label"] == 1)]  # test: genuine pairs only
        d.to_csv(study / run / "distances.csv", index=False)
    ev = evaluate_study(discover_study(study), n_resamples=50)
    m = ev.metrics["settings"]["N10"]["splits"]["test"]["sum_squared"]
    assert m["auc"] is None and "no impostor pairs" in m["null_reason"]
    assert m["ci"]["auc"]["low"] is None and m["ci"]["gmean"]["low"] is not None
    assert ev.metrics["settings"]["N10"]["threshold"]["sum_squared"]["test"]["fmr"] is None
    figs = study_figures(ev)
    box = figs["fig_5_3_distances"].axes[0]
    assert sum("no impostor pairs" in t.get_text() for t in box.texts) == 2
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.stderr_lines
def test_cli_one_line_errors(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mfr.cli", "evaluate", *map(str, args)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    p = cli("--study", tmp_path / "nowhere")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "study folder not found" in p.stderr
    p = cli()
    assert p.returncode == 2 and "either --study" in p.stderr
    p = cli("--data-root", tmp_path, "--layout", "mfr2", "--out", tmp_path / "o",
            "--embedder", "nope")
    assert p.returncode == 2 and p.stderr.count("\n") == 1


def test_setting_labels():
    assert thesis_tables.setting_label("pre-trained") == "SENet50 pre-trained"
    assert thesis_tables.setting_label("pre-trained", random_init=True) == "SENet50 random init"
    assert thesis_tables.setting_label(40, random_init=True) == "last 40 layers (random init)"


def test_masked_vs_unmasked_pairs():
    u = pd.DataFrame({"path": ["u/b/1", "u/a/1"], "subject": ["b", "a"]})
    m = pd.DataFrame({"path": ["m/a/1", "m/c/1", "m/a/2"], "subject": ["a", "c", "a"]})
    p = masked_vs_unmasked_pairs(u, m)
    assert list(p.columns) == COLUMNS and len(p) == 6
    assert p["label"].tolist() == [1, 1, 0, 0, 0, 0]
    assert p["unmasked_path"].tolist()[:3] == ["u/a/1"] * 3
    assert p["masked_path"].tolist()[:3] == ["m/a/1", "m/a/2", "m/c/1"]


def test_several_seeds_of_one_n_report_their_spread(tmp_path):
    """Two more seeds of N=10 beside the study seed's run: each is evaluated, Table 5.1 and
    the figures keep the study seed's, seeds.csv holds the spread, a fourth seed the ledger
    asks for is missing, a second folder of one seed is incomplete; no forward pass."""
    import shutil

    from mfr.report.document import write_report
    from mfr.study.steps import evaluate_step

    study = make_study(tmp_path / "s", layers=(10,), trained=(10,))
    rng = np.random.default_rng(5)
    pairs = {"val": _pairs(VAL_SUBJECTS), "test": _pairs(TEST_SUBJECTS)}
    for seed, spread in ((2022, 0.8), (2023, 0.3)):
        cfg = StudyConfig(weights=None, trainable_layers=(10,), seed=seed)
        _run(study / f"train_N10_s{seed}", pairs,
             _embeddings(rng, spread, VAL_SUBJECTS + TEST_SUBJECTS),
             run_metadata(cfg, trainable_layers=10), history=True)
    shutil.copytree(study / "train_N10_s2023", study / "train_N10_s2023_copy")
    ledger = StudyConfig(weights=None, trainable_layers=(10,), seeds=(2021, 2022, 2023, 2024))
    write_json(study / "study.json", {"profile": "t", "config": ledger.to_dict()})

    found = discover_study(study)
    assert [(s.key, s.seed, s.replicate) for s in found.settings] == [
        ("baseline", 2021, False), ("N10", 2021, False), ("N10_s2022", 2022, True),
        ("N10_s2023", 2023, True)]
    assert [m["setting"] for m in found.missing] == ["N10_s2024"]
    assert [(e["setting"], e["path"].endswith("_copy")) for e in found.incomplete] == [
        ("N10_s2023", True)]
    with pytest.warns(UserWarning, match="missing N10_s2024"):
        ev = evaluate_step(study, config=StudyConfig(bootstrap_resamples=100), progress=False)
    out = study / "evaluation"
    t51 = pd.read_csv(out / "table_5_1.csv")
    assert list(t51["trained layers"]) == [0, 10]  # the study seed's run only
    ver = pd.read_csv(out / "verification.csv")
    assert "last 10 layers (random init), seed 2022" in set(ver["setting"])
    seeds = pd.read_csv(out / "seeds.csv")
    assert list(seeds["statistic"]) == list(SEED_STATS) and set(seeds["n"]) == {3}
    # against an independent computation from the three runs' distances.csv
    from sklearn.metrics import roc_auc_score

    aucs, gaps = [], []
    for run in ("train_N10", "train_N10_s2022", "train_N10_s2023"):
        d = pd.read_csv(study / run / "distances.csv")
        t = d[d["split"] == "test"]
        aucs.append(roc_auc_score(t["label"], -t["sum_squared"]))
        gaps.append(t.loc[t["label"] == 0, "sum_squared"].median()
                    - t.loc[t["label"] == 1, "sum_squared"].median())
    auc = seeds[seeds["statistic"] == "auc"].iloc[0]
    gap = seeds[seeds["statistic"] == "gap"].iloc[0]
    assert auc["mean"] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert auc["sd"] == pytest.approx(np.std(aucs, ddof=1), abs=1e-6)
    assert (auc["min"], auc["max"]) == pytest.approx((min(aucs), max(aucs)), abs=1e-6)
    assert gap["mean"] == pytest.approx(np.mean(gaps), abs=1e-6)
    assert auc["ci_seed"] == 2021 and auc["ci_low"] <= aucs[0] <= auc["ci_high"]
    assert auc["ci_value"] == pytest.approx(aucs[0], abs=1e-6)
    assert ev.metrics["seeds"]["N10"]["settings"] == ["N10", "N10_s2022", "N10_s2023"]
    md = (out / "seeds.md").read_text()
    assert "± " in md and "seed 2021: value [95% subject-bootstrap CI]" in md
    assert "seeds.md" in json.loads((out / "run.json").read_text())["outputs"]
    report = write_report(study, ledger, {"steps": {}}, []).read_text()
    assert "### Spread across seeds" in report
    assert f"AUC {np.mean(aucs):.4f} ± {np.std(aucs, ddof=1):.4f}" in report
