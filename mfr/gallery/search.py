"""Top-k search of probe embeddings among a gallery's templates: exact (numpy), or an optional
faiss index whose shortlist is re-ranked exactly.

Embeddings are unit-norm float32 rows (as :func:`mfr.evaluation.embeddings.embed_images` gives
them); the similarity of two is their cosine, the dot product. An identity may have several
templates (gallery rows); the search ranks **identities**, each by its best template, not rows.

**Exact** (``method="exact"``, the default): the probes times the gallery in blocks of
``probe_chunk`` x ``gallery_chunk`` (float32 BLAS: 256 x 32768 floats, 32 MB, at a time; never
a probes x gallery matrix), keeping from each block the candidates within a margin of its k-th
best identity; the candidates are then scored again in float64 (exact for float32 inputs, to
~1e-16) and ranked. The margin is twice the worst-case error of a float32 dot product of length
d (``4 d 2^-24``; any summation order, FMA or not), so the float64 top k is always among the
candidates: the result does not depend on the chunk sizes or on the BLAS's summation order.
Ties (equal float64 similarity) go to the identity whose best template comes first in the
gallery (and, within an identity, to its first such template).

**Index** (``method="index"``, ``pip install 'mfr[index]'``):
:class:`mfr.gallery.index.SearchIndex` asks faiss for a shortlist of ``shortlist`` rows per
probe; every template of each shortlisted identity is scored exactly (float64) and ranked as
above, so the reported similarities and distances are exact; only an identity missing from the
shortlist can be missed (recall < 1). The default index, chosen by measurement
(``benchmarks/bench_gallery_search.py``, ``results/benchmarks/gallery_search_cpu.json``, one
thread of a shared 2-core Xeon), is faiss's 4-bit product quantiser with fast-scan,
``PQ{d/2}x4fs`` (2 dimensions per sub-quantiser, 16 centroids each: d/4 bytes a template),
scanned in full, with a shortlist of 1000. Against 1M random 128-d unit vectors (the hardest
case for an index) it returned 99.9% of the exact top 5 in 3.1 ms a probe (exact search: 96 ms),
where an HNSW graph (``HNSW32,Flat``, efConstruction 80) returned 87% at efSearch 2048 in 22 ms,
took 24 minutes to build (the quantiser: 7 s) and 748 MB (the quantiser: 31 MB); an inverted
file (``IVF1024,PQ64x4fs``, nprobe 512) returned 93% at 100k. The quantiser built the same bytes
on 1 and 2 threads. An HNSW graph (``"HNSW32,Flat"``, ``params={"efSearch": ...}``) or an
inverted file (``"IVF1024,PQ64x4fs"``, ``{"nprobe": ...}``) can be asked for by their faiss
factory strings.

Distances (:func:`similarity_to_distance`) are mfr's (:data:`mfr.evaluation.distances.METRICS`)
as functions of the cosine of unit vectors: ``sum_squared`` = 2 - 2 cos (the thesis's),
``cosine`` = 1 - cos, ``l2`` = sqrt(2 - 2 cos); they agree with
:func:`mfr.evaluation.distances.pair_distances` of the same two rows to ~1e-7 (the rows' norms
differ from 1 by that much in float32). ``l1`` is not a function of the cosine, so a search
cannot rank by it.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = [
    "METHODS",
    "SEARCH_METRICS",
    "Templates",
    "TopK",
    "distance_to_similarity",
    "rank_candidates",
    "score_margin",
    "similarity_to_distance",
    "templates",
    "top_k",
]

METHODS = ("exact", "index")
#: mfr's distances that are functions of the cosine of two unit vectors
SEARCH_METRICS = ("sum_squared", "cosine", "l2")
#: |norm - 1| allowed of a "unit" embedding (float32 normalisation leaves ~1e-7)
NORM_TOLERANCE = 1e-4
PROBE_CHUNK = 256
GALLERY_CHUNK = 32768
_BLOCK = 64  # columns per block when a block's top candidates are looked for


# --------------------------------------------------------------------------- distances


def similarity_to_distance(similarity, metric: str = "sum_squared") -> np.ndarray:
    """mfr's distance of two unit vectors from their cosine (float64; -inf -> inf)."""
    s = np.asarray(similarity, dtype=np.float64)
    if metric == "sum_squared":
        return np.maximum(2.0 - 2.0 * s, 0.0)
    if metric == "cosine":
        return 1.0 - s
    if metric == "l2":
        return np.sqrt(np.maximum(2.0 - 2.0 * s, 0.0))
    raise InputError(f"metric must be one of {SEARCH_METRICS} (functions of the cosine), "
                     f"got {metric!r}")


