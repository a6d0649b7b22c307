"""The command line and the notebooks do not print TensorFlow's C++ start-up banners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_tensorflow_banners_on_the_command_line():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND="tensorflow", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "mfr.cli", "train", "--trainable-layers", "10",
                        "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "trainable params: 526,464" in p.stdout
    for banner in ("cpu_feature_guard", "absl::InitializeLog", "oneDNN"):
        assert banner not in p.stderr, p.stderr
