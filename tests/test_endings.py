"""Issue 28: every way a run ends marks it and releases its lock (a signal to the CLI, a
notebook kernel interrupted or killed, a diverging training's exit 3, a missing Jupyter
kernel, a full disk), and a study's kernels import nothing from the study folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mfr.cli import main
from mfr.core import provenance

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
PROFILE = "weights: null\ntrainable_layers: [10]\nepochs: 1\nsample_subjects: 5\n"


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None, timeout: float = 120):
    t0 = time.monotonic()
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"ended before {what}: {proc.stderr.read()}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.1)


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- the CLI

_SLOW_PARTITION = """
import sys, time
import mfr.study.steps
from mfr.cli import main
from mfr.core.provenance import claim

def slow(config, out_dir, **kw):  # claims its folder as partition_step does, then works on
    claim(out_dir, "partition", {"slow": 1})
    time.sleep(120)

mfr.study.steps.partition_step = slow
sys.exit(main(["partition", "--data-root", sys.argv[1], "--out", sys.argv[2]]))
"""


@pytest.mark.parametrize(("sig", "status", "said"), [
    (signal.SIGTERM, 143, "interrupted (SIGTERM)"),
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGHUP, 129, "interrupted (SIGHUP)"),
])
def test_a_signal_to_the_cli_ends_the_run_in_order(tmp_path, sig, status, said):
    out = tmp_path / "p"
    p = subprocess.Popen([sys.executable, "-c", _SLOW_PARTITION, str(tmp_path), str(out)],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _status(out) == "running", "running run.json", p)
        assert (tmp_path / ".p.lock").is_file()
        p.send_signal(sig)
        assert p.wait(timeout=60) == status
    finally:
        p.kill()
        p.wait()
    assert p.stderr.read().strip().splitlines()[-1] == f"mfr partition: {said}"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["error"].startswith("interrupted")
    assert not (tmp_path / ".p.lock").exists()


def test_a_diverging_training_exits_3_with_its_run_marked(parted, tmp_path, monkeypatch, capsys):
    """`mfr train`'s exit 3 (a non-finite loss) is a return, not an error: its run is marked
    failed with the reason and unlocked all the same."""
    import mfr.training.fit as fit
    from mfr.training.fit import NonFiniteLossError

    def diverge(*a, **k):
        raise NonFiniteLossError("non-finite training loss in epoch 1, batch 2 of 3")

    from mfr.backbones import get_backbone

    # no network needed
    monkeypatch.setattr(type(get_backbone("senet50")), "core", lambda self, config: None)
    monkeypatch.setattr(fit, "train_siamese", diverge)
    out = tmp_path / "t"
    assert main(["train", "--pairs", str(parted[1]), "--out", str(out), "--epochs", "1",
                 "--trainable-layers", "10", "--weights", "none", "--no-progress"]) == 3
    assert "non-finite training loss" in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["error"].startswith("NonFiniteLossError")
    assert not (tmp_path / ".t.lock").exists()


_SMALL_DISK = """
import resource, signal, sys
import numpy as np
from mfr.cli import _os_error_line
from mfr.core.outputs import save_npy, write_json
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))  # a disk with 3 kB free
write_json(sys.argv[1] + "/small.json", {"fits": True})
for write in (lambda: write_json(sys.argv[1] + "/big.json", list(range(10_000))),
              lambda: save_npy(sys.argv[1] + "/big.npy", np.zeros(10_000))):
    try:
        write()
    except OSError as e:
        print(_os_error_line(e))
"""


def test_a_full_disk_names_the_file(tmp_path):
    """An OSError while writing an output names that file (mfr.core.outputs), not the
    temporary one or none, and the CLI says it in one line: FILE: what went wrong."""
    r = subprocess.run([sys.executable, "-c", _SMALL_DISK, str(tmp_path)], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    json_line, npy_line = r.stdout.splitlines()
    assert json_line == f"{tmp_path / 'big.json'}: File too large"
    assert npy_line.startswith(f"{tmp_path / 'big.npy'}: could not be written (10000 requested")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.json"]  # no temporary left


# --------------------------------------------------------------------------- mfr study

#: stands in for notebooks/01_partition.ipynb: claims the partition folder, then works on
_CLAIM_AND_WAIT = """\
import time
from pathlib import Path
from mfr.core.provenance import claim, marks_its_runs

@marks_its_runs
def step():
    claim(Path(out_dir) / "partition", "partition", {"test": 1})
    time.sleep(300)

step()
"""

#: imports what a study notebook imports, as the folder a kernel starts in would shadow them
_IMPORTS = """\
import matplotlib
import numpy
import mfr
from mfr.core.config import load_config
"""


def _notebooks(folder: Path, source: str) -> Path:
    """A notebooks folder whose 01_partition.ipynb runs `source` after its parameters."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("config = None\ndata_root = None\nout_dir = None",
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, folder / "01_partition.ipynb")
    return folder


_STUDY = """
import sys
from pathlib import Path
import mfr.study.runner as runner
from mfr.cli import main
runner.NOTEBOOK_DIR = Path(sys.argv[1])
sys.exit(main(["study", "--profile", sys.argv[2], "--out", sys.argv[3], "--only", "partition",
               "--no-progress"]))
"""


