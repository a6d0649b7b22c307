"""Grad-CAM (Selvaraju et al. 2017) of a face pair's match, with tf-keras-vis 0.8.7.

The score of an image is minus the thesis's distance between its embedding and its genuine
partner's (a fixed, precomputed reference): ``-sum((l2norm(f(x)) - l2norm(e_ref))^2)``. Its
Grad-CAM shows the regions whose features make the pair match.

The feature layer is passed explicitly, :data:`FEATURE_LAYER` = ``conv5_3_relu``: the output of
SENet50's last block before pooling (7x7x2048 for a 224x224 input). Left alone, tf-keras-vis
takes the last convolution, which in SENet50 is an SE block's 1x1 conv on a 1x1 map; and given a
non-conv layer it seeks back to the previous conv unless ``seek_penultimate_conv_layer=False``
(which :func:`gradcam` sets).

The maps are returned raw (ReLU of the gradient-weighted feature sum, not min-max normalised
as tf-keras-vis does by default) at the layer's resolution: the attention share
(:mod:`mfr.explain.attention`) is a fraction of this mass, and min-max normalisation would change it.
:func:`upsample` resizes a map to the image (bilinear, :func:`mfr.data.images.resize_bilinear`).

tf-keras-vis needs TensorFlow; this module imports it only inside :func:`gradcam`, so it
imports under any backend, and :func:`require_tensorflow` says in one line what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mfr.core.errors import InputError, MfrError
from mfr.evaluation.distances import l2_normalize

__all__ = [
    "FEATURE_LAYER",
    "GradcamBackendError",
    "embed_preprocessed",
    "gradcam",
    "pair_distance",
    "require_tensorflow",
    "upsample",
]

#: SENet50's last block output before pooling (mfr's name for keras-vggface's conv5_3 ReLU).
FEATURE_LAYER = "conv5_3_relu"


class GradcamBackendError(MfrError):
    """Grad-CAM was asked for under a Keras backend other than TensorFlow."""


def require_tensorflow() -> None:
    """GradcamBackendError (one line) unless Keras runs on TensorFlow."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise GradcamBackendError(
            f"Grad-CAM needs the TensorFlow backend (tf-keras-vis is TensorFlow-only); Keras "
            f"runs on {backend}: run with KERAS_BACKEND=tensorflow")


def pair_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The thesis's distance, row by row: sum((l2norm(a) - l2norm(b))^2), float64."""
    a, b = l2_normalize(np.atleast_2d(a)), l2_normalize(np.atleast_2d(b))
    d = (a - b).astype(np.float64)
    return np.einsum("ij,ij->i", d, d)


def embed_preprocessed(model, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """L2-normalised embeddings of already preprocessed float32 inputs (N, H, W, 3)."""
    out = [np.asarray(model.predict_on_batch(x[s:s + batch_size]), dtype=np.float32)
           for s in range(0, len(x), batch_size)]
    return l2_normalize(np.concatenate(out)) if out else np.zeros((0, model.output_shape[-1]),
                                                                  np.float32)


def _check_layer(model, layer: str) -> tuple[int, int]:
    try:
        shape = model.get_layer(layer).output.shape
    except ValueError:
        raise InputError(f"model {model.name!r} has no layer {layer!r} (expected the last "
                         f"block's output before pooling, e.g. {FEATURE_LAYER})") from None
    if len(shape) != 4:
        raise InputError(f"layer {layer!r} of {model.name!r} has output shape {tuple(shape)}; "
                         f"Grad-CAM needs a spatial (batch, h, w, channels) output")
    return int(shape[1]), int(shape[2])


def _score(references: np.ndarray) -> Callable:
    """tf-keras-vis score: minus the thesis distance of each output row to its reference."""
    from keras import ops

    ref = ops.convert_to_tensor(l2_normalize(np.asarray(references, np.float32)))

    def score(output):
        sq = ops.maximum(ops.sum(ops.square(output), axis=-1, keepdims=True), 1e-12)
        return -ops.sum(ops.square(output / ops.sqrt(sq) - ref), axis=-1)

    return score


def gradcam(model, x: np.ndarray, references: np.ndarray, layer: str = FEATURE_LAYER,
            batch_size: int = 8) -> np.ndarray:
    """Raw Grad-CAM maps of preprocessed inputs `x` (N, H, W, 3) under the pair score.

    Args:
        model: a Keras model (TensorFlow backend) from images to embeddings.
        x: preprocessed float32 inputs (:func:`mfr.backbones.preprocess`).
        references: (N, D) embeddings of each input's partner (normalised here), constants.
        layer: the feature layer (default :data:`FEATURE_LAYER`); used as given, never sought.

    Returns:
        float32 (N, h, w) maps at the layer's spatial size, >= 0 (ReLU); a map is all zeros
        when no feature location raises the score (e.g. a score independent of the image).
    """
    require_tensorflow()
    from tf_keras_vis.gradcam import Gradcam

    h, w = _check_layer(model, layer)
    x = np.asarray(x, dtype=np.float32)
    references = np.asarray(references, dtype=np.float32)
    if len(x) != len(references):
        raise InputError(f"{len(x)} inputs but {len(references)} reference embeddings")
    cam = Gradcam(model, clone=False)
    maps = []
    for s in range(0, len(x), batch_size):
        m = cam(_score(references[s:s + batch_size]), x[s:s + batch_size],
                penultimate_layer=layer, seek_penultimate_conv_layer=False,
                activation_modifier=lambda c: np.maximum(c, 0.0), expand_cam=False,
                normalize_cam=False)
        maps.append(np.asarray(m, dtype=np.float32).reshape(-1, h, w))
    return np.concatenate(maps) if maps else np.zeros((0, h, w), np.float32)


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map resized to `size` (H, W): bilinear, half-pixel centres (as tf.image.resize),
    clipped at 0."""
    from mfr.data.images import resize_bilinear

    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise InputError(f"expected an (h, w) map, got shape {cam.shape}")
    return np.maximum(resize_bilinear(cam[..., None], tuple(size))[..., 0], 0.0)
