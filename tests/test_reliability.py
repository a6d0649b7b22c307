"""Issue 20, part A: bad input is one line (exit 2) before any slow work, at the shared places
where it is checked: config flags through the config's own checks, a whole profile before a
study's first step, a run's records (thresholds, partition, pairs folder) checked before use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mfr.cli import main
from mfr.core.config import MAX_SEED, StudyConfig, load_config
from mfr.core.errors import InputError, MissingError
from mfr.core.outputs import write_csv
from mfr.core.provenance import file_digest
from mfr.data.pairs import COLUMNS, read_pairs

ROOT = Path(__file__).resolve().parent.parent


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- config flags


@pytest.mark.parametrize(("args", "named"), [
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--trainable-layers", ""], "--trainable-layers"),
    (["--trainable-layers", "0,10"], "--trainable-layers"),
    (["--seed=-1"], "--seed"),
    (["--seed", str(MAX_SEED + 1)], "--seed"),
    (["--embed-batch-size", "0"], "--embed-batch-size"),
    (["--momentum=-5"], "--momentum"),
    (["--momentum", "1"], "--momentum"),
    (["--learning-rate", "-1"], "--learning-rate"),
    (["--learning-rate", "inf"], "--learning-rate"),
    (["--margin", "nan"], "--margin"),
    (["--margin", "0"], "--margin"),
])
def test_a_config_flag_out_of_range_is_one_line_naming_the_flag(args, named, capsys):
    rc = main(["train", *args, "--weights", "none", "--dry-run"])
    err = _one_line(capsys)
    assert rc == 2 and err.startswith(f"mfr train: error: {named}: expected"), err


def test_flag_checks_are_the_profiles_checks(tmp_path):
    """The same value in a profile is refused by the same check, naming the file."""
    for key, value, words in (("epochs", "0", "integer >= 1"), ("margin", ".nan", "finite"),
                              ("momentum", "1.5", "in [0, 1)"), ("seed", str(MAX_SEED + 1),
                                                                 f"0..{MAX_SEED}"),
                              ("image_size", "8", "at least 32 pixels for senet50")):
        prof = tmp_path / f"{key}.yaml"
        prof.write_text(f"{key}: {value}\n")
        with pytest.raises(InputError, match=rf"{key}\.yaml: config key {key}: .*"
                                             rf"{words.replace('[', '.').replace(')', '.')}"):
            load_config(prof)
    assert StudyConfig(seed=MAX_SEED).seed == MAX_SEED  # the bound itself is a seed
    assert StudyConfig(momentum=0.9, image_size=32).momentum == 0.9
    with pytest.raises(InputError, match="image_size: at least 32 pixels for dlib_resnet"):
        StudyConfig(backbone="dlib_resnet", image_size=16)


def test_partition_flags_refused_before_any_folder_is_made(tmp_path):
    """As a user runs it: exit 2, one stderr line naming the flag, no run folder left."""
    out = tmp_path / "pairs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for flag_args, named in ((["--max-per-subject=-3"], "--max-per-subject"),
                             (["--seed", str(2**32)], "--seed")):
        r = subprocess.run([sys.executable, "-m", "mfr.cli", "partition", "--data-root",
                            str(tmp_path), "--out", str(out), *flag_args],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and named in r.stderr, r.stderr
        assert not out.exists()


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize(("text", "line", "words"), [
    ("epochs: 3\nmargin: [1\n", 3, "not valid YAML"),
    ("epochs: 3\nbatch_size: 8\n1: 2\n", 3, "config keys are names"),
    ("epochs: 3\nnull: 2\n", 2, "config keys are names"),
])
def test_a_bad_profile_names_its_file_and_line(tmp_path, capsys, text, line, words):
    prof = tmp_path / "bad.yaml"
    prof.write_text(text)
    with pytest.raises(InputError, match=rf"bad\.yaml: line {line}: {words}"):
        load_config(prof)
    assert main(["study", "--profile", str(prof), "--out", str(tmp_path / "s")]) == 2
    err = _one_line(capsys)
    assert f"bad.yaml: line {line}" in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize(("setting", "words"), [
    ("trainable_layers: [10, 300]", "1..287"),
    ("margin: .nan", "margin: expected a finite number"),
    ("image_size: 8", "image_size: at least 32"),
    ("backbone: dlib_resnet\ntrainable_layers: [10, 200]", "1..109"),
])
def test_study_checks_the_whole_profile_before_its_first_step(tmp_path, capsys, setting, words):
    prof = tmp_path / "p.yaml"
    prof.write_text(f"weights: null\nepochs: 1\n{setting}\n")
    out = tmp_path / "study"
    assert main(["study", "--profile", str(prof), "--out", str(out), "--no-progress"]) == 2
    err = _one_line(capsys)
    assert words in err, err
    assert not (out / "partition").exists() and not (out / "study.json").exists()


def test_study_refuses_a_run_folder_as_its_folder(tmp_path, capsys):
    run = tmp_path / "base"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"command": "embed", "status": "complete"}))
    (run / "distances.csv").write_text("x\n")
    prof = tmp_path / "p.yaml"
    prof.write_text("weights: null\ntrainable_layers: [10]\n")
    assert main(["study", "--profile", str(prof), "--out", str(run), "--no-progress"]) == 2
    err = _one_line(capsys)
    assert "run folder of mfr embed" in err and str(run) in err
    assert sorted(p.name for p in run.iterdir()) == ["distances.csv", "run.json"]


# --------------------------------------------------------------------------- run records


def _study(root: Path) -> Path:
    from test_evaluation import make_study

    root = make_study(root, layers=(10,), trained=(10,))
    for run in ("baseline", "train_N10"):  # the records `mfr embed` / `mfr train` write
        path = root / run / "run.json"
        meta = json.loads(path.read_text())
        meta.update(command="embed" if run == "baseline" else "train", status="complete",
                    outputs={"distances.csv": file_digest(
            root / run / "distances.csv")}, fingerprint={"pairs": {
                s: file_digest(root / "partition" / s) for s in ("val.csv", "test.csv")}})
        path.write_text(json.dumps(meta))
    return root


def _fake(run_dir: Path):
    from types import SimpleNamespace

    desc = {"name": "senet50", "weights": None, "run_dir": str(run_dir)}
    return SimpleNamespace(name="senet50", run_dir=run_dir, default_distance="sum_squared",
                           describe=lambda: desc)


def test_thresholds_of_a_run_trained_again_are_stale(tmp_path):
    from mfr.evaluation.thresholds import resolve_threshold
    from mfr.study.steps import evaluate_step

    root = _study(tmp_path / "study")
    evaluate_step(root, config=StudyConfig(bootstrap_resamples=0), progress=False)
    run = root / "train_N10"
    fresh = resolve_threshold(None, _fake(run))
    assert fresh.value is not None and "calibrated" in fresh.source
    meta = json.loads((run / "run.json").read_text())  # trained again: other outputs
    meta["outputs"] = {"distances.csv": "0" * 64}
    (run / "run.json").write_text(json.dumps(meta))
    stale = resolve_threshold(None, _fake(run))
    assert stale.value is None and "stale" in stale.source
    assert stale.source.startswith("no calibrated threshold")
    assert "mfr evaluate --study" in stale.source
    with pytest.raises(InputError, match="stale"):  # a file named by the user: refused
        resolve_threshold(root / "evaluation" / "thresholds.json", _fake(run))
    # the other setting, untouched, keeps its threshold
    assert resolve_threshold(None, _fake(root / "baseline")).value is not None


def test_evaluation_names_runs_of_another_partition(tmp_path):
    from mfr.core.runs import discover_study
    from mfr.evaluation.setting_metrics import evaluate_study

    root = _study(tmp_path / "study")
    test = root / "partition" / "test.csv"
    df = pd.read_csv(test, dtype=str)
    write_csv(test, pd.concat([df, df.iloc[:1].assign(masked_path="other/x.jpg")]))
    ev = evaluate_study(discover_study(root), n_resamples=0)
    notes = json.dumps(ev.metrics)
    assert "made from another partition" in notes
    # both runs were made from the partition before the row was added
    assert "failed to load" not in notes


def test_a_runs_relative_pairs_folder_is_found_by_its_digest(tmp_path, monkeypatch):
    from mfr.study.steps.inputs import recorded_pairs_dir

    made_in = tmp_path / "work"
    part = made_in / "study" / "partition"
    part.mkdir(parents=True)
    (part / "test.csv").write_text("the partition\n")
    run = made_in / "study" / "train_N10"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "command": "train", "pairs_dir": "study/partition",
        "fingerprint": {"pairs": {"test.csv": file_digest(part / "test.csv")}}}))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "study" / "partition").mkdir(parents=True)  # same name, another partition
    (elsewhere / "study" / "partition" / "test.csv").write_text("another partition\n")
    monkeypatch.chdir(elsewhere)
    assert recorded_pairs_dir(run).resolve() == part.resolve()
    (part / "test.csv").write_text("changed since\n")
    with pytest.raises(MissingError, match="study/partition .*--pairs DIR"):
        recorded_pairs_dir(run)


# --------------------------------------------------------------------------- pair CSVs


def test_a_repeated_pair_is_refused_naming_both_lines(tmp_path, capsys):
    rows = [["a/1.jpg", "a/m1.jpg", "1", "a", "a"], ["a/1.jpg", "b/m1.jpg", "0", "a", "b"],
            ["a/1.jpg", "a/m1.jpg", "1", "a", "a"]]
    part = tmp_path / "pairs"
    part.mkdir()
    pd.DataFrame(rows, columns=COLUMNS).to_csv(part / "test.csv", index=False)
    with pytest.raises(InputError, match=r"test\.csv: line 4: .*again \(first on line 2"):
        read_pairs(part / "test.csv")
    pd.DataFrame(rows[:2], columns=COLUMNS).to_csv(part / "val.csv", index=False)
    assert len(read_pairs(part / "val.csv")) == 2  # a pair and its impostor: both kept
    (part / "run.json").write_text(json.dumps({"command": "partition", "status": "complete"}))
    rc = main(["embed", "--pairs", str(part), "--out", str(tmp_path / "e"), "--weights",
               "none", "--split", "test", "--data-root", str(tmp_path), "--no-progress"])
    err = _one_line(capsys)
    assert rc == 2 and "line 4" in err and not (tmp_path / "e").exists()


def test_mfr2_pairs_named_twice_are_counted_once_and_said(tmp_path):
    """MFR2's own pairs.txt names one pair twice (lines 43 and 285 of the released file): a
    pair set counts it once, says so, and lists where."""
    from mfr.data.datasets.mfr2 import mfr2_pairs

    (tmp_path / "mfr2_labels.txt").write_text(
        "A, 1, no-mask\nA, 2, surgical_blue\nB, 1, no-mask\nB, 2, cloth\n")
    (tmp_path / "pairs.txt").write_text("A 1 2\nA 2 B 1\nB 1 2\nB 1 A 2\nA 1 2\n")
    with pytest.warns(UserWarning, match=r"2 pair\(s\) named again .*line 4 repeats line 2"):
        df = mfr2_pairs(tmp_path)
    assert len(df) == 3 and sorted(df["label"]) == [0, 1, 1]
    assert [(r["line"], r["first_line"]) for r in df.attrs["repeated"]] == [(4, 2), (5, 1)]
