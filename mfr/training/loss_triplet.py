"""The batch-hard triplet loss (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss
for Person Re-Identification", Eq. 5 with the hinge): for each image of the batch (the anchor)
its farthest same-subject image and its nearest other-subject image,
``max(0, margin + D(a, hardest positive) - D(a, hardest negative))``, averaged over the
anchors. D is the Euclidean distance (not squared, as Hermans et al.) between L2-normalised
embeddings, the unit sphere the Siamese distance and the evaluation use. Batches are P
subjects x K images (:mod:`mfr.training.image_batches`), as the paper's.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["batch_hard_triplet_loss", "pairwise_distances"]

#: below this squared distance the root's gradient is cut (sqrt is not differentiable at 0)
_MIN_SQUARED = 1e-12
#: what an anchor with no other-subject image in its batch sees as its nearest negative
_FAR = 1e9


def pairwise_distances(e):
    """(B, B) Euclidean distances between the rows of `e` (a Keras tensor)."""
    from keras import ops

    sq = ops.sum(ops.square(e), axis=-1)
    d2 = ops.expand_dims(sq, 1) + ops.expand_dims(sq, 0) - 2.0 * ops.matmul(e, ops.transpose(e))
    return ops.sqrt(ops.maximum(d2, _MIN_SQUARED))


def batch_hard_triplet_loss(triplet_margin: float = 0.2) -> Callable:
    """``fn(ids, embeddings) -> (B,)`` per-anchor batch-hard losses (Keras averages them)."""
    from keras import ops

    from mfr.training.siamese import l2_normalize

    margin = float(triplet_margin)

    def triplet(y_true, e):
        ids = ops.reshape(y_true, (-1,))
        d = pairwise_distances(l2_normalize(e))
        same = ops.equal(ops.expand_dims(ids, 1), ops.expand_dims(ids, 0))
        hardest_pos = ops.max(ops.where(same, d, ops.zeros_like(d)), axis=1)
        hardest_neg = ops.min(ops.where(same, ops.full_like(d, _FAR), d), axis=1)
        return ops.relu(margin + hardest_pos - hardest_neg)

    triplet.__name__ = "triplet"
    return triplet
