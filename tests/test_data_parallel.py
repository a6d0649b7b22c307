"""--data-parallel: the same tiny fine-tuning run and the same embeddings on 2 host devices
(JAX, ``XLA_FLAGS=--xla_force_host_platform_device_count=2``) as on 1; under TensorFlow the
flag is a one-line error.

Tolerance: float32, rtol 1e-5 for losses and weights (1e-4 for the weights' change over the
run, a small difference of two nearby numbers), 1e-6 for unit embeddings. Sharded, each device
sums its share of the batch and the shares are then added (an all-reduce), so the float32
additions happen in another order than on one device; nothing else differs (the padding rows
have weight 0). Observed: 1e-6 relative on the losses, 2e-6 on the weights, 5e-6 on their
change, 2e-7 on the embeddings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from mfr.cli import main

ROOT = Path(__file__).resolve().parent.parent

_RUN = r"""
import sys, warnings
import keras, numpy as np
sys.path.insert(0, sys.argv[2])
from tiny_models import tiny_senet
from mfr.training import siamese
from mfr.core.config import StudyConfig
from mfr.evaluation.embeddings import embed_images
from mfr.data.pairs import PairSet
from mfr.training.fit import train_siamese

assert keras.distribution.list_devices() == ["cpu:0", "cpu:1"], keras.distribution.list_devices()
images = np.random.default_rng(0).integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
def pairs(n, seed):
    r = np.random.default_rng(seed)
    return PairSet(r.integers(0, 8, n), r.integers(8, 16, n), r.integers(0, 2, n))
tr, va, te = pairs(21, 1), pairs(7, 2), pairs(7, 3)
out = {}
for dp in (0, 1):
    keras.utils.set_random_seed(7)
    model = tiny_senet()
    if dp == 0:
        siamese.set_trainable(model, 14)
        out["init"] = np.concatenate([np.ravel(w) for w in model.trainable_weights])
    # batch 5: 21 pairs make 4 batches of 5 and one of 1; 2 steps per call
    cfg = StudyConfig(epochs=3, batch_size=5, learning_rate=0.5, image_size=32,
                      steps_per_execution=2, data_parallel=bool(dp))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        r = train_siamese(model, 14, images, tr, va, te, config=cfg)
    out[f"history{dp}"] = r.history[["loss", "val_loss"]].to_numpy()
    out[f"weights{dp}"] = np.concatenate([np.ravel(w) for w in model.trainable_weights])
    out[f"distances{dp}"] = r.test_distances
    out[f"devices{dp}"] = r.devices
    out[f"said{dp}"] = np.array([str(w.message) for w in said if "padded" in str(w.message)])
    out[f"emb{dp}"] = embed_images(model, images, batch_size=5, progress=False,
                                   data_parallel=bool(dp))
np.savez(sys.argv[1], **out)
"""


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_two_devices_train_and_embed_as_one(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "r.npz"), str(ROOT / "tests")],
                       capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    r = np.load(tmp_path / "r.npz")
    assert (int(r["devices0"]), int(r["devices1"])) == (1, 2)
    assert list(r["said1"]) == ["batch 5 padded to 6 for 2 devices; the loss is the mean over "
                                "the 5 real pairs, exactly"]  # once, not once per epoch
    assert list(r["said0"]) == []
    h0, h1 = r["history0"], r["history1"]
    assert h0[0, 0] != h0[-1, 0]  # it trained
    np.testing.assert_allclose(h1, h0, rtol=1e-5)
    assert _rel(r["weights1"], r["weights0"]) <= 1e-5
    assert _rel(r["weights1"] - r["init"], r["weights0"] - r["init"]) <= 1e-4
    np.testing.assert_allclose(r["distances1"], r["distances0"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r["emb1"], r["emb0"], atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow error")
def test_data_parallel_under_tensorflow_is_one_line(tmp_path, capsys):
    for argv in (["train", "--trainable-layers", "10", "--pairs", str(tmp_path),
                  "--out", str(tmp_path / "t")],
                 ["embed", "--pairs", str(tmp_path), "--out", str(tmp_path / "e")]):
        assert main([*argv, "--data-parallel", "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "needs the JAX backend: run with KERAS_BACKEND=jax" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
