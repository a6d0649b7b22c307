"""`mfr study --executor ray`: the tiny study as Ray tasks on a local Ray instance writes the
bytes the local executor writes; a step whose worker is killed completes on retry; more seeds
run as more tasks; no Ray, or an address where no Ray answers, is one line and starts nothing.

One Ray study (about 2 minutes on 2 CPU cores) serves every test but the error ones.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest

from mfr.cli import main

ray = pytest.importorskip("ray")

KILLED = "finetune_N10"


def _one_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("mfr study")]
    assert len(err) == 1, err
    return err[0]


def test_no_ray_or_a_dead_address_is_one_line_and_starts_nothing(tmp_path, capsys,
                                                                  monkeypatch):
    was = ray.is_initialized()
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    assert main(["study", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                 "--out", str(tmp_path / "s"), "--no-progress"]) == 2
    assert time.perf_counter() - t0 < 15
    msg = _one_line(capsys)
    assert f"127.0.0.1:{port}" in msg and "no Ray cluster answers" in msg
    assert "ray start --head" in msg
    assert not (tmp_path / "s").exists() and ray.is_initialized() == was
    assert main(["study", "--ray-address", "localhost:1", "--out", str(tmp_path / "s")]) == 2
    assert "options of --executor ray" in _one_line(capsys)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["study", "--executor", "ray", "--out", str(tmp_path / "s")]) == 2
    msg = _one_line(capsys)
    assert "pip install 'mfr[cluster]'" in msg
    assert not (tmp_path / "s").exists()


def _dies_once(step, context):
    """A step runner whose worker process dies on the first attempt at KILLED (a file beside
    the study marks it), then runs the step's notebook."""
    from mfr.study.runner import run_notebook

    marker = context.out_dir.parent / f"killed_{step.name}"
    if step.name == KILLED and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return run_notebook(step, context)


@pytest.fixture(scope="module")
def ray_study(tiny_study, tmp_path_factory):
    from ray import cloudpickle

    from mfr.study.executors.ray_executor import RayExecutor
    from mfr.study.runner import run_study

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _dies_once, on the workers
    out = tmp_path_factory.mktemp("ray") / "out"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20)
    try:
        t0 = time.perf_counter()
        result = run_study(tiny_study.profile, out, progress=False,
                           executor=RayExecutor(runner=_dies_once, max_retries=1))
        seconds = time.perf_counter() - t0
        yield out, result, seconds
    finally:
        ray.shutdown()


def _with_root(data: bytes, root) -> bytes:
    return data.replace(str(root).encode(), b"<study>")


def test_ray_writes_the_bytes_of_the_local_executor(ray_study, tiny_study):
    out, result, seconds = ray_study
    assert sorted(result.ran) == ["baseline", "evaluation", "finetune_N10", "gradcam",
                                  "pairs", "partition"]
    for rel, local in tiny_study.files.items():
        assert _with_root((out / rel).read_bytes(), out) == \
            _with_root(local, tiny_study.out), rel
    for name in ("partition", "baseline", "train_N10", "evaluation", "gradcam", "pairs"):
        assert json.loads((out / name / "run.json").read_text())["status"] == "complete", name
    assert (out / "REPORT.md").is_file()
    print(f"ray study: {seconds:.0f} s")


def test_a_step_whose_worker_is_killed_completes_on_retry(ray_study):
    out, _, _ = ray_study
    marker = out.parent / f"killed_{KILLED}"
    assert marker.is_file()  # the first attempt's worker died (os._exit)
    ledger = json.loads((out / "study.json").read_text())
    assert ledger["steps"][KILLED]["status"] == "complete"
    assert (out / "notebooks" / "03_finetune_N10.ipynb").is_file()
    run = json.loads((out / "train_N10" / "run.json").read_text())
    assert run["status"] == "complete" and run["epochs_trained"] == 1


def test_more_seeds_run_as_more_tasks_and_the_evaluation_reports_their_spread(
        ray_study, tiny_study):
    from mfr.study.executors.ray_executor import RayExecutor
    from mfr.study.runner import run_study

    out, _, _ = ray_study
    result = run_study(tiny_study.profile, out, progress=False, seeds=[2022],
                       executor=RayExecutor())
    # the evaluation reads every run; the Table 5.2 step reads the evaluation's thresholds
    assert sorted(result.ran) == ["evaluation", "finetune_N10_s2022", "pairs"]
    run = json.loads((out / "train_N10_s2022" / "run.json").read_text())
    assert run["status"] == "complete" and run["config"]["seed"] == 2022
    assert run["data_parallel"] is False and run["devices"] == 1
    # the study seed's run is untouched, the other seed trained on another order
    assert (out / "train_N10" / "history.csv").read_bytes() == \
        tiny_study.files["train_N10/history.csv"]
    assert (out / "train_N10_s2022" / "history.csv").read_bytes() != \
        tiny_study.files["train_N10/history.csv"]
    seeds = (out / "evaluation" / "seeds.md").read_text()
    assert "2021,2022" in seeds
    assert "### Spread across seeds" in (out / "REPORT.md").read_text()
