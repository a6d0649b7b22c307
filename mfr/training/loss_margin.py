"""The class-margin losses: ArcFace (Deng et al. 2019, "ArcFace: Additive Angular Margin Loss
for Deep Face Recognition", s = 64, m = 0.5) and CosFace (Wang et al. 2018, "CosFace: Large
Margin Cosine Loss for Deep Face Recognition", s = 64, m = 0.35).

Both put a head on the embedding: one trainable weight vector per training subject
(:class:`MarginHead`), logits ``s * cos(theta_j)`` between the L2-normalised embedding and the
L2-normalised class weights, with the true subject's logit given a margin: ArcFace's
``s * cos(theta_y + m)`` (with the reference implementation's fallback
``cos(theta_y) - m * sin(m)`` where ``theta_y + m`` would pass pi, so the logit keeps falling
with theta), CosFace's ``s * (cos(theta_y) - m)``. The loss is the softmax cross-entropy of those
logits. The head is trained with the network and saved with the run (``margin_head.npz``); it is
not used at test time, where the embeddings are compared as with every other loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import ops

from mfr.training.siamese import l2_normalize

__all__ = ["MarginHead", "arcface_head", "cosface_head", "margin_logits", "margin_softmax_loss"]


def margin_logits(e, w, ids, kind: str, scale: float, margin: float):
    """The margin head's logits (B, C): embeddings `e` (B, D), class weights `w` (D, C), true
    subjects `ids` (B,); `kind` "arcface" or "cosface"."""
    cos = ops.clip(ops.matmul(l2_normalize(e), l2_normalize(w, axis=0)), -1.0, 1.0)
    if kind == "arcface":
        sin = ops.sqrt(ops.maximum(1.0 - ops.square(cos), 1e-12))
        shifted = cos * math.cos(margin) - sin * math.sin(margin)
        # past theta = pi - m, cos(theta + m) would rise again: the reference code's fallback
        target = ops.where(cos > math.cos(math.pi - margin), shifted,
                           cos - margin * math.sin(math.pi - margin))
    elif kind == "cosface":
        target = cos - margin
    else:
        raise ValueError(f"kind must be arcface or cosface, got {kind!r}")
    onehot = ops.one_hot(ops.cast(ops.reshape(ids, (-1,)), "int32"), ops.shape(w)[1],
                         dtype=cos.dtype)
    return scale * (onehot * target + (1.0 - onehot) * cos)


class MarginHead(keras.layers.Layer):
    """``[embedding (B, D), subject ids (B,)] -> logits (B, n_classes)``: ArcFace's or CosFace's
    head, one trainable weight vector (``kernel``, (D, n_classes)) per training subject."""

    def __init__(self, n_classes: int, kind: str, scale: float, margin: float, seed: int = 0,
                 **kwargs):
        super().__init__(name=kwargs.pop("name", "margin_head"), **kwargs)
        self.n_classes, self.kind = int(n_classes), kind
        self.scale, self.margin, self.seed = float(scale), float(margin), int(seed)

    def build(self, input_shape):
        dim = input_shape[0][-1]
        self.kernel = self.add_weight(
            shape=(dim, self.n_classes), name="kernel", trainable=True,
            initializer=keras.initializers.GlorotUniform(seed=self.seed))

    def call(self, inputs):
        e, ids = inputs
        return margin_logits(e, self.kernel, ids, self.kind, self.scale, self.margin)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.n_classes)


def arcface_head(n_classes: int, arcface_scale: float = 64.0, arcface_margin: float = 0.5,
                 seed: int = 0) -> MarginHead:
    return MarginHead(n_classes, "arcface", arcface_scale, arcface_margin, seed=seed)


def cosface_head(n_classes: int, cosface_scale: float = 64.0, cosface_margin: float = 0.35,
                 seed: int = 0) -> MarginHead:
    return MarginHead(n_classes, "cosface", cosface_scale, cosface_margin, seed=seed)


def margin_softmax_loss(**_hyperparameters: float) -> Callable:
    """``fn(ids, logits) -> (B,)``: softmax cross-entropy of the head's logits (the scale and
    margin are the head's; Keras averages over the batch)."""

    def margin_softmax(y_true, logits):
        ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        return ops.sparse_categorical_crossentropy(ids, logits, from_logits=True)

    margin_softmax.__name__ = "margin_softmax"
    return margin_softmax
