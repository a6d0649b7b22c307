"""dlib's metric-learning loss, ``loss_metric_`` (dlib/dnn/loss.h), the loss dlib's face ResNet
(the ``dlib_resnet`` backbone) was trained with; defaults as dlib's: distance threshold 0.6,
margin 0.04.

Its value per mini-batch, transcribed from ``compute_loss_value_and_gradient``: with x the
network's raw outputs (dlib does not normalise them) and d(r, c) = ||x_r - x_c||,

- P and N: the same-subject and different-subject pairs r < c, each count plus 0.0001
  (dlib's guard against dividing by zero), scale = 0.5 / P;
- neg_thresh = the k-th smallest different-subject distance, k = min(#P, #N): only the
  hardest negatives count, as many as there are positives;
- loss = scale * sum over ordered pairs r != c (each unordered pair twice) of
  ``max(0, d - (threshold - margin))`` for the same subject and, for different subjects with
  ``d <= neg_thresh``, ``max(0, (threshold + margin) - d)``.

Autodiff of this value gives dlib's hand-written gradient (neg_thresh is a selection, held
constant), except where dlib clamps d at 0.001 in a negative pair's gradient.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["dlib_metric_loss"]

#: dlib adds this to both pair counts (``num_pos_samps = 0.0001``)
_COUNT_GUARD = 1e-4


def dlib_metric_loss(dlib_metric_threshold: float = 0.6,
                     dlib_metric_margin: float = 0.04) -> Callable:
    """``fn(ids, embeddings) -> scalar``: dlib's loss_metric_ of one batch."""
    from keras import ops

    thresh, margin = float(dlib_metric_threshold), float(dlib_metric_margin)

    def dlib_metric(y_true, x):
        ids = ops.reshape(y_true, (-1,))
        n = ops.shape(x)[0]
        gram = ops.matmul(x, ops.transpose(x))
        diag = ops.diagonal(gram)
        d2 = ops.maximum(ops.expand_dims(diag, 1) + ops.expand_dims(diag, 0) - 2.0 * gram, 0.0)
        positive = d2 > 0  # dlib: d = 0 where d2 <= 0; the root's gradient cut there
        d = ops.where(positive, ops.sqrt(ops.where(positive, d2, ops.ones_like(d2))), 0.0)
        same = ops.equal(ops.expand_dims(ids, 1), ops.expand_dims(ids, 0))
        off_diag = ops.logical_not(ops.eye(n, dtype="bool"))
        upper = ops.triu(ops.ones((n, n), dtype="bool"), k=1)
        pos_pairs = ops.logical_and(same, off_diag)
        neg_pairs = ops.logical_not(same)
        n_pos = ops.sum(ops.cast(ops.logical_and(same, upper), "int32"))
        n_neg = ops.sum(ops.cast(ops.logical_and(neg_pairs, upper), "int32"))
        scale = 0.5 / (ops.cast(n_pos, x.dtype) + _COUNT_GUARD)
        # the k-th smallest negative squared distance (r < c), its root: neg_thresh
        neg_d2 = ops.where(ops.logical_and(neg_pairs, upper), d2, float("inf"))
        k = ops.maximum(ops.minimum(n_pos, n_neg), 1)
        kth = ops.take(ops.sort(ops.reshape(neg_d2, (-1,))), k - 1)
        neg_thresh = ops.stop_gradient(ops.sqrt(kth))
        pos_loss = ops.where(ops.logical_and(pos_pairs, d >= thresh - margin),
                             d - (thresh - margin), 0.0)
        hard_neg = ops.logical_and(neg_pairs, ops.logical_and(d <= thresh + margin,
                                                              d <= neg_thresh))
        neg_loss = ops.where(hard_neg, (thresh + margin) - d, 0.0)
        return scale * ops.sum(pos_loss + neg_loss)

    dlib_metric.__name__ = "dlib_metric"
    return dlib_metric
