"""Exact top-k search on dlib's own distance: the Euclidean distance of the raw (unnormalised)
descriptors, face_recognition's ``face_distance``, on which its documented tolerance 0.6 holds.

That distance is not a function of the cosine of the unit rows (the rows' lengths enter), so
:func:`mfr.gallery.search.top_k` and its faiss index cannot rank by it. Here the raw rows are
the unit rows times their lengths, and ``|p - g|^2 = |p|^2 + |g|^2 - 2 p.g`` of those raw rows
is computed in float64 (the values of :func:`mfr.verify.photos.face_distances` of the pair, to
~1e-15), block by block (``probe_chunk`` x ``gallery_chunk``), each identity at its nearest
template; the k nearest identities of every block are merged. Ties go to the identity sorted
first (the gallery's templates are grouped by sorted identity).
"""

from __future__ import annotations

import numpy as np

from mfr.core.errors import InputError
from mfr.gallery.search import GALLERY_CHUNK, PROBE_CHUNK, Templates, TopK

__all__ = ["raw_distances", "raw_top_k"]


def raw_distances(p_unit: np.ndarray, p_norm: np.ndarray, g_unit: np.ndarray,
                  g_norm: np.ndarray) -> np.ndarray:
    """(n_p, n_g) float64 Euclidean distances of the raw rows ``unit * norm``."""
    p = np.asarray(p_unit, np.float64) * np.asarray(p_norm, np.float64)[:, None]
    g = np.asarray(g_unit, np.float64) * np.asarray(g_norm, np.float64)[:, None]
    # the rows' own squared lengths (a float32 "unit" row is 1 to ~1e-7 only)
    d2 = np.einsum("ij,ij->i", p, p)[:, None] + np.einsum("ij,ij->i", g, g)[None, :] \
        - 2.0 * (p @ g.T)
    return np.sqrt(np.maximum(d2, 0.0))


def raw_top_k(probes: np.ndarray, probe_norms: np.ndarray, gallery: Templates,
              gallery_norms: np.ndarray, k: int = 5, probe_chunk: int = PROBE_CHUNK,
              gallery_chunk: int = GALLERY_CHUNK) -> TopK:
    """The `k` nearest identities of each probe by raw Euclidean distance.

    Args:
        probes: (n, d) unit rows; probe_norms: their raw lengths.
        gallery: :func:`mfr.gallery.search.templates` of the unit rows.
        gallery_norms: each template's raw length, in the caller's row order (as given to
            :func:`~mfr.gallery.search.templates`).
    Returns:
        :class:`~mfr.gallery.search.TopK` with ``metric="euclidean_raw"``; ``similarity`` is
        NaN (no cosine ranks here); empty slots -1 / inf.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be an integer >= 1, got {k!r}")
    k = int(k)
    p = np.asarray(probes, np.float32)
    if p.ndim == 1:
        p = p[None, :]
    pn = np.asarray(probe_norms, np.float64).ravel()
    gn_all = np.asarray(gallery_norms, np.float64).ravel()
    if len(pn) != len(p) or len(gn_all) != len(gallery.vectors):
        raise InputError("raw search: one length per probe and per template expected")
    if not (np.isfinite(pn).all() and np.isfinite(gn_all).all()):
        raise InputError("raw search: every row needs its raw length (an embedder that keeps "
                         "them: dlib's)")
    if p.shape[1] != gallery.dim and len(gallery.vectors):
        raise InputError(f"probes: {p.shape[1]}-dimensional, the gallery's are {gallery.dim}")
    gn = gn_all[gallery.rows]  # grouped order
    nq, n = len(p), len(gallery.vectors)
    codes = np.full((nq, k), -1, dtype=np.int64)
    rows = np.full((nq, k), -1, dtype=np.int64)
    dist = np.full((nq, k), np.inf)
    for q0 in range(0, nq, probe_chunk):
        q1 = min(nq, q0 + probe_chunk)
        cand_c, cand_d, cand_p = [], [], []
        for g0 in range(0, n, gallery_chunk):
            g1 = min(n, g0 + gallery_chunk)
            d = raw_distances(p[q0:q1], pn[q0:q1], gallery.vectors[g0:g1], gn[g0:g1])
            inner = gallery.starts[(gallery.starts > g0) & (gallery.starts < g1)] - g0
            runs = np.r_[0, inner].astype(np.int64)
            dmin = np.minimum.reduceat(d, runs, axis=1)
            c = gallery.codes[g0 + runs]
            kk = min(k, dmin.shape[1])
            best = np.argsort(dmin, axis=1, kind="stable")[:, :kk]
            cand_c.append(c[best])
            cand_d.append(np.take_along_axis(dmin, best, axis=1))
            cand_p.append(np.broadcast_to(np.arange(q1 - q0)[:, None], best.shape))
        if not cand_c:
            continue
        c = np.concatenate(cand_c, axis=1).ravel()
        dd = np.concatenate(cand_d, axis=1).ravel()
        pp = np.concatenate(cand_p, axis=1).ravel()
        order = np.lexsort((c, dd, pp))  # probe, then distance, then identity
        c, dd, pp = c[order], dd[order], pp[order]
        # an identity split over two gallery chunks: keep its first (nearest) entry
        key = pp * (gallery.n_identities + 1) + c
        _, first = np.unique(key, return_index=True)
        first = np.sort(first)
        c, dd, pp = c[first], dd[first], pp[first]
        pos = np.arange(len(pp)) - np.searchsorted(pp, pp)
        take = pos < k
        at = (q0 + pp[take], pos[take])
        codes[at], dist[at] = c[take], dd[take]
    for i, j in zip(*np.nonzero(codes >= 0), strict=True):  # the best template's caller row
        s0, s1 = gallery.starts[codes[i, j]], gallery.starts[codes[i, j] + 1]
        d = raw_distances(p[i:i + 1], pn[i:i + 1], gallery.vectors[s0:s1], gn[s0:s1])[0]
        rows[i, j] = gallery.rows[s0 + int(np.argmin(d))]
    return TopK(codes, rows, np.full(codes.shape, np.nan), dist, gallery.labels,
                "euclidean_raw", "exact")
