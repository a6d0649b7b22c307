"""The command line and the notebooks do not print TensorFlow's C++ start-up banners, with
TensorFlow's oneDNN kernels on or off (on by default on AVX-512 VNNI/BF16 CPUs, forced here by
``TF_ENABLE_ONEDNN_OPTS=1`` on any x86 CPU); other stderr output passes through untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mfr.core.numerics import onednn_setting
from mfr.core.quiet import filtered_fd2, is_banner

ROOT = Path(__file__).resolve().parent.parent
BANNERS = ("cpu_feature_guard", "absl::InitializeLog", "oneDNN", "port.cc")
ONEDNN_LINE = ("I0000 00:00:1796425889.439542    3199 port.cc:153] oneDNN custom operations are "
               "on. You may see slightly different numerical results due to floating-point "
               "round-off errors from different computation orders. To turn them off, set the "
               "environment variable `TF_ENABLE_ONEDNN_OPTS=0`.")
ABSL_LINE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def _mfr(args: list[str], onednn: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND="tensorflow", PYTHONPATH=str(ROOT), TF_ENABLE_ONEDNN_OPTS=onednn)
    return subprocess.run([sys.executable, "-m", "mfr.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.stderr_lines
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_no_tensorflow_banners_on_the_command_line(onednn):
    p = _mfr(["train", "--trainable-layers", "10", "--dry-run"], onednn)
    assert p.returncode == 0, p.stderr
    assert "trainable params: 526,464" in p.stdout
    for banner in BANNERS:
        assert banner not in p.stderr, p.stderr
    # a bad input: one line, whatever oneDNN does
    p = _mfr(["train", "--trainable-layers", "9999", "--dry-run"], onednn)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("mfr train: error: "), p.stderr


def test_filter_drops_exactly_the_banners_in_order(capfd):
    with filtered_fd2():
        os.write(2, f"first\n{ABSL_LINE}\n{ONEDNN_LINE}\n".encode())
        os.write(2, b"a Python warning\n")
        os.write(2, b"W0000 00:00:1796425889.4 3199 some.cc:1] a warning record\nno newline")
    err = capfd.readouterr().err
    level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    kept_warning = "W0000 00:00:1796425889.4 3199 some.cc:1] a warning record\n" if level < 2 else ""
    if level >= 1:
        assert err == f"first\na Python warning\n{kept_warning}no newline"
    else:
        assert ONEDNN_LINE in err and ABSL_LINE in err


def test_banner_rule_follows_the_log_level():
    cpu_tail = ("To enable the following instructions: AVX2 FMA, in other operations, rebuild "
                "TensorFlow with the appropriate compiler flags.")
    for line in (ONEDNN_LINE, ABSL_LINE, cpu_tail):
        assert is_banner(line, 1) and is_banner(line, 2) and not is_banner(line, 0)
    warning = "W0000 00:00:17964.5    3577 x.cc:1] a warning"
    assert not is_banner(warning, 1) and is_banner(warning, 2)
    error = "E0000 00:00:17964.5    3577 x.cc:1] an error"
    assert not is_banner(error, 2) and is_banner(error, 3)
    for line in ("mfr train: error: x", "I like port.cc:153] in prose", "", "Traceback"):
        assert not is_banner(line, 3)


def test_onednn_setting_as_tensorflow_decides_it():
    x86 = dict(machine="x86_64", ask_tensorflow=False)
    assert onednn_setting("1", frozenset(), **x86)["on"] is True
    assert onednn_setting("false", frozenset({"avx512_vnni"}), **x86)["on"] is False
    on = onednn_setting("", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}), **x86)
    assert on["on"] is True and on["cpu_flags"] == ["avx512_bf16", "avx512_vnni"]
    off = onednn_setting("", frozenset({"avx2", "avx512f"}), **x86)
    assert off["on"] is False and off["cpu_flags"] == [] and "none of" in off["why"]
    # TensorFlow's own answer, once it is imported, is the record
    import keras  # noqa: F401 - imports TensorFlow under the TensorFlow backend

    if "tensorflow" in sys.modules:
        from tensorflow.python.util import _pywrap_util_port

        assert onednn_setting()["on"] is bool(_pywrap_util_port.IsMklEnabled())


@pytest.mark.stderr_lines
def test_no_banners_from_a_notebook_kernel(tmp_path):
    """A kernel's C++ output reaches the terminal of whoever runs the notebook (papermill,
    `mfr study`), not the notebook: both are checked."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import sys\nimport mfr\nimport keras\n"
        "print('sum', float(keras.ops.sum(keras.ops.ones(3))))\nprint('kept', file=sys.stderr)")]
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND="tensorflow", PYTHONPATH=str(ROOT), TF_ENABLE_ONEDNN_OPTS="1")
    p = subprocess.run([sys.executable, "-m", "papermill", str(src), str(out), "-k", "python3",
                        "--no-progress-bar", "--cwd", str(ROOT)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    text = "".join(o.get("text", "") for c in nbformat.read(out, 4).cells
                   for o in c.get("outputs", []))
    assert "sum 3.0" in text and "kept" in text, text
    for banner in BANNERS:
        assert banner not in text and banner not in p.stderr, p.stderr
