"""Pair distances from embeddings, and the thesis's summary of them.

Plain numpy in and out: ``pair_distances(emb, u_idx, m_idx)`` looks the two rows of every pair up
in an (N, D) embedding matrix (each unique image embedded once, :mod:`mfr.evaluation.embeddings`); there
is no forward pass per pair.

Why not ``sklearn.metrics.pairwise.paired_distances``: it computes in the inputs' dtype
(float32 for embeddings), where this module takes differences in float32 and sums in float64
(|error| ~1e-8 instead of ~1e-6); the distances are written with 6 decimals, and the same
inputs must keep giving the same bytes. The thesis's own distance (``sum_squared``) is not
among sklearn's paired metrics anyway.

Labels: 1 = genuine (same subject), 0 = impostor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = [
    "DISTANCE_FLOAT_FORMAT",
    "METRICS",
    "all_pair_distances",
    "distance_table",
    "l2_normalize",
    "pair_distances",
    "summarise",
]

#: sum_squared: the thesis's d = sum((l2norm(e1) - l2norm(e2))^2), in [0, 4] for unit vectors;
#: cosine: 1 - cos(e1, e2), in [0, 2]; l2: Euclidean; l1: Manhattan.
METRICS = ("sum_squared", "cosine", "l2", "l1")

_CHUNK = 256  # pairs per gather: small blocks stay in cache (fastest on CPU)


def l2_normalize(x: np.ndarray, axis: int = -1, epsilon: float = 1e-12) -> np.ndarray:
    """``tf.math.l2_normalize``: x / sqrt(max(sum(x^2), epsilon)), in x's float dtype."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    sq = np.sum(np.square(x, dtype=np.float64), axis=axis, keepdims=True)
    return (x / np.sqrt(np.maximum(sq, epsilon))).astype(x.dtype, copy=False)


def _metric(a: np.ndarray, b: np.ndarray, metric: str, dtype=np.float64) -> np.ndarray:
    """Row-wise distance. Differences are taken in the inputs' dtype, then squared / summed in
    `dtype` (float64 by default: |error| ~1e-8 for unit float32 embeddings)."""
    if metric in ("sum_squared", "l2"):
        d = (a - b).astype(dtype, copy=False)
        ss = np.einsum("ij,ij->i", d, d)
        return ss if metric == "sum_squared" else np.sqrt(ss)
    if metric == "l1":
        return np.abs(a - b).sum(axis=1, dtype=dtype)
    if metric == "cosine":
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        dot = np.einsum("ij,ij->i", a, b)
        na = np.sqrt(np.einsum("ij,ij->i", a, a))
        nb = np.sqrt(np.einsum("ij,ij->i", b, b))
        return 1.0 - dot / np.maximum(na * nb, 1e-12)
    raise InputError(f"metric must be one of {METRICS}, got {metric!r}")


def pair_distances(
    emb: np.ndarray,
    u_idx: np.ndarray,
    m_idx: np.ndarray,
    metric: str = "sum_squared",
    *,
    dtype=np.float64,
    chunk_size: int = _CHUNK,
) -> np.ndarray:
    """Distance between rows ``emb[u_idx[k]]`` and ``emb[m_idx[k]]`` for every pair k.

    Args:
        emb: (N, D) embeddings, L2-normalised for the thesis's metric (as
            :func:`mfr.evaluation.embeddings.embed_images` returns them).
        u_idx, m_idx: integer row indices, one per pair (same length).
        metric: one of :data:`METRICS`.
        dtype: float type of the sums and of the result (float64 by default); differences
            are taken in `emb`'s dtype.
        chunk_size: pairs gathered at a time (bounds memory for millions of pairs).

    Returns:
        (n_pairs,) array of `dtype`.
    """
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise InputError(f"expected (N, D) embeddings, got shape {emb.shape}")
    u_idx = np.asarray(u_idx, dtype=np.int64).ravel()
    m_idx = np.asarray(m_idx, dtype=np.int64).ravel()
    if u_idx.shape != m_idx.shape:
        raise InputError(f"u_idx and m_idx differ in length: {len(u_idx)} vs {len(m_idx)}")
    n = len(emb)
    for name, idx in (("u_idx", u_idx), ("m_idx", m_idx)):
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise InputError(f"{name} holds rows outside the {n} embeddings")
    out = np.empty(len(u_idx), dtype=dtype)
    for s in range(0, len(u_idx), chunk_size):
        out[s:s + chunk_size] = _metric(emb[u_idx[s:s + chunk_size]], emb[m_idx[s:s + chunk_size]],
                                        metric, dtype)
    return out


def all_pair_distances(emb: np.ndarray, u_idx, m_idx, metrics=METRICS, **kwargs) -> dict[str, np.ndarray]:
    """:func:`pair_distances` for several metrics: {metric: (n_pairs,) array}."""
    return {m: pair_distances(emb, u_idx, m_idx, m, **kwargs) for m in metrics}


DISTANCE_FLOAT_FORMAT = "%.6f"


def _nan_to_none(obj):
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def distance_table(split: str, pairs, emb: np.ndarray, u_idx, m_idx, labels,
                   metrics=METRICS) -> tuple[Any, dict[str, Any]]:
    """Every pair's distances under each metric, and their summaries.

    `pairs` is the pair DataFrame (rows aligned with the index arrays). Returns a DataFrame
    (``split``, the pair columns, one column per metric) and {metric: summarise(...)} with NaN
    as None (JSON-ready). `mfr embed` and `mfr train` both write their ``distances.csv`` from it,
    with :data:`DISTANCE_FLOAT_FORMAT`.
    """
    import pandas as pd

    from mfr.data.pairs import COLUMNS as PAIR_COLUMNS

    dists = all_pair_distances(emb, u_idx, m_idx, metrics)
    cols = {c: pairs[c].to_numpy() for c in PAIR_COLUMNS if c in pairs.columns}
    frame = pd.DataFrame({"split": split, **cols, **dists})
    return frame, {m: _nan_to_none(summarise(dists[m], labels)) for m in metrics}


def summarise(distances: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The thesis's numbers for one set of pair distances.

    Returns a dict: ``median_impostor``, ``median_genuine``, ``gap`` (median impostor - median
    genuine, Table 5.1), ``gmean`` / ``imean`` (mean genuine / impostor distance, the metric
    proposed in 3.3.4), ``n_pairs``, ``n_genuine``, ``n_impostor``. A statistic of an empty
    group is NaN.
    """
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if d.shape != y.shape:
        raise InputError(f"distances and labels differ in length: {len(d)} vs {len(y)}")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"labels must be 0 (impostor) or 1 (genuine), got {sorted(set(y.tolist()))}")
    gen, imp = d[y == 1], d[y == 0]

    def stat(fn, x):
        return float(fn(x)) if x.size else float("nan")

    med_i, med_g = stat(np.median, imp), stat(np.median, gen)
    return {
        "n_pairs": int(d.size),
        "n_genuine": int(gen.size),
        "n_impostor": int(imp.size),
        "median_impostor": med_i,
        "median_genuine": med_g,
        "gap": med_i - med_g,
        "gmean": stat(np.mean, gen),
        "imean": stat(np.mean, imp),
    }
