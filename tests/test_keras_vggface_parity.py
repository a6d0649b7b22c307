"""mfr's SENet50 against the ORIGINAL keras-vggface 0.6 SENET50 run under Keras 2 (tf-keras).

The released weights cannot be downloaded in CI, so ``tests/keras2_reference.py`` builds
keras-vggface's own network (``VGGFace(model='senet50', include_top=False,
input_shape=(224, 224, 3), pooling='avg', weights=None)``) in a separate Keras-2 environment,
randomises every weight (BN moving statistics included), saves it with Keras 2's
``save_weights`` -- the legacy HDF5 format of the released file -- and records its embeddings of
a few images. Here that file is loaded with ``mfr.backbones.vggface.senet50(weights=...)`` and the
embeddings compared; the reverse direction (a file written by ``save_legacy_h5`` loaded by
keras-vggface's ``model.load_weights``) is checked as well.

Skipped unless ``MFR_KERAS2_PYTHON`` names the Python of such an environment. The cheap one
(~5 s, ~45 MB) reuses the TensorFlow of mfr's ``.venv`` (tf-keras 2.21 needs TF 2.21) and adds
only three pure-Python packages::

    .venv/bin/python -m venv .venv-keras2
    .venv/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))" \
        > "$(.venv-keras2/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))")/mfr_venv.pth"
    .venv-keras2/bin/pip install --no-deps "tf-keras==2.21.*" keras-vggface==0.6 keras-applications==1.0.8
    MFR_KERAS2_PYTHON=.venv-keras2/bin/python make test

(A self-contained one: ``pip install "tensorflow-cpu==2.21.*" "tf-keras==2.21.*" h5py`` and the
same ``--no-deps`` line; ~45 s and 2.2 GB, since tf-keras pulls the full ``tensorflow`` wheel.)
``keras`` in mfr's site-packages is Keras 3, which the helper never imports: it aliases
``keras`` to ``tf_keras`` before importing keras-vggface.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from mfr.backbones.formats.legacy_h5 import save_legacy_h5
from mfr.backbones.vggface import VGGFACE_NAMES, build_senet50, senet50
from mfr.backbones.vggface.senet50 import vggface_name

HELPER = Path(__file__).resolve().parent / "keras2_reference.py"
ENV_VAR = "MFR_KERAS2_PYTHON"
# Observed (TF and JAX backends, 2026-11): 1 - cos <= 2.4e-7, max |diff| <= 4.4e-6 * max |ref|.
# Negative controls on the same data: BN epsilon 1e-3 instead of 1e-4 gives 1 - cos = 7e-5;
# epsilon 1e-5 gives max |diff| = 2.4e-3 * max |ref|; one BN's variance * 1.01 gives 3.2e-3.
MIN_COSINE = 0.99999
MAX_REL_ABS_DIFF = 1e-4  # max |mfr - keras-vggface| / max |keras-vggface|


def _keras2_python() -> str:
    python = os.environ.get(ENV_VAR)
    if not python:
        pytest.skip(f"{ENV_VAR} is unset (the Python of a tf-keras + keras-vggface 0.6 venv)")
    if not (Path(python).is_file() and os.access(python, os.X_OK)):
        pytest.skip(f"{ENV_VAR}={python!r} is not an executable file")
    return python


def _run_helper(*args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [_keras2_python(), str(HELPER), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=HELPER.parent,
        timeout=600,
    )
    assert proc.returncode == 0, f"{HELPER.name} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def keras2(tmp_path_factory) -> Path:
    """Directory with keras-vggface's weights file, inputs, embeddings and layer list."""
    _keras2_python()
    out = tmp_path_factory.mktemp("keras2_reference")
    _run_helper("--out", str(out), "--n-images", "3", "--seed", "0")
    return out


@pytest.fixture(scope="module")
def k2_layers(keras2) -> dict:
    return json.loads((keras2 / "layers.json").read_text())


def _norm(value):
    return list(value) if isinstance(value, tuple | list) else value


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype("float64"), b.astype("float64")
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.backend
def test_layer_list_matches_keras_vggface(k2_layers):
    model = build_senet50(kernel_initializer="zeros")
    ref = k2_layers["layers"]
    assert k2_layers["params"] == model.count_params()
    assert len(ref) == len(model.layers)
    for layer, r in zip(model.layers, ref, strict=True):
        where = (r["index"], r["name"], layer.name)
        assert type(layer).__name__ == r["class"], where
        assert [list(w.shape) for w in layer.weights] == r["weights"], where
        if r["weights"]:
            assert VGGFACE_NAMES[layer.name] == r["name"], where
        config = layer.get_config()
        for key, value in r["config"].items():
            assert _norm(config.get(key)) == value, (*where, key)


@pytest.mark.backend
def test_trainable_weights_match_the_thesis_code_on_keras_vggface(k2_layers):
    """For each N, mfr trains exactly the weights the thesis's loop makes trainable in
    keras-vggface's own model (names as `<layer>/<weight>:0` there)."""
    from mfr.training.siamese import set_trainable

    model = build_senet50(kernel_initializer="zeros")
    for n, expected in k2_layers["trainable_weights_by_n"].items():
        set_trainable(model, int(n))
        got = [[f"{VGGFACE_NAMES[layer.name]}/{w.name}:0", list(w.shape)]
               for layer in model.layers for w in layer.trainable_weights]
        assert sorted(got) == sorted(expected), f"N={n}"
        assert len(expected) > 0


def test_keras_vggface_layer_list_is_the_shared_reference(k2_layers, reference_layers):
    """The Keras-2 model the parity tests use is the network the reference JSON describes."""
    ref = json.loads(Path(reference_layers).read_text())
    assert k2_layers["params"] == ref["params"]
    assert len(k2_layers["layers"]) == ref["n_layers"]
    for a, b in zip(k2_layers["layers"], ref["layers"], strict=True):
        assert a["class"] == b["class"], (a, b)
        assert a["weights"] == b["weights"], (a, b)
        assert (a["name"] if a["weights"] else None) == b["name"], (a, b)


@pytest.mark.backend
def test_embeddings_match_keras_vggface(keras2):
    model = senet50(weights=keras2 / "senet50_k2.h5")
    inputs = np.load(keras2 / "inputs.npy")
    ref = np.load(keras2 / "out_k2.npy")
    out = keras.ops.convert_to_numpy(model.predict(inputs, batch_size=len(inputs), verbose=0))
    assert out.shape == ref.shape == (len(inputs), 2048)
    cos = _cosines(out, ref)
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert (cos >= MIN_COSINE).all(), f"cosines {cos}"
    assert rel <= MAX_REL_ABS_DIFF, f"max |diff| / max |ref| = {rel:.3g}"


@pytest.mark.backend
def test_save_legacy_h5_loads_in_keras_vggface(keras2, tmp_path):
    """A file written by mfr loads into keras-vggface the way its released file does."""
    model = senet50(weights=keras2 / "senet50_k2.h5")
    written = save_legacy_h5(model, tmp_path / "mfr_written.h5", file_name=vggface_name)
    _run_helper(
        "--out", str(tmp_path), "--load", str(written), "--inputs", str(keras2 / "inputs.npy")
    )
    ref = np.load(keras2 / "out_k2.npy")
    out = np.load(tmp_path / "out_loaded.npy")
    # same framework, same weights, same inputs: equal up to float noise
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
