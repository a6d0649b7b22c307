"""`mfr study`: every step's notebook through papermill, a report, skip and resume, and the
one-line errors of a study (unknown profile or step, missing data, a failing notebook)."""

from __future__ import annotations

import json

import pytest

from mfr.cli import main


def _one_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines()
           if ln.startswith("mfr study")]
    assert len(err) == 1, err
    return err[0]


def test_unknown_profile_step_and_missing_data(tmp_path, capsys, monkeypatch):
    assert main(["study", "--profile", "nope", "--out", str(tmp_path / "s")]) == 2
    msg = _one_line(capsys)
    assert "no such config profile" in msg and "'demo'" in msg and "'thesis'" in msg
    assert main(["study", "--profile", "demo", "--only", "train", "--out",
                 str(tmp_path / "s")]) == 2
    msg = _one_line(capsys)
    assert "unknown step 'train'" in msg and "partition, baseline, finetune_N10" in msg
    monkeypatch.setenv("MFR_DATA", str(tmp_path / "data"))
    assert main(["study", "--profile", "thesis", "--out", str(tmp_path / "t")]) == 2
    msg = _one_line(capsys)
    assert str(tmp_path / "data" / "rmfrd") in msg and "mfr data fetch rmfrd" in msg
    assert not (tmp_path / "t").exists()


@pytest.fixture(scope="module")
def study(tiny_study):
    """The tiny study of conftest.py (TINY_PROFILE), run once per session."""
    return tiny_study.profile, tiny_study.out


def test_a_study_runs_every_notebook_and_writes_a_report(study):
    pytest.importorskip("tf_keras_vis")
    _, out = study
    ledger = json.loads((out / "study.json").read_text())
    assert sorted(s for s, r in ledger["steps"].items() if r["status"] == "complete") == [
        "baseline", "evaluation", "finetune_N10", "gradcam", "pairs", "partition"]
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == [
        "01_partition.ipynb", "02_baseline.ipynb", "03_finetune_N10.ipynb",
        "04_analysis.ipynb", "05_gradcam.ipynb", "06_pairs.ipynb"]
    for name in ("partition", "baseline", "train_N10", "evaluation", "gradcam", "pairs"):
        assert json.loads((out / name / "run.json").read_text())["status"] == "complete", name
    report = (out / "REPORT.md").read_text()
    assert "This is the offline demo" in report
    assert "1.278899" in report and "Table 4.2" in report  # the thesis's values beside
    for rel in ("evaluation/fig_5_3_distances.png", "evaluation/fig_5_5_gap.png",
                "evaluation/roc.png", "gradcam/overlays_masked.png", "pairs/table_5_2.png"):
        assert f"]({rel})" in report and (out / rel).is_file(), rel
    assert "SENet50 pre-trained" not in report and "random init" in report
    html = (out / "REPORT.html").read_text()
    assert html.count("data:image/png;base64,") >= 9 and "<table>" in html
    assert "1.3828" in report  # the thesis's Table 5.2 beside the verified pairs
    text = (out / "notebooks" / "03_finetune_N10.ipynb").read_text()
    assert "image/png" in text and "trainable_layers = 10" in text  # the injected parameters


