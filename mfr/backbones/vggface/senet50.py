"""SENet50 (VGGFace2), as keras-vggface 0.6 built it, in Keras 3.

keras-vggface's ``SENET50(include_top=False, input_shape=(224, 224, 3), pooling=...)``:
287 layers, 26,092,144 parameters (BatchNormalization moving statistics included, as
``Model.count_params`` counts them). Keras 3 forbids '/' in layer names, so every weighted
layer is named like keras-vggface's with '/' replaced by '_' (``conv1/7x7_s2/bn`` ->
``conv1_7x7_s2_bn``); :data:`VGGFACE_NAMES` maps these back to the original names, which are
the group names of the released ``.h5`` files.

Layer order is part of the contract (the thesis trains ``model.layers[-N:]``). Keras 3's
Functional model orders ``model.layers`` as Keras 2 did: by depth (longest path to the output,
deepest first), ties broken by the order in which a depth-first walk from the output first meets
each layer (inputs of a merge layer in list order). Building the graph exactly as keras-vggface
did -- ``multiply([x, se])`` and ``add([x, shortcut])`` -- therefore reproduces its sequence,
e.g. in a stage's first block: ..., sigmoid, ``conv5_1_1x1_proj``, Multiply,
``conv5_1_1x1_proj_bn``, Add. ``tests/test_senet50.py`` asserts the full sequence against
``reference/senet50_vggface2_layers.json``.

Unweighted layers get deterministic names (``conv2_1_1x1_reduce_relu``, ``conv2_1_se_gap``,
``conv2_1_se_multiply``, ``conv2_1_add``, ``conv2_1_relu``, ...), so checkpoints match by name.

The model takes preprocessed float32 images (see :mod:`mfr.backbones.preprocess`); preprocessing
is not a layer. The released weights' facts are the backbone's (:mod:`mfr.backbones.senet50`);
:func:`mfr.backbones.vggface.senet50` builds and loads them.
"""

from __future__ import annotations

import keras
from keras import layers

from mfr.backbones.vggface.layer_names import keras_name, vggface_names
from mfr.core.errors import InputError

__all__ = ["BN_EPSILON", "STAGES", "VGGFACE_NAMES", "build_senet50", "vggface_name"]

BN_EPSILON = 1e-4
SE_COMPRESS_RATE = 16
# (stage, number of blocks, filters); the first block of a stage has the projection shortcut.
STAGES: tuple[tuple[int, int, tuple[int, int, int]], ...] = (
    (2, 3, (64, 64, 256)),
    (3, 4, (128, 128, 512)),
    (4, 6, (256, 256, 1024)),
    (5, 3, (512, 512, 2048)),
)


#: Keras 3 layer name -> keras-vggface layer name (the group name in legacy .h5 files), for
#: every weighted layer of the network. Built from the original names, never by guessing.
VGGFACE_NAMES: dict[str, str] = vggface_names(STAGES)

def vggface_name(name: str) -> str:
    """Keras 3 layer name -> keras-vggface name (unchanged for names not in the network)."""
    return VGGFACE_NAMES.get(name, name)


def _conv_bn(x, filters, kernel_size, vggface, init, strides=1, padding="valid"):
    """Conv (no bias) + BN (eps 1e-4), named after keras-vggface's ``vggface``/``vggface/bn``."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=init,
        name=keras_name(vggface),
    )(x)
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=keras_name(vggface + "/bn"))(x)


def _se_block(x, prefix: str, init):
    """Squeeze-and-excitation: GAP -> reshape -> 1x1 down (+bias) -> ReLU -> 1x1 up -> sigmoid."""
    channels = x.shape[-1]
    se = layers.GlobalAveragePooling2D(name=f"{prefix}_se_gap")(x)
    se = layers.Reshape((1, 1, channels), name=f"{prefix}_se_reshape")(se)
    se = layers.Conv2D(
        channels // SE_COMPRESS_RATE,
        1,
        use_bias=True,
        kernel_initializer=init,
        name=f"{prefix}_1x1_down",
    )(se)
    se = layers.Activation("relu", name=f"{prefix}_1x1_down_relu")(se)
    se = layers.Conv2D(
        channels, 1, use_bias=True, kernel_initializer=init, name=f"{prefix}_1x1_up"
    )(se)
    se = layers.Activation("sigmoid", name=f"{prefix}_1x1_up_sigmoid")(se)
    # keras-vggface: multiply([x, se]); the input order fixes the layer order.
    return layers.Multiply(name=f"{prefix}_se_multiply")([x, se])


def _block(input_tensor, filters, stage: int, block: int, strides: int, projection: bool, init):
    """keras-vggface's senet_conv_block (projection=True) / senet_identity_block."""
    f1, f2, f3 = filters
    p = f"conv{stage}_{block}"
    x = _conv_bn(input_tensor, f1, 1, f"{p}_1x1_reduce", init, strides=strides)
    x = layers.Activation("relu", name=f"{p}_1x1_reduce_relu")(x)
    x = _conv_bn(x, f2, 3, f"{p}_3x3", init, padding="same")
    x = layers.Activation("relu", name=f"{p}_3x3_relu")(x)
    x = _conv_bn(x, f3, 1, f"{p}_1x1_increase", init)
    se = _se_block(x, p, init)
    if projection:
        shortcut = _conv_bn(input_tensor, f3, 1, f"{p}_1x1_proj", init, strides=strides)
    else:
        shortcut = input_tensor
    # keras-vggface: add([m, shortcut]) with m the SE output.
    m = layers.Add(name=f"{p}_add")([se, shortcut])
    return layers.Activation("relu", name=f"{p}_relu")(m)


def build_senet50(
    pooling: str = "avg",
    input_shape=(224, 224, 3),
    name: str = "senet50",
    kernel_initializer="glorot_uniform",
):
    """The bare network (random initial weights: Keras defaults, conv kernels Glorot-uniform).

    ``kernel_initializer="zeros"`` builds much faster under JAX (no per-shape random-number
    compilation); :func:`senet50` uses it when every weight is loaded from a file anyway.
    """
    if pooling not in ("avg", "max"):
        raise InputError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _conv_bn(inputs, 64, 7, "conv1/7x7_s2", kernel_initializer, strides=2, padding="same")
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="pool1")(x)
    for stage, n_blocks, filters in STAGES:
        for block in range(1, n_blocks + 1):
            strides = (1 if stage == 2 else 2) if block == 1 else 1
            x = _block(
                x, filters, stage, block, strides, projection=block == 1, init=kernel_initializer
            )
    x = layers.AveragePooling2D((7, 7), name="avg_pool")(x)
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_avg_pool")(x)
    else:
        x = layers.GlobalMaxPooling2D(name="global_max_pool")(x)
    return keras.Model(inputs, x, name=name)
