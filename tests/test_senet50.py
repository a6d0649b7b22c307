"""SENet50 structure against keras-vggface's reference layer list; forward pass; TF == JAX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from mfr.backbones.formats.legacy_h5 import save_legacy_h5
from mfr.backbones.vggface import VGGFACE_NAMES, build_senet50, senet50

ROOT = Path(__file__).resolve().parent.parent
N_LAYERS = 287
N_PARAMS = 26_092_144


@pytest.fixture(scope="module")
def model():
    return build_senet50(kernel_initializer="zeros")  # fast under JAX; structure only


@pytest.fixture(scope="module")
def reference(reference_layers):
    return json.loads(Path(reference_layers).read_text())


def _images(n=2, seed=0):
    """Preprocessed-looking float32 inputs (pixel values minus a mean)."""
    return np.random.default_rng(seed).uniform(-130, 160, (n, 224, 224, 3)).astype("float32")


@pytest.mark.backend
def test_full_layer_sequence_matches_reference(model, reference):
    ref = reference["layers"]
    assert len(ref) == reference["n_layers"] == N_LAYERS
    assert len(model.layers) == N_LAYERS
    for i, (layer, r) in enumerate(zip(model.layers, ref, strict=True)):
        assert type(layer).__name__ == r["class"], (i, layer.name, r)
        if r["name"] is not None:
            assert layer.name == r["name"].replace("/", "_"), (i, r)
            assert VGGFACE_NAMES[layer.name] == r["name"]
        else:
            assert layer.name not in VGGFACE_NAMES
        assert [list(w.shape) for w in layer.weights] == r["weights"], (i, layer.name)
    # spot checks named in the spec: the stage's first block ends proj, Multiply, proj bn, Add
    assert [type(x).__name__ for x in model.layers[245:250]] == [
        "Activation",
        "Conv2D",
        "Multiply",
        "BatchNormalization",
        "Add",
    ]
    assert model.layers[246].name == "conv5_1_1x1_proj"
    assert model.layers[248].name == "conv5_1_1x1_proj_bn"


@pytest.mark.backend
def test_params_shapes_and_config(model, reference):
    assert model.count_params() == reference["params"] == N_PARAMS
    assert model.name == "senet50"
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 2048)
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names)
    assert "/" not in "".join(names)
    assert set(VGGFACE_NAMES.values()) == {r["name"] for r in reference["layers"] if r["name"]}
    stem = model.get_layer("conv1_7x7_s2")
    assert stem.strides == (2, 2) and stem.padding == "same" and not stem.use_bias
    assert model.get_layer("pool1").output.shape[1:] == (55, 55, 64)
    assert model.get_layer("conv2_1_3x3").padding == "same"
    assert model.get_layer("conv3_1_1x1_reduce").strides == (2, 2)
    assert model.get_layer("conv2_1_1x1_reduce").strides == (1, 1)
    assert model.get_layer("conv2_1_1x1_down").use_bias
    bns = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert {bn.epsilon for bn in bns} == {1e-4}
    for stage, hw, c in ((2, 55, 256), (3, 28, 512), (4, 14, 1024), (5, 7, 2048)):
        last = {2: 3, 3: 4, 4: 6, 5: 3}[stage]
        assert model.get_layer(f"conv{stage}_{last}_relu").output.shape[1:] == (hw, hw, c)


@pytest.mark.backend
def test_order_survives_serialization(model):
    clone = keras.Model.from_config(model.get_config())
    assert [x.name for x in clone.layers] == [x.name for x in model.layers]


@pytest.mark.backend
def test_max_pooling_variant(reference):
    m = build_senet50(pooling="max", kernel_initializer="zeros")
    assert len(m.layers) == N_LAYERS
    assert m.count_params() == N_PARAMS
    assert type(m.layers[-1]).__name__ == "GlobalMaxPooling2D"
    assert type(m.layers[-2]).__name__ == "AveragePooling2D"
    assert m.output_shape == (None, 2048)
    with pytest.raises(ValueError, match="pooling"):
        build_senet50(pooling="sum")


@pytest.mark.backend
def test_weights_argument_errors():
    with pytest.raises(ValueError, match="not a file"):
        senet50(weights="/nonexistent/senet50.h5")


def _run_backend(backend: str, weights: Path, images: Path, out: Path) -> None:
    code = textwrap.dedent(
        f"""
        import numpy as np
        from mfr.backbones.vggface import senet50
        m = senet50(weights={str(weights)!r})
        np.save({str(out)!r}, np.asarray(m.predict_on_batch(np.load({str(images)!r}))))
        """
    )
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_tensorflow_and_jax_give_identical_embeddings(tmp_path):
    """Random weights (non-trivial BN statistics), 2 images: this process's backend against
    the other one (TensorFlow <-> JAX) in a subprocess, through a legacy .h5 file."""
    pytest.importorskip("jax")
    pytest.importorskip("tensorflow")
    current = keras.backend.backend()
    other = {"tensorflow": "jax", "jax": "tensorflow"}[current]
    m = build_senet50()
    rng = np.random.default_rng(1)
    for layer in m.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, g.shape),
                    rng.normal(0, 0.1, b.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 1.5, var.shape),
                ]
            )
    weights = save_legacy_h5(m, tmp_path / "random.h5")
    images = tmp_path / "images.npy"
    np.save(images, _images(2, seed=3))
    out = tmp_path / f"{other}.npy"
    _run_backend(other, weights, images, out)
    here = np.asarray(keras.ops.convert_to_numpy(m.predict_on_batch(np.load(images))))
    there = np.load(out)
    assert here.shape == there.shape == (2, 2048) and np.isfinite(here).all()
    scale = np.abs(here).max()
    assert scale > 0 and np.abs(here[0] - here[1]).max() > 1e-3 * scale
    np.testing.assert_allclose(there, here, rtol=1e-4, atol=1e-4 * scale)