def test_a_second_run_skips_every_step(study, capsys):
    profile, out = study
    before = (out / "evaluation" / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(["study", "--profile", str(profile), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "ran: nothing" in printed
    assert (out / "evaluation" / "metrics.json").read_bytes() == before


def test_a_changed_input_reruns_what_depends_on_it_and_a_failure_names_the_notebook(
        study, capsys):
    profile, out = study
    # the evaluation alone, when its folder is gone (an interrupted study resumes)
    import shutil

    shutil.rmtree(out / "evaluation")
    assert main(["study", "--profile", str(profile), "--out", str(out), "--no-progress"]) == 0
    assert "ran: evaluation; skipped" in capsys.readouterr().out
    # a failing notebook stops the study at its step and points to the executed notebook
    (out / "partition" / "test.csv").unlink()
    assert main(["study", "--profile", str(profile), "--out", str(out), "--only", "baseline",
                 "--force", "--no-progress"]) == 2
    msg = _one_line(capsys)
    assert "step baseline failed" in msg and str(out / "notebooks" / "02_baseline.ipynb") in msg
    assert "test.csv" in msg
    ledger = json.loads((out / "study.json").read_text())
    assert ledger["steps"]["baseline"]["status"] == "failed"  # never left "running"
    assert "step baseline failed" in ledger["steps"]["baseline"]["error"]
    assert ledger["steps"]["finetune_N10"]["status"] == "complete"  # finished steps are kept


def test_a_committed_study_is_redone_where_it_is_cloned(study, tmp_path, capsys):
    """A study folder as git keeps it (no data, cache or arrays; run records made elsewhere)
    is recomputed in place by the next `mfr study`, not refused."""
    import shutil

    profile, out = study
    moved = tmp_path / "clone"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns(
        "synthetic", "cache", "embeddings", "checkpoints", "*.npy", "*.npz", "*.h5", "*.csv"))
    for step in ("partition", "baseline"):
        assert main(["study", "--profile", str(profile), "--out", str(moved), "--only", step,
                     "--no-progress"]) == 0, capsys.readouterr().err
    run = json.loads((moved / "partition" / "run.json").read_text())
    assert run["fingerprint"]["data_root"].startswith(str(moved / "synthetic"))
    assert (moved / "partition" / "test.csv").is_file()
    assert json.loads((moved / "baseline" / "run.json").read_text())["status"] == "complete"


def test_the_plan_of_seeds_and_what_each_step_waits_for(tmp_path):
    """--seeds adds a fine-tuning step per N and extra seed; fine-tuning follows the baseline
    (their image cache), the evaluation reads every run, Grad-CAM the study seed's runs."""
    from mfr.core.config import load_config
    from mfr.study.executors import dependencies
    from mfr.study.runner import plan

    cfg = load_config("demo").replace(seeds=(2021, 2023, 2022, 2023))
    steps = plan(cfg, "demo", tmp_path)
    names = [s.name for s in steps]
    assert names == ["partition", "baseline", "finetune_N10", "finetune_N30",
                     "finetune_N10_s2022", "finetune_N10_s2023", "finetune_N30_s2022",
                     "finetune_N30_s2023", "evaluation", "gradcam", "pairs"]
    deps = dependencies(steps)
    assert deps["finetune_N30_s2022"] == ["partition", "baseline"]
    assert deps["evaluation"] == ["partition", "baseline", *names[2:8]]
    assert deps["gradcam"] == ["partition", "baseline", "finetune_N10", "finetune_N30"]
    by = {s.name: s for s in steps}
    seeded = by["finetune_N30_s2022"]
    assert seeded.parameters["seed"] == 2022 and seeded.run_dir == tmp_path / "train_N30_s2022"
    assert seeded.parameters["run_dir"] == str(tmp_path / "train_N30_s2022")
    assert seeded.output_notebook == "03_finetune_N30_s2022.ipynb"
    assert by["finetune_N10"].output_notebook == "03_finetune_N10.ipynb"
    assert "seed" not in by["finetune_N10"].parameters  # the study seed: as before --seeds
    # --only picks steps, and a step waits only for the chosen ones
    assert dependencies([by["finetune_N10"], by["evaluation"]])["evaluation"] == ["finetune_N10"]


def test_each_kernel_has_socket_paths_of_its_own():
    """Two kernels started at once (the Ray executor) must not pick the same IPC sockets, nor
    leave them in the study folder."""
    from pathlib import Path

    from mfr.study.runner import _ipc_kernel_manager

    manager = _ipc_kernel_manager()
    a, b = manager(), manager()
    assert a.transport == b.transport == "ipc"
    assert a.ip != b.ip and Path(a.ip).is_absolute() and Path(a.ip).name.startswith("mfr-kernel-")
