"""Reference outputs from the ORIGINAL keras-vggface 0.6 SENet50, run under Keras 2 (tf-keras).

Not a test module and not importable from the mfr venv: ``tests/test_keras_vggface_parity.py``
runs it with the Python of a separate Keras-2 virtual environment (``MFR_KERAS2_PYTHON``; how
to make one is in that module's docstring): tf-keras 2.21, keras-vggface 0.6 and
keras-applications 1.0.8 (the last two with ``--no-deps``) over TensorFlow 2.21.

keras-vggface 0.6 imports Keras 2 module paths (``keras.engine.topology``,
``keras.utils.data_utils``, ``keras_applications``); they are aliased to tf-keras before the
import. The network is built exactly by keras-vggface
(``VGGFace(model='senet50', include_top=False, input_shape=(224, 224, 3), pooling='avg',
weights=None)``); its weights are then randomised -- BatchNormalization moving statistics
included, set from the batch statistics of a calibration image and then perturbed, so that every
BN, ReLU and SE sigmoid works in its non-trivial range -- and saved with Keras 2's own
``save_weights(... .h5)``, the legacy HDF5 format of the released weights file.

Writes into ``--out``: ``senet50_k2.h5`` (the weights), ``inputs.npy`` (preprocessed float32
images), ``out_k2.npy`` (the (n, 2048) embeddings), ``layers.json`` (class, name and weight
shapes of ``model.layers`` in order). With ``--load FILE --inputs X.npy``: loads FILE (e.g. one
written by :func:`mfr.backbones.vggface.weights.save_legacy_h5`) the way keras-vggface loads its released
file and writes ``out_loaded.npy``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def _alias_keras2() -> None:
    """Make ``import keras...`` resolve to tf-keras (Keras 2) with keras-vggface's old paths."""
    import tf_keras
    import tf_keras.backend
    import tf_keras.layers
    import tf_keras.models
    import tf_keras.utils
    from tf_keras.src.utils import data_utils, layer_utils

    sys.modules["keras"] = tf_keras
    sys.modules["keras.backend"] = tf_keras.backend
    sys.modules["keras.layers"] = tf_keras.layers
    sys.modules["keras.models"] = tf_keras.models
    utils = types.ModuleType("keras.utils")  # tf_keras.utils plus the two old submodules
    utils.__dict__.update({k: v for k, v in vars(tf_keras.utils).items() if not k.startswith("__")})
    utils.layer_utils, utils.data_utils = layer_utils, data_utils
    sys.modules["keras.utils"] = utils
    sys.modules["keras.utils.layer_utils"] = layer_utils
    sys.modules["keras.utils.data_utils"] = data_utils
    engine = types.ModuleType("keras.engine")
    topology = types.ModuleType("keras.engine.topology")
    topology.get_source_inputs = tf_keras.utils.get_source_inputs
    engine.topology = topology
    sys.modules["keras.engine"] = engine
    sys.modules["keras.engine.topology"] = topology
    tf_keras.engine = engine


def _inbound(layer):
    node = layer._inbound_nodes[0]
    inbound = node.inbound_layers
    return inbound if isinstance(inbound, list) else [inbound]


