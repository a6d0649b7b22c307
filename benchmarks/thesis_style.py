"""The thesis's per-pair embedding path, kept only so the benchmark (and its test) can compare
mfr's per-image path against it. Not part of the package: mfr never embeds per pair."""

from __future__ import annotations

import numpy as np

from mfr.core.progress import progress_bar
from mfr.evaluation.distances import l2_normalize, pair_distances
from mfr.evaluation.embeddings import predict_batch


def thesis_style_pair_distances(
    model,
    images_u: np.ndarray,
    images_m: np.ndarray,
    preprocessing: str = "thesis",
    batch_size: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """The thesis's way, for the benchmark only: both images of every pair go through the
    network, batch by batch (its tf.data pipeline fed pairs, so an image in k pairs is
    embedded k times). Returns the sum_squared distance per pair (float64).

    `images_u`, `images_m`: (n_pairs, H, W, 3) uint8, row k = pair k's two images.
    """
    if len(images_u) != len(images_m):
        raise ValueError(f"images_u and images_m differ in length: {len(images_u)} vs {len(images_m)}")
    out = np.empty(len(images_u), dtype=np.float64)
    starts = range(0, len(images_u), batch_size)
    for s in progress_bar(starts, progress, desc="per-pair forward", unit="batch"):
        e1 = l2_normalize(predict_batch(model, np.asarray(images_u[s:s + batch_size]),
                                        preprocessing))
        e2 = l2_normalize(predict_batch(model, np.asarray(images_m[s:s + batch_size]),
                                        preprocessing))
        n = len(e1)
        out[s:s + batch_size] = pair_distances(np.concatenate([e1, e2]), np.arange(n),
                                               n + np.arange(n))
    return out