def _study(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    profile = tmp_path / "tiny.yaml"
    profile.write_text(PROFILE)
    out = tmp_path / "study"
    nbs = _notebooks(tmp_path / "nbs", _CLAIM_AND_WAIT)
    p = subprocess.Popen([sys.executable, "-c", _STUDY, str(nbs), str(profile), str(out)],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    _wait_for(lambda: _status(out / "partition") == "running", "step running", p)
    return p, out


def _kernel_of(driver: int) -> int:
    """The process id of the driver's Jupyter kernel (its child running ipykernel)."""
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if stat[1] == str(driver) and b"ipykernel" in cmd:
            return int(d.name)
    raise AssertionError(f"no kernel under process {driver}")


@pytest.mark.slow  # a study's driver (TensorFlow imported) and a kernel: 15-30 s
def test_ctrl_c_in_a_study_ends_the_kernels_step_in_order(tmp_path):
    p, out = _study(tmp_path)
    try:
        p.send_signal(signal.SIGINT)  # Ctrl-C: the study's process (the kernel has its own)
        assert p.wait(timeout=120) == 130
    finally:
        p.kill()
        p.wait()
    assert p.stderr.read().strip().splitlines()[-1] == "mfr study: interrupted"
    run = json.loads((out / "partition" / "run.json").read_text())
    assert run["status"] == "failed" and run["error"].startswith("interrupted")
    assert not (out / ".partition.lock").exists()
    step = json.loads((out / "study.json").read_text())["steps"]["partition"]
    assert step["status"] == "interrupted"


@pytest.mark.slow  # a study's driver (TensorFlow imported) and a kernel: 15-30 s
def test_a_dead_kernel_fails_its_step_and_its_run(tmp_path):
    p, out = _study(tmp_path)
    try:
        os.kill(_kernel_of(p.pid), signal.SIGKILL)  # out of memory, say
        assert p.wait(timeout=120) == 2
    finally:
        p.kill()
        p.wait()
    err = p.stderr.read().strip().splitlines()[-1]
    assert err.startswith("mfr study: error: step partition failed: its kernel died"), err
    run = json.loads((out / "partition" / "run.json").read_text())  # marked by the study
    assert run["status"] == "failed" and "step partition failed" in run["error"]
    assert not (out / ".partition.lock").exists()
    step = json.loads((out / "study.json").read_text())["steps"]["partition"]
    assert step["status"] == "failed" and "kernel died" in step["error"]


def test_a_missing_jupyter_kernel_is_one_line_before_any_step(tmp_path, capsys):
    profile = tmp_path / "tiny.yaml"
    profile.write_text(PROFILE)
    out = tmp_path / "study"
    assert main(["study", "--profile", str(profile), "--out", str(out), "--kernel",
                 "no-such-kernel", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mfr study: error: no Jupyter kernel named 'no-such-kernel'"), err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_nothing_planted_in_a_study_folder_runs(tmp_path, monkeypatch):
    """A study folder copied from elsewhere is data: a matplotlib.py, numpy.py or mfr.py in
    it (first on a kernel's import path when the kernel started there) never runs; and a
    kernel that finished its notebook is shut down without an interrupt (the
    `KeyboardInterrupt caught in kernel.` it logged)."""
    from jupyter_client.manager import AsyncKernelManager

    from mfr.study import runner
    from mfr.study.executors import StepContext

    out = tmp_path / "study"
    out.mkdir()
    marker = tmp_path / "ran"
    for name in ("matplotlib", "numpy", "mfr", "ipython_config", "ipython_kernel_config"):
        (out / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name} ')\n")
    (out / "matplotlibrc").write_text("backend: module://planted_backend\n")
    (out / "planted_backend.py").write_text(f"open({str(marker)!r}, 'a').write('rc ')\n")
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", _notebooks(tmp_path / "nbs", _IMPORTS))
    interrupts = []
    real = AsyncKernelManager._async_interrupt_kernel

    async def counted(self):
        interrupts.append(1)
        await real(self)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", counted)
    step = runner.Step("partition", "01_partition.ipynb", {"out_dir": str(out)},
                       out / "partition")
    nb = runner.run_notebook(step, StepContext(out, progress=False))
    assert nb.is_file() and not marker.exists(), marker.read_text()
    assert interrupts == []
    assert sorted(p.name for p in out.iterdir()) == [
        "ipython_config.py", "ipython_kernel_config.py", "matplotlib.py", "matplotlibrc",
        "mfr.py", "notebooks", "numpy.py", "planted_backend.py"]  # and nothing else left


def test_a_failed_step_is_resumed_by_the_next_study(tmp_path):
    """study.json's failed/interrupted step is resumed (not replaced) when its parameters
    are the same: what the runner decided for a step left `running` before."""
    from mfr.core.config import load_config
    from mfr.study.runner import StudyResult, _Ledger, plan

    profile = tmp_path / "tiny.yaml"
    profile.write_text(PROFILE)
    cfg = load_config(profile)
    steps = plan(cfg, profile, tmp_path / "s")
    by = {s.name: s for s in steps}
    for status in ("running", "failed", "interrupted"):
        ledger = {"steps": {"baseline": {"status": status,
                                         "parameters": by["baseline"].parameters}}}
        todo = _Ledger(ledger, tmp_path / "study.json", by, cfg, tmp_path / "s", False,
                       StudyResult(tmp_path / "s", ledger)).begin(by["baseline"])
        assert "force" not in todo.parameters, status
    assert provenance.release_unfinished(tmp_path / "nothing", "x") is False