def randomise(model, calib, seed: int) -> None:
    """Random weights; BN moving stats from ``calib``'s batch statistics, perturbed.

    One eager forward pass in ``model.layers`` order (Keras 2 orders them so that every layer
    comes after its inputs): each layer's weights are set just before it is applied.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    outputs = {}
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "InputLayer":
            outputs[layer.name] = tf.constant(calib)
            continue
        ins = [outputs[p.name] for p in _inbound(layer)]
        x = ins if len(ins) > 1 else ins[0]
        if cls == "Conv2D":
            kernel = layer.kernel.numpy()
            fan_in = int(np.prod(kernel.shape[:3]))
            new = [rng.normal(0, np.sqrt(2.0 / fan_in), kernel.shape)]
            if layer.use_bias:
                new.append(rng.normal(0, 0.2, layer.bias.shape))
            layer.set_weights([w.astype("float32") for w in new])
        elif cls == "BatchNormalization":
            v = x.numpy().reshape(-1, x.shape[-1]).astype("float64")
            mean, var = v.mean(0), v.var(0)
            c = mean.shape[0]
            gamma = rng.uniform(0.5, 1.5, c)
            beta = rng.normal(0, 0.3, c)
            moving_mean = mean + rng.normal(0, 0.3, c) * np.sqrt(var + 1e-4)
            moving_var = var * rng.uniform(0.5, 2.0, c) + 1e-3  # strictly positive
            layer.set_weights([w.astype("float32") for w in (gamma, beta, moving_mean, moving_var)])
        elif layer.weights:
            raise RuntimeError(f"unexpected weighted layer {layer.name} ({cls})")
        outputs[layer.name] = layer(x, training=False)


#: the structural settings compared with mfr's layers (tuples become lists in JSON)
CONFIG_KEYS = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "use_bias",
    "epsilon",
    "center",
    "scale",
    "pool_size",
    "activation",
    "target_shape",
    "data_format",
)


def layer_config(layer) -> dict:
    config = layer.get_config()
    return {k: config[k] for k in CONFIG_KEYS if k in config}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n-images", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--load",
        type=Path,
        help="instead of randomising: load this legacy .h5 file exactly as keras-vggface loads "
        "its released weights (model.load_weights, topological order), run --inputs through it "
        "and write out_loaded.npy",
    )
    parser.add_argument("--inputs", type=Path, help="with --load: a .npy of preprocessed images")
    args = parser.parse_args(argv)

    _alias_keras2()
    import numpy as np
    import tensorflow as tf
    import tf_keras
    from keras_vggface.vggface import VGGFace

    tf.random.set_seed(args.seed)
    model = VGGFace(
        model="senet50", include_top=False, input_shape=(224, 224, 3), pooling="avg", weights=None
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if args.load is not None:
        model.load_weights(str(args.load))
        inputs = np.load(args.inputs)
        out = model.predict(inputs, batch_size=len(inputs), verbose=0)
        np.save(args.out / "out_loaded.npy", out.astype("float32"))
        return 0
    rng = np.random.default_rng(args.seed)
    # preprocessed-looking float32 inputs (pixels minus the VGGFace2 means), one calibration image
    images = rng.uniform(-130, 160, (args.n_images + 1, 224, 224, 3)).astype("float32")
    calib, inputs = images[:1], images[1:]
    randomise(model, calib, args.seed + 1)

    model.save_weights(str(args.out / "senet50_k2.h5"))  # Keras 2 legacy HDF5 (".h5" suffix)
    out = model.predict(inputs, batch_size=len(inputs), verbose=0)
    np.save(args.out / "inputs.npy", inputs)
    np.save(args.out / "out_k2.npy", out.astype("float32"))
    layers = [
        {
            "index": i,
            "class": type(layer).__name__,
            "name": layer.name,
            "weights": [list(w.shape) for w in layer.weights],
            "config": layer_config(layer),
        }
        for i, layer in enumerate(model.layers)
    ]
    # The thesis's code, run on keras-vggface's own model: freeze all, then every layer of
    # layers[-N:] trainable unless BatchNormalization; record the trainable weights per N.
    trainable = {}
    for n in (10, 20, 30, 40, 50, 60, 70):
        for layer in model.layers:
            layer.trainable = False
        for layer in model.layers[-n:]:
            if not isinstance(layer, tf_keras.layers.BatchNormalization):
                layer.trainable = True
        trainable[n] = [[w.name, list(w.shape)] for w in model.trainable_weights]
    info = {
        "trainable_weights_by_n": trainable,
        "tf_keras": tf_keras.__version__,
        "tensorflow": tf.__version__,
        "params": int(model.count_params()),
        "n_layers": len(model.layers),
        "layers": layers,
    }
    (args.out / "layers.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: v for k, v in info.items()
                      if k not in ("layers", "trainable_weights_by_n")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
