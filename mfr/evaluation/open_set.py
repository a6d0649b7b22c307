"""Open-set 1:N identification metrics as NIST FRVT 1:N defines them (Grother, Ngan, Hanaoka,
NISTIR 8271): arrays in, numbers out.

A *search* is one probe against a gallery of N enrolled identities; it is **mated** when the
probe's identity is enrolled, **non-mated** when it is not. mfr's convention holds: lower
distance = more similar, and a candidate is *returned at threshold T* when its distance is
<= T (NIST's "score >= T" for similarity scores).

- **FNIR(N, R, T)** (:func:`fnir`): the fraction of mated searches whose mate is not among the
  top R candidates at distance <= T. R = 1 is the lights-out decision (the first candidate, or
  "not in the gallery"); R = the candidate list's length counts the mate wherever it is listed.
- **FPIR(N, T)** (:func:`fpir`): the fraction of non-mated searches with any candidate at
  distance <= T, i.e. whose nearest identity is at distance <= T.
- **FNIR at FPIR x** (:func:`fnir_at_fpir`): T chosen on the non-mated searches alone
  (:func:`threshold_at_fpir`): the largest T whose FPIR is <= x. Non-mated searches tied at a
  distance are all in or all out, so T sits just below (``nextafter``) the nearest non-mated
  distance that would take FPIR above x, and the FPIR reached may be below x. With fewer than
  1/x non-mated searches that is FPIR 0.
- **Rank-k identification rate and CMC** (:func:`cmc`): closed set, no threshold: the fraction
  of mated searches whose mate is within the top k (1 - FNIR(N, k, inf)).

Ranks: an identity's distance to a probe is that of its nearest template; ties count against the
probe (rank = 1 + the identities other than the mate at a distance <= the mate's), as
:func:`mfr.evaluation.metrics.identification_ranks` ranks them for the closed-set tables.

A search is held as :class:`Searches`, made either from a full probes x gallery distance matrix
(:func:`searches_from_distances`) or from candidate lists, e.g. the top k of
:func:`mfr.gallery.search.top_k` (:func:`searches_from_candidates`; ranks beyond k are then
unknown, and asking for them is an error). Intervals (:func:`bootstrap_open_set`): percentile
bootstrap over probe subjects, the gallery fixed, the threshold chosen again in every resample,
with the draws of :func:`mfr.evaluation.metrics.subject_draws`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfr.core.errors import InputError
from mfr.evaluation.metrics import (
    identification_ranks,
    percentile_interval,
    subject_distances,
    subject_draws,
)

__all__ = [
    "FPIR_TARGETS",
    "Searches",
    "bootstrap_open_set",
    "cmc",
    "fnir",
    "fnir_at_fpir",
    "fpir",
    "open_set_metrics",
    "searches_from_candidates",
    "searches_from_distances",
    "threshold_at_fpir",
]

#: metrics key -> target FPIR
FPIR_TARGETS: dict[str, float] = {"fnir_at_fpir_0_1pct": 0.001, "fnir_at_fpir_1pct": 0.01,
                                  "fnir_at_fpir_10pct": 0.1}


@dataclass(frozen=True, eq=False)
class Searches:
    """The outcome of each search, all that the metrics need.

    ``mated`` (bool): the probe's identity is enrolled. ``mate_rank`` (int64): the mate's rank
    (1 = first), 0 where it is not within the ranks known (``max_rank``) or the search is
    non-mated. ``mate_distance``: the mate's distance (inf where its rank is 0 for a mated
    search, NaN for a non-mated one). ``top_distance``: the nearest identity's distance (inf
    where none was returned). ``max_rank``: ranks up to it are known (k for candidate lists, N
    for a full matrix). ``n_identities``: N, the enrolled identities.
    """

    mated: np.ndarray
    mate_rank: np.ndarray
    mate_distance: np.ndarray
    top_distance: np.ndarray
    max_rank: int
    n_identities: int

    @property
    def n_mated(self) -> int:
        return int(self.mated.sum())

    @property
    def n_nonmated(self) -> int:
        return int((~self.mated).sum())


def searches_from_distances(dist, probe_subjects: Sequence, gallery_subjects: Sequence
                            ) -> Searches:
    """:class:`Searches` of every probe against every gallery image.

    Args:
        dist: (n_probes, n_gallery) distances (:func:`mfr.evaluation.metrics.distance_matrix`;
            one column per template, or per identity).
        probe_subjects, gallery_subjects: each probe's / gallery image's identity.
    """
    dist = np.asarray(dist, np.float64)
    p = np.asarray(probe_subjects, dtype=str).ravel()
    ranks = identification_ranks(dist, p, gallery_subjects)  # checks the shapes
    if not np.isfinite(dist).all():
        raise InputError(f"{int((~np.isfinite(dist)).sum())} distances are not finite")
    subjects, per_subject = subject_distances(dist, gallery_subjects)
    index = {s: j for j, s in enumerate(subjects.tolist())}
    mate = np.array([index.get(s, -1) for s in p.tolist()], dtype=np.int64)
    mated = mate >= 0
    mate_d = np.full(len(p), np.nan)
    mate_d[mated] = per_subject[np.flatnonzero(mated), mate[mated]]
    top = per_subject.min(axis=1) if len(subjects) else np.full(len(p), np.inf)
    return Searches(mated, ranks, mate_d, top, len(subjects), len(subjects))


def searches_from_candidates(candidate_subjects, candidate_distances, probe_subjects: Sequence,
                             gallery_subjects: Sequence) -> Searches:
    """:class:`Searches` from each probe's candidate list.

    Args:
        candidate_subjects: (n_probes, k) identities, nearest first, each at most once a row
            (:attr:`mfr.gallery.search.TopK.identities`).
        candidate_distances: (n_probes, k) their distances, non-decreasing along a row; a
            non-finite distance marks an empty slot (a gallery of fewer than k identities).
        probe_subjects: each probe's identity.
        gallery_subjects: the enrolled identities (which probes are mated).
    """
    d = np.asarray(candidate_distances, np.float64)
    c = np.asarray(candidate_subjects, dtype=object)
    p = np.asarray(probe_subjects, dtype=str).ravel()
    if d.ndim != 2 or c.shape != d.shape or len(p) != len(d):
        raise InputError(f"candidate lists {c.shape} and distances {d.shape} do not match "
                         f"{len(p)} probes x k candidates")
    filled = np.isfinite(d)
    if (filled[:, 1:] & ~filled[:, :-1]).any():
        raise InputError("candidate lists: an empty slot before a filled one")
    dd = np.where(filled, d, np.inf)
    if (np.diff(dd, axis=1) < 0).any():
        raise InputError("candidate lists must be sorted nearest first (non-decreasing "
                         "distances)")
    cs = np.where(filled, c.astype(str), "")
    srt = np.sort(cs, axis=1)
    if ((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] != "")).any():
        raise InputError("candidate lists: an identity listed twice for one probe (rank "
                         "identities, each by its best template)")
    enrolled = np.unique(np.asarray(gallery_subjects, dtype=str).ravel())
    mated = np.isin(p, enrolled)
    hit = (cs == p[:, None]) & filled & mated[:, None]
    found = hit.any(axis=1)
    mate_d = np.where(mated, np.inf, np.nan)
    mate_d[found] = dd[found, hit[found].argmax(axis=1)]
    ranks = np.zeros(len(p), dtype=np.int64)
    ranks[found] = (dd[found] <= mate_d[found, None]).sum(axis=1)
    top = dd[:, 0] if d.shape[1] else np.full(len(p), np.inf)
    return Searches(mated, ranks, mate_d, top, min(d.shape[1], len(enrolled)), len(enrolled))


# --------------------------------------------------------------------------- rates


def _check_rank(s: Searches, rank: int) -> int:
    if not isinstance(rank, (int, np.integer)) or rank < 1:
        raise InputError(f"rank must be an integer >= 1, got {rank!r}")
    if rank > s.max_rank and s.max_rank < s.n_identities:
        raise InputError(f"rank {rank}: the candidate lists rank only {s.max_rank} identities")
    return int(rank)


def _weights(s: Searches, weights) -> np.ndarray:
    if weights is None:
        return np.ones(len(s.mated))
    w = np.asarray(weights, np.float64).ravel()
    if len(w) != len(s.mated) or (w < 0).any():
        raise InputError(f"weights: {len(s.mated)} non-negative numbers expected")
    return w


def fpir(searches: Searches, thresholds, weights=None) -> np.ndarray:
    """FPIR(N, T) for each threshold T: the (weighted) fraction of non-mated searches whose
    nearest identity is at distance <= T (NaN without non-mated searches)."""
    t = np.asarray(thresholds, np.float64)
    w = _weights(searches, weights)
    nm = ~searches.mated & np.isfinite(searches.top_distance)
    total = w[~searches.mated].sum()
    if total == 0:
        return np.full(t.shape, np.nan)
    order = np.argsort(searches.top_distance[nm], kind="stable")
    u, cw = searches.top_distance[nm][order], np.r_[0.0, np.cumsum(w[nm][order])]
    return cw[np.searchsorted(u, t, side="right")] / total


def fnir(searches: Searches, thresholds, rank: int = 1, weights=None) -> np.ndarray:
    """FNIR(N, R, T) for each threshold T: the (weighted) fraction of mated searches whose mate
    is not among the top `rank` at distance <= T (NaN without mated searches)."""
    rank = _check_rank(searches, rank)
    t = np.asarray(thresholds, np.float64)
    w = _weights(searches, weights)
    total = w[searches.mated].sum()
    if total == 0:
        return np.full(t.shape, np.nan)
    ok = searches.mated & (searches.mate_rank >= 1) & (searches.mate_rank <= rank)
    order = np.argsort(searches.mate_distance[ok], kind="stable")
    v, cw = searches.mate_distance[ok][order], np.r_[0.0, np.cumsum(w[ok][order])]
    return 1.0 - cw[np.searchsorted(v, t, side="right")] / total


def threshold_at_fpir(searches: Searches, target: float, weights=None) -> float:
    """The largest distance threshold whose FPIR is <= `target` (see the module docstring);
    inf when every non-mated search may be returned; NaN without non-mated searches."""
    if not 0 <= target <= 1:
        raise InputError(f"target FPIR must be in [0, 1], got {target}")
    w = _weights(searches, weights)
    total = w[~searches.mated].sum()
    if total == 0:
        return float("nan")
    nm = ~searches.mated & np.isfinite(searches.top_distance)
    order = np.argsort(searches.top_distance[nm], kind="stable")
    u, cw = searches.top_distance[nm][order], np.cumsum(w[nm][order])
    # the first non-mated search (nearest first) whose acceptance takes FPIR above the target
    over = np.flatnonzero(cw / total > target)
    if not over.size:
        return float("inf")
    return float(np.nextafter(u[over[0]], -np.inf))


def fnir_at_fpir(searches: Searches, target: float, rank: int = 1, weights=None
                 ) -> dict[str, Any]:
    """FNIR(N, R, T) at the threshold T of :func:`threshold_at_fpir`: ``{"threshold",
    "fpir" (reached), "fnir", "rank", "target_fpir"}`` (NaN values where a class is empty)."""
    t = threshold_at_fpir(searches, target, weights)
    return {"target_fpir": float(target), "rank": _check_rank(searches, rank), "threshold": t,
            "fpir": float(fpir(searches, t, weights)) if t == t else float("nan"),
            "fnir": float(fnir(searches, t, rank, weights)) if t == t else float("nan")}


def cmc(searches: Searches, max_rank: int | None = None, weights=None) -> np.ndarray:
    """Identification rate at ranks 1..`max_rank` (default: every rank known): the (weighted)
    fraction of mated searches whose mate is within the top r (NaN without mated searches)."""
    r = searches.max_rank if max_rank is None else _check_rank(searches, max_rank)
    w = _weights(searches, weights)
    total = w[searches.mated].sum()
    if total == 0:
        return np.full(r, np.nan)
    ranks = np.where(searches.mated, searches.mate_rank, 0)
    hits = np.bincount(np.minimum(ranks, r + 1), weights=w, minlength=r + 2)[1:r + 1]
    return np.cumsum(hits) / total


# --------------------------------------------------------------------------- summary


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _known_ranks(searches: Searches, ranks: Sequence[int]) -> dict[int, int]:
    """{k: the CMC rank giving rank-k} for the k that can be known: every k of a full ranking
    (past N every mate is found), k <= the list length of candidate lists."""
    full = searches.max_rank >= searches.n_identities
    return {int(k): min(int(k), searches.max_rank) for k in ranks
            if k >= 1 and (full or k <= searches.max_rank) and searches.max_rank >= 1}


def open_set_metrics(searches: Searches, fpir_targets: Mapping[str, float] = FPIR_TARGETS,
                     ranks: Sequence[int] = (1, 5), fnir_rank: int = 1) -> dict[str, Any]:
    """Every open-set number of a set of searches, JSON-ready.

    Returns ``n_searches``, ``n_mated``, ``n_nonmated``, ``n_identities`` (N), ``max_rank``,
    ``rank_<k>`` (for the k that candidate lists of length ``max_rank`` can tell) and ``cmc``
    (closed set, mated searches), one entry per `fpir_targets` key
    (:func:`fnir_at_fpir` at rank `fnir_rank`; a threshold of inf is written None),
    ``notes`` (targets finer than one non-mated search) and ``null_reason``.
    """
    n_m, n_nm = searches.n_mated, searches.n_nonmated
    out: dict[str, Any] = {"n_searches": n_m + n_nm, "n_mated": n_m, "n_nonmated": n_nm,
                           "n_identities": int(searches.n_identities),
                           "max_rank": int(searches.max_rank), "null_reason": None, "notes": []}
    curve = cmc(searches) if n_m else np.zeros(0)
    out.update({f"rank_{k}": float(curve[r - 1]) if n_m else None
                for k, r in _known_ranks(searches, ranks).items()})
    out["cmc"] = [float(x) for x in curve]
    for key, target in fpir_targets.items():
        if not (n_m and n_nm):
            out[key] = None
            continue
        r = fnir_at_fpir(searches, target, fnir_rank)
        out[key] = {**r, "threshold": _finite_or_none(r["threshold"])}
        if n_nm * target < 1:
            out["notes"].append(f"{key}: {n_nm} non-mated searches, so the smallest FPIR above "
                                f"0 is 1/{n_nm} = {1 / n_nm:.2%} > {target:.1%}: this is the "
                                f"FNIR at FPIR 0")
    if not n_m:
        out["null_reason"] = "no mated searches (no probe's identity is enrolled)"
    elif not n_nm:
        out["null_reason"] = ("no non-mated searches (every probe's identity is enrolled): "
                              "FPIR and FNIR at FPIR are undefined")
    return out


def bootstrap_open_set(searches: Searches, probe_subjects: Sequence,
                       fpir_targets: Mapping[str, float] = FPIR_TARGETS,
                       ranks: Sequence[int] = (1, 5), fnir_rank: int = 1,
                       n_resamples: int = 1000, seed: int = 2021, confidence: float = 0.95
                       ) -> dict[str, Any]:
    """Percentile intervals of the open-set numbers, resampling probe subjects.

    One resample draws the S probe subjects (sorted) with replacement
    (:func:`mfr.evaluation.metrics.subject_draws`, the same draws as the closed-set
    :func:`mfr.evaluation.metrics.bootstrap_identification` for the same subjects and seed);
    each probe counts once per draw of its subject, mated and non-mated alike, the gallery stays
    fixed, and every FNIR at FPIR chooses its threshold again on the resampled non-mated
    searches. Returns ``{"unit", "n_resamples", "seed", "confidence", "intervals": {key:
    {"low", "high", "n_valid"}}}`` for ``rank_<k>`` and the `fpir_targets` keys.
    """
    p = np.asarray(probe_subjects, dtype=str).ravel()
    if len(p) != len(searches.mated):
        raise InputError(f"{len(searches.mated)} searches but {len(p)} probe subjects")
    if n_resamples < 1:
        raise InputError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    ks = _known_ranks(searches, ranks)
    keys = [f"rank_{k}" for k in ks] + list(fpir_targets)
    samples = {key: np.full(n_resamples, np.nan) for key in keys}
    subjects, code = np.unique(p, return_inverse=True)
    max_r = max(ks.values(), default=0)
    for i, counts in enumerate(subject_draws(len(subjects), n_resamples, seed)):
        w = counts[code].astype(np.float64)
        if max_r:
            curve = cmc(searches, max_r, w)
            for k, r in ks.items():
                samples[f"rank_{k}"][i] = curve[r - 1]
        for key, target in fpir_targets.items():
            samples[key][i] = fnir_at_fpir(searches, target, fnir_rank, w)["fnir"]
    return {"unit": "probe subject", "n_resamples": int(n_resamples), "seed": int(seed),
            "confidence": float(confidence),
            "intervals": {key: percentile_interval(v, confidence) for key, v in samples.items()}}