def distance_to_similarity(distance, metric: str = "sum_squared") -> np.ndarray:
    """The cosine at which two unit vectors are `distance` apart (the inverse of
    :func:`similarity_to_distance`): a distance threshold as a similarity threshold."""
    t = np.asarray(distance, dtype=np.float64)
    if metric == "sum_squared":
        return 1.0 - t / 2.0
    if metric == "cosine":
        return 1.0 - t
    if metric == "l2":
        return 1.0 - np.square(t) / 2.0
    raise InputError(f"metric must be one of {SEARCH_METRICS} (functions of the cosine), "
                     f"got {metric!r}")


# --------------------------------------------------------------------------- inputs


def _unit_rows(x, what: str, dim: int | None = None) -> np.ndarray:
    """`x` as C-contiguous float32 (n, d), checked finite and unit-norm (one-line InputError)."""
    a = np.asarray(x)
    if a.ndim == 1 and what == "probes":
        a = a[None, :]
    if a.ndim != 2:
        raise InputError(f"{what}: expected an (n, d) array of embeddings, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"{what}: expected float embeddings, got dtype {a.dtype}")
    if dim is not None and a.shape[1] != dim:
        raise InputError(f"{what}: {a.shape[1]}-dimensional, the gallery's are {dim}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    for s in range(0, len(a), GALLERY_CHUNK):
        block = a[s:s + GALLERY_CHUNK].astype(np.float64)
        if not np.isfinite(block).all():
            raise InputError(f"{what}: rows from {s} hold values that are not finite")
        norm = np.sqrt(np.einsum("ij,ij->i", block, block))
        bad = np.flatnonzero(np.abs(norm - 1.0) > NORM_TOLERANCE)
        if bad.size:
            raise InputError(f"{what}: row {s + bad[0]} has norm {norm[bad[0]]:.6g}, expected "
                             f"unit-norm embeddings (mfr.evaluation.distances.l2_normalize)")
    return a


def score_margin(dim: int) -> float:
    """Twice the worst-case error of a float32 dot product of two (near-)unit vectors of
    length `dim` (gamma_d = d u / (1 - d u), u = 2^-24), with slack: 4 d 2^-24."""
    return 4.0 * dim * 2.0 ** -24


@dataclass(frozen=True, eq=False)
class Templates:
    """A gallery's templates, ready to search: rows grouped by identity (stable).

    ``vectors`` (n, d) float32; ``rows`` the caller's row of each; ``codes`` each row's
    identity (an index into ``labels``, the identities sorted); ``starts`` (n_identities + 1):
    identity j's rows are ``vectors[starts[j]:starts[j + 1]]``.
    """

    vectors: np.ndarray
    rows: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    starts: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def n_identities(self) -> int:
        return len(self.labels)

    @property
    def one_per_identity(self) -> bool:
        return len(self.vectors) == len(self.labels)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the vectors and their identities (an index records the one it was built
        on)."""
        h = hashlib.sha256()
        h.update(struct.pack("<qq", *self.vectors.shape))
        h.update(memoryview(self.vectors).cast("B"))
        h.update(np.ascontiguousarray(self.codes, dtype="<i8").tobytes())
        return h.hexdigest()


def templates(embeddings, identities=None) -> Templates:
    """:class:`Templates` of (n, d) unit-norm embeddings and each row's identity (any sortable
    labels; None: each row its own identity, labelled by its row number)."""
    vec = _unit_rows(embeddings, "gallery")
    n = len(vec)
    ids = np.arange(n) if identities is None else np.asarray(identities).ravel()
    if len(ids) != n:
        raise InputError(f"gallery: {n} embeddings but {len(ids)} identities")
    try:
        labels, codes = np.unique(ids, return_inverse=True)
    except TypeError as e:
        raise InputError(f"gallery identities cannot be sorted ({e}); give labels of one "
                         f"type") from None
    codes = codes.astype(np.int64).ravel()
    order = np.argsort(codes, kind="stable")
    if not np.array_equal(order, np.arange(n)):
        vec = np.ascontiguousarray(vec[order])
    starts = np.searchsorted(codes[order], np.arange(len(labels) + 1)).astype(np.int64)
    return Templates(vec, order.astype(np.int64), codes[order], labels, starts)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class TopK:
    """The k best identities of each probe, best first.

    ``identity_index`` (n_probes, k) int64 into ``labels`` (-1 where the gallery has fewer than
    k identities); ``rows`` the caller's gallery row of that identity's best template (-1);
    ``similarity`` its cosine, float64 (-inf); ``distance`` the ``metric`` distance, float64
    (inf). ``method``: how the candidates were found (``exact`` / ``index``).
    """

    identity_index: np.ndarray
    rows: np.ndarray
    similarity: np.ndarray
    distance: np.ndarray
    labels: np.ndarray
    metric: str
    method: str

    @property
    def identities(self) -> np.ndarray:
        """The identities' labels, (n_probes, k) object array (None where there is none)."""
        out = np.full(self.identity_index.shape, None, dtype=object)
        ok = self.identity_index >= 0
        out[ok] = self.labels[self.identity_index[ok]]
        return out


# --------------------------------------------------------------------------- exact search


def _block_candidates(scores: np.ndarray, k: int, margin: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probe, column, score) of every entry of `scores` (probes x columns) within `margin` of a
    lower bound of its row's k-th largest: the k-th largest of the maxima of blocks of
    :data:`_BLOCK` columns (k of those maxima are k distinct entries at least that large), so
    only the blocks reaching it are looked into."""
    nq, m = scores.shape
    if m <= _BLOCK * max(k, 8):
        kk = min(k, m)
        kth = np.partition(scores, m - kk, axis=1)[:, m - kk]
        p, c = np.nonzero(scores >= (kth - margin)[:, None])
        return p, c, scores[p, c]
    bmax = np.maximum.reduceat(scores, np.arange(0, m, _BLOCK), axis=1)
    nb = bmax.shape[1]
    thr = np.partition(bmax, nb - k, axis=1)[:, nb - k] - margin
    pb, bb = np.nonzero(bmax >= thr[:, None])
    cols = bb[:, None] * _BLOCK + np.arange(_BLOCK)
    inside = cols < m
    vals = scores[pb[:, None], np.minimum(cols, m - 1)]
    keep = inside & (vals >= thr[pb][:, None])
    return np.broadcast_to(pb[:, None], cols.shape)[keep], cols[keep], vals[keep]


def _exact_candidates(p32: np.ndarray, g: Templates, k: int, gallery_chunk: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate (probe, identity code, float32 score) of a block of probes, chunk by chunk of
    the gallery (an identity split over two chunks appears twice, with partial maxima)."""
    margin = score_margin(g.dim)
    ps, cs, ss = [], [], []
    n = len(g.vectors)
    for g0 in range(0, n, gallery_chunk):
        g1 = min(n, g0 + gallery_chunk)
        scores = p32 @ g.vectors[g0:g1].T
        if g.one_per_identity:
            codes = g.codes[g0:g1]
        else:  # best template per identity: identities are contiguous runs of rows
            inner = g.starts[(g.starts > g0) & (g.starts < g1)] - g0
            runs = np.r_[0, inner].astype(np.int64)
            scores = np.maximum.reduceat(scores, runs, axis=1)
            codes = g.codes[g0 + runs]
        p, c, s = _block_candidates(scores, k, margin)
        ps.append(p)
        cs.append(codes[c])
        ss.append(s)
    return np.concatenate(ps), np.concatenate(cs), np.concatenate(ss)


def _exact_scores(p64: np.ndarray, probe: np.ndarray, g: Templates, rows: np.ndarray,
                  chunk: int = 65536) -> np.ndarray:
    """float64 dot products of probe `probe[i]` and template `rows[i]` (each pair on its own:
    the value never depends on which other pairs are computed)."""
    out = np.empty(len(rows), dtype=np.float64)
    for s in range(0, len(rows), chunk):
        a = p64[probe[s:s + chunk]]
        b = g.vectors[rows[s:s + chunk]].astype(np.float64)
        out[s:s + chunk] = np.vecdot(a, b)
    return out


def rank_candidates(p64: np.ndarray, g: Templates, probe: np.ndarray, code: np.ndarray,
                    approx: np.ndarray | None, k: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The top k identities of each probe among its candidates (probe, identity code).

    With `approx` (float32 scores within :func:`score_margin` of the truth), only the candidates
    within the margin of the probe's k-th best are scored exactly; without, all are. Every
    template of a candidate identity is scored in float64; ranked by (-similarity, the best
    template's caller row). Returns (n_probes, k) identity codes, caller rows, similarities,
    and each probe's number of distinct candidates.
    """
    nq = len(p64)
    if not g.one_per_identity:  # an identity may come more than once (templates, chunks)
        key = (code, probe) if approx is None else (-approx, code, probe)
        order = np.lexsort(key)
        probe, code = probe[order], code[order]
        approx = None if approx is None else approx[order]
        first = np.r_[True, (probe[1:] != probe[:-1]) | (code[1:] != code[:-1])]
        probe, code = probe[first], code[first]
        approx = None if approx is None else approx[first]
    n_found = np.bincount(probe, minlength=nq)
    if approx is not None:
        order = np.lexsort((-approx, probe))
        probe, code, approx = probe[order], code[order], approx[order]
        pos = np.arange(len(probe)) - np.searchsorted(probe, probe)
        kth = np.full(nq, -np.inf, dtype=np.float64)
        at = pos == k - 1
        kth[probe[at]] = approx[at]
        keep = approx >= kth[probe] - score_margin(g.dim)
        probe, code = probe[keep], code[keep]
    if g.one_per_identity:  # the identity's one template
        rows = g.starts[code]
        b_sim, b_row = _exact_scores(p64, probe, g, rows), g.rows[rows]
        b_probe, b_code = probe, code
    else:  # every template of every kept identity, scored exactly; the best of each
        count = g.starts[code + 1] - g.starts[code]
        group = np.repeat(np.arange(len(code)), count)
        offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        rows = g.starts[code][group] + offset
        sim = _exact_scores(p64, probe[group], g, rows)
        caller_row = g.rows[rows]
        order = np.lexsort((caller_row, -sim, group))
        best = order[np.r_[True, group[order][1:] != group[order][:-1]]] if len(order) else order
        b_probe, b_code = probe[group[best]], code[group[best]]
        b_sim, b_row = sim[best], caller_row[best]
    order = np.lexsort((b_row, -b_sim, b_probe))
    b_probe, b_code, b_sim, b_row = b_probe[order], b_code[order], b_sim[order], b_row[order]
    pos = np.arange(len(b_probe)) - np.searchsorted(b_probe, b_probe)
    take = pos < k
    out_code = np.full((nq, k), -1, dtype=np.int64)
    out_row = np.full((nq, k), -1, dtype=np.int64)
    out_sim = np.full((nq, k), -np.inf, dtype=np.float64)
    at = (b_probe[take], pos[take])
    out_code[at], out_row[at], out_sim[at] = b_code[take], b_row[take], b_sim[take]
    return out_code, out_row, out_sim, n_found


def top_k(probes, gallery: Templates, k: int = 5, *, metric: str = "sum_squared",
          method: str = "exact", index: Any = None,
          probe_chunk: int = PROBE_CHUNK, gallery_chunk: int = GALLERY_CHUNK,
          threads: int | None = None) -> TopK:
    """The `k` most similar identities of each probe (see the module docstring).

    Args:
        probes: (n, d) unit-norm embeddings (a (d,) vector: one probe).
        gallery: :func:`templates` of the enrolled embeddings.
        k: identities per probe (padded with -1 / -inf / inf when the gallery has fewer).
        metric: the distance reported beside the similarity (:data:`SEARCH_METRICS`).
        method: ``exact`` or ``index`` (then `index`, a :class:`SearchIndex` built on
            `gallery`, gives the shortlists).
        probe_chunk, gallery_chunk: block sizes of the exact search (memory: a
            probe_chunk x gallery_chunk float32 block); the result does not depend on them.
        threads: faiss's threads for the index search (None: faiss's default).

    Returns:
        :class:`TopK`.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    similarity_to_distance(0.0, metric)  # checks the metric
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be an integer >= 1, got {k!r}")
    if probe_chunk < 1 or gallery_chunk < 1:
        raise InputError(f"chunk sizes must be >= 1, got {probe_chunk} and {gallery_chunk}")
    k = int(k)
    p32 = _unit_rows(probes, "probes", gallery.dim)
    nq = len(p32)
    if method == "index":
        if index is None:
            raise InputError("method 'index' needs a SearchIndex built on this gallery")
        index.check(gallery)
    codes = np.full((nq, k), -1, dtype=np.int64)
    rows = np.full((nq, k), -1, dtype=np.int64)
    sims = np.full((nq, k), -np.inf, dtype=np.float64)
    if len(gallery.vectors):
        step = probe_chunk if method == "exact" else max(probe_chunk, 1024)
        for q0 in range(0, nq, step):
            block = p32[q0:q0 + step]
            if method == "exact":
                out = rank_candidates(block.astype(np.float64), gallery,
                            *_exact_candidates(block, gallery, k, gallery_chunk), k)[:3]
            else:
                out = index.top_k_codes(block, gallery, k, threads)
            codes[q0:q0 + step], rows[q0:q0 + step], sims[q0:q0 + step] = out
    return TopK(codes, rows, sims, similarity_to_distance(sims, metric), gallery.labels,
                metric, method)
