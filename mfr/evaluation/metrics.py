"""Verification and identification metrics of pair distances: arrays in, numbers out.

Conventions (all of mfr): a lower distance means more similar; label 1 = genuine (same
subject), 0 = impostor. A pair is *accepted* (declared a match) at threshold t when its
distance is <= t.

- **ROC** (:func:`roc`): scikit-learn's ``roc_curve`` on scores = -distance with genuine as the
  positive class, every threshold kept (``drop_intermediate=False``). FMR (false match rate) =
  impostors accepted / impostors; TMR = genuine accepted / genuine; FNMR = 1 - TMR.
- **EER** (:func:`eer_from_roc`): where the ROC, as the piecewise-linear curve through its
  points, crosses FNMR = FMR (linear interpolation between the two points around the crossing).
- **FNMR at FMR x** (:func:`fnmr_at_fmr_from_roc`): the lowest FNMR among the ROC's points with
  FMR <= x, i.e. of the largest threshold whose FMR does not exceed x (no interpolation: an
  operating point one can actually set). With fewer than 1/x impostors only FMR = 0 qualifies.
- **Fisher discriminant ratio**: (muG - muI)^2 / (sdG^2 + sdI^2), population variances.
- **Bootstrap over subjects** (:func:`bootstrap_subjects`): see its docstring.
- **Identification** (:func:`identification`): 1:N, probe vs gallery, ranks by subject.

A metric that needs both classes is ``None`` with a reason (``null_reason``) when a class is
empty; :func:`verification_metrics` never raises for that.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = [
    "BOOTSTRAP_STATS",
    "FMR_TARGETS",
    "THRESHOLD_RULES",
    "Roc",
    "apply_threshold",
    "bootstrap_identification",
    "bootstrap_subjects",
    "choose_threshold",
    "cv_accuracy",
    "distance_matrix",
    "eer",
    "eer_from_roc",
    "fisher_ratio",
    "fnmr_at_fmr",
    "fnmr_at_fmr_from_roc",
    "identification",
    "identification_ranks",
    "missing_class",
    "percentile_interval",
    "roc",
    "subject_distances",
    "subject_draws",
    "subject_weights",
    "verification_metrics",
]

#: metrics.json key -> target FMR
FMR_TARGETS: dict[str, float] = {"fnmr_at_fmr_1pct": 0.01, "fnmr_at_fmr_0_1pct": 0.001}
#: how a decision threshold is chosen on validation pairs (:func:`choose_threshold`)
THRESHOLD_RULES: dict[str, float | None] = {"eer": None, "fmr_1pct": 0.01, "fmr_0_1pct": 0.001}
#: the statistics :func:`bootstrap_subjects` gives intervals for
BOOTSTRAP_STATS = ("auc", "eer", *FMR_TARGETS, "gmean", "imean", "median_genuine",
                   "median_impostor", "gap", "fisher")


def _check(distances, labels) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if d.shape != y.shape:
        raise InputError(f"distances and labels differ in length: {len(d)} vs {len(y)}")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"labels must be 0 (impostor) or 1 (genuine), got "
                         f"{sorted(set(y.tolist()))[:5]}")
    if not np.isfinite(d).all():
        raise InputError(f"{int((~np.isfinite(d)).sum())} distances are not finite")
    return d, y.astype(np.int64)


def missing_class(labels) -> str | None:
    """None when `labels` hold both genuine (1) and impostor (0) pairs, else why not."""
    y = np.asarray(labels)
    n_gen = int(y.sum())
    if n_gen == 0 and len(y) == n_gen:
        return "no pairs"
    if n_gen == 0:
        return "no genuine pairs: metrics that compare the two classes are undefined"
    if n_gen == len(y):
        return "no impostor pairs: metrics that compare the two classes are undefined"
    return None


# --------------------------------------------------------------------------- ROC


@dataclass(frozen=True)
class Roc:
    """ROC points, from "accept nothing" to "accept everything".

    ``thresholds[k]`` is the distance threshold of point k (accept when distance <= it); point 0
    accepts nothing (threshold -inf).
    """

    fmr: np.ndarray
    tmr: np.ndarray
    thresholds: np.ndarray

    @property
    def fnmr(self) -> np.ndarray:
        return 1.0 - self.tmr


def roc(distances, labels) -> Roc:
    """ROC of pair distances (scikit-learn ``roc_curve`` on -distance, genuine positive).

    Args:
        distances: (n,) pair distances, lower = more similar.
        labels: (n,) 1 genuine, 0 impostor; both classes must be present.

    Returns:
        :class:`Roc` with every distinct threshold (``drop_intermediate=False``).
    """
    from sklearn.metrics import roc_curve

    d, y = _check(distances, labels)
    why = missing_class(y)
    if why:
        raise InputError(f"ROC undefined: {why}")
    fpr, tpr, thr = roc_curve(y, -d, drop_intermediate=False)
    return Roc(fpr.astype(np.float64), tpr.astype(np.float64), -thr.astype(np.float64))


def eer_from_roc(fmr: np.ndarray, fnmr: np.ndarray) -> float:
    """Equal error rate of ROC points (FMR non-decreasing, FNMR non-increasing, from (0, 1) to
    (1, 0)): where the line through consecutive points crosses FNMR = FMR."""
    fmr, fnmr = np.asarray(fmr, np.float64), np.asarray(fnmr, np.float64)
    diff = fnmr - fmr  # non-increasing, from +1 to -1
    k = int(np.argmax(diff <= 0))
    if diff[k] == 0 or k == 0:
        return float(fmr[k])
    t = diff[k - 1] / (diff[k - 1] - diff[k])
    return float(fmr[k - 1] + t * (fmr[k] - fmr[k - 1]))


def fnmr_at_fmr_from_roc(fmr: np.ndarray, fnmr: np.ndarray, target: float) -> float:
    """The lowest FNMR among ROC points whose FMR is <= `target`."""
    fmr, fnmr = np.asarray(fmr, np.float64), np.asarray(fnmr, np.float64)
    return float(fnmr[fmr <= target].min())


def eer(distances, labels) -> float:
    """Equal error rate of pair distances (see the module docstring)."""
    r = roc(distances, labels)
    return eer_from_roc(r.fmr, r.fnmr)


def fnmr_at_fmr(distances, labels, target: float = 0.01) -> float:
    """FNMR at the largest threshold whose FMR is <= `target` (FMR100: 0.01, FMR1000: 0.001)."""
    r = roc(distances, labels)
    return fnmr_at_fmr_from_roc(r.fmr, r.fnmr, target)


def fisher_ratio(distances, labels) -> float | None:
    """(muG - muI)^2 / (varG + varI) (population variances); None if a class is empty or both
    variances are 0."""
    d, y = _check(distances, labels)
    g, i = d[y == 1], d[y == 0]
    if not g.size or not i.size:
        return None
    den = g.var() + i.var()
    return float((g.mean() - i.mean()) ** 2 / den) if den > 0 else None


def _stat(fn, x: np.ndarray) -> float | None:
    return float(fn(x)) if x.size else None


def verification_metrics(distances, labels) -> dict[str, Any]:
    """Every verification number of one set of pair distances, JSON-ready.

    Returns a dict: ``n_pairs``, ``n_genuine``, ``n_impostor``, ``gmean``, ``imean``,
    ``median_genuine``, ``median_impostor``, ``gap`` (median impostor - median genuine),
    ``auc``, ``eer``, ``eer_threshold`` (the distance of the ROC point nearest the EER),
    ``fnmr_at_fmr_1pct``, ``fnmr_at_fmr_0_1pct``, ``fisher``, and ``null_reason`` (None, or
    why the metrics needing both classes are None).
    """
    from sklearn.metrics import auc as sk_auc

    d, y = _check(distances, labels)
    g, i = d[y == 1], d[y == 0]
    out: dict[str, Any] = {
        "n_pairs": int(d.size), "n_genuine": int(g.size), "n_impostor": int(i.size),
        "gmean": _stat(np.mean, g), "imean": _stat(np.mean, i),
        "median_genuine": _stat(np.median, g), "median_impostor": _stat(np.median, i),
    }
    out["gap"] = (None if out["median_genuine"] is None or out["median_impostor"] is None
                  else out["median_impostor"] - out["median_genuine"])
    why = missing_class(y)
    out["null_reason"] = why
    keys = ("auc", "eer", "eer_threshold", *FMR_TARGETS, "fisher")
    if why:
        out.update(dict.fromkeys(keys))
        return out
    r = roc(d, y)
    out["auc"] = float(sk_auc(r.fmr, r.tmr))
    out["eer"] = eer_from_roc(r.fmr, r.fnmr)
    out["eer_threshold"] = choose_threshold(d, y, "eer")
    for key, target in FMR_TARGETS.items():
        out[key] = fnmr_at_fmr_from_roc(r.fmr, r.fnmr, target)
    out["fisher"] = fisher_ratio(d, y)
    return out


# --------------------------------------------------------------------------- thresholds


def choose_threshold(distances, labels, rule: str = "eer") -> float:
    """A decision threshold (accept when distance <= it) chosen on these pairs.

    - ``"eer"``: the ROC point where |FNMR - FMR| is smallest (the smallest such threshold).
    - ``"fmr_1pct"`` / ``"fmr_0_1pct"``: the largest threshold whose FMR is <= 1% / 0.1%
      (below the smallest distance when even that admits too many impostors).
    """
    if rule not in THRESHOLD_RULES:
        raise InputError(f"threshold rule must be one of {list(THRESHOLD_RULES)}, got {rule!r}")
    r = roc(distances, labels)
    target = THRESHOLD_RULES[rule]
    if target is None:
        k = 1 + int(np.argmin(np.abs(r.fnmr[1:] - r.fmr[1:])))
    else:
        k = int(np.flatnonzero(r.fmr <= target)[-1])
    if k == 0:  # accept nothing: just below the smallest distance
        return float(np.nextafter(r.thresholds[1], -np.inf))
    return float(r.thresholds[k])


def apply_threshold(distances, labels, threshold: float) -> dict[str, Any]:
    """Accuracy, FMR and FNMR when pairs with distance <= `threshold` are accepted (a rate of an
    empty class is None)."""
    d, y = _check(distances, labels)
    acc = d <= threshold
    g, i = y == 1, y == 0
    return {
        "threshold": float(threshold),
        "n_pairs": int(d.size), "n_genuine": int(g.sum()), "n_impostor": int(i.sum()),
        "accuracy": float(np.mean(acc == g)) if d.size else None,
        "fmr": float(acc[i].mean()) if i.any() else None,
        "fnmr": float((~acc[g]).mean()) if g.any() else None,
    }


def _max_accuracy_threshold(d: np.ndarray, y: np.ndarray) -> float:
    """A threshold of highest accuracy on (d, y): of the cuts between consecutive distinct
    distances (and below the smallest, above the largest) the first of highest accuracy,
    placed midway between the two distances it separates."""
    order = np.argsort(d, kind="stable")
    ds, ys = d[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(ds) != 0), len(ds) - 1]
    tp = np.r_[0, np.cumsum(ys)[ends]]
    fp = np.r_[0, np.cumsum(1 - ys)[ends]]
    correct = tp + (int((1 - ys).sum()) - fp)
    k = int(np.argmax(correct))
    if k == 0:
        return float(np.nextafter(ds[0], -np.inf))
    if k == len(ends):
        return float(ds[-1])
    return float((ds[ends[k - 1]] + ds[ends[k - 1] + 1]) / 2)


def cv_accuracy(distances, labels, n_folds: int = 10, seed: int = 2021) -> dict[str, Any]:
    """LFW-style verification accuracy: pairs in `n_folds` stratified folds (seeded); for each
    fold, the threshold of highest accuracy on the other folds, applied to it.

    Returns ``accuracy`` (mean over folds), ``accuracy_std``, ``n_folds``, ``thresholds``
    (one per fold), or None values with ``null_reason`` when a class has fewer than 2 pairs.
    """
    from sklearn.model_selection import StratifiedKFold

    d, y = _check(distances, labels)
    k = min(n_folds, int(y.sum()), int((1 - y).sum()))
    if k < 2:
        return {"accuracy": None, "accuracy_std": None, "n_folds": 0, "thresholds": [],
                "null_reason": "needs at least 2 genuine and 2 impostor pairs"}
    accs, thrs = [], []
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in folds.split(d, y):
        t = _max_accuracy_threshold(d[train], y[train])
        thrs.append(t)
        accs.append(float(np.mean((d[test] <= t) == (y[test] == 1))))
    return {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "n_folds": k, "thresholds": thrs, "null_reason": None}


# --------------------------------------------------------------------------- bootstrap


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """np.median of `values` (sorted ascending) each repeated `weights` (integers) times."""
    c = np.cumsum(weights)
    total = int(c[-1])
    lo = values[np.searchsorted(c, (total - 1) // 2, side="right")]
    hi = values[np.searchsorted(c, total // 2, side="right")]
    return float((lo + hi) / 2)


def _weighted_stats(ds: np.ndarray, ys: np.ndarray, w: np.ndarray, ends: np.ndarray) -> dict:
    """The :data:`BOOTSTRAP_STATS` of sorted distances `ds` (labels `ys`) with integer pair
    weights `w`: the same numbers as on the pairs repeated `w` times (NaN where undefined)."""
    nan = float("nan")
    gm, im = ys == 1, ys == 0
    wg, wi = w * gm, w * im
    n_g, n_i = int(wg.sum()), int(wi.sum())
    out = dict.fromkeys(BOOTSTRAP_STATS, nan)
    if n_g:
        out["gmean"] = float(np.average(ds[gm], weights=w[gm]))
        out["median_genuine"] = _weighted_median(ds[gm], w[gm])
    if n_i:
        out["imean"] = float(np.average(ds[im], weights=w[im]))
        out["median_impostor"] = _weighted_median(ds[im], w[im])
    if not (n_g and n_i):
        return out
    out["gap"] = out["median_impostor"] - out["median_genuine"]
    tmr = np.r_[0.0, np.cumsum(wg)[ends] / n_g]
    fmr = np.r_[0.0, np.cumsum(wi)[ends] / n_i]
    out["auc"] = float(np.trapezoid(tmr, fmr))
    out["eer"] = eer_from_roc(fmr, 1.0 - tmr)
    for key, target in FMR_TARGETS.items():
        out[key] = fnmr_at_fmr_from_roc(fmr, 1.0 - tmr, target)
    var = (np.average((ds[gm] - out["gmean"]) ** 2, weights=w[gm])
           + np.average((ds[im] - out["imean"]) ** 2, weights=w[im]))
    out["fisher"] = float((out["gmean"] - out["imean"]) ** 2 / var) if var > 0 else nan
    return out


def subject_draws(n_subjects: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The subject bootstrap's draws: for each of `n_resamples` resamples, how many times each
    of `n_subjects` subjects is drawn (S draws with replacement,
    ``np.random.default_rng(seed).integers``); nothing when there are no subjects."""
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples if n_subjects else 0):
        yield np.bincount(rng.integers(0, n_subjects, size=n_subjects), minlength=n_subjects)


def percentile_interval(values: np.ndarray, confidence: float) -> dict[str, Any]:
    """``{"low", "high", "n_valid"}``: the (1-confidence)/2 and (1+confidence)/2 percentiles
    (numpy's linear) of the finite `values` (None when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    ok = v[np.isfinite(v)]
    lo_q, hi_q = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
    return {"low": float(np.percentile(ok, lo_q)) if ok.size else None,
            "high": float(np.percentile(ok, hi_q)) if ok.size else None,
            "n_valid": int(ok.size)}


def subject_weights(draw_counts: np.ndarray, u_code: np.ndarray, m_code: np.ndarray) -> np.ndarray:
    """How many times each pair enters a subject resample: a drawn subject brings every pair
    whose unmasked or masked image is theirs, so a pair counts once per draw of its unmasked
    subject plus once per draw of its masked subject (a genuine pair, whose two subjects are
    one, once per draw of that subject)."""
    same = u_code == m_code
    return draw_counts[u_code] + np.where(same, 0, draw_counts[m_code])


def bootstrap_subjects(
    distances,
    labels,
    unmasked_subjects: Sequence[str],
    masked_subjects: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 2021,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Percentile bootstrap confidence intervals of the verification statistics, resampling
    subjects, not pairs (the pairs of one subject share images, so they are not independent).

    One resample: draw S subjects with replacement from the S subjects of the pairs (sorted;
    ``np.random.default_rng(seed).integers``); every pair whose unmasked or masked image is a
    drawn subject's enters once per such draw (:func:`subject_weights`: a genuine pair once per
    draw of its subject, an impostor pair once per draw of either of its two subjects). The
    statistics of the resampled pairs are computed exactly as on repeated pairs (AUC, EER,
    FNMR at FMR, medians, means, Fisher ratio). The interval is the (1-confidence)/2 and
    (1+confidence)/2 percentiles (numpy's linear) of the resamples where the statistic is
    defined; ``n_valid`` counts those. The same seed draws the same subjects for every pair set
    over the same subjects (a paired bootstrap across settings).

    Returns:
        ``{"n_resamples", "seed", "confidence", "n_subjects", "unit": "subject",
        "intervals": {stat: {"low", "high", "n_valid"}}}`` (low/high None when no resample
        defines the statistic).
    """
    d, y = _check(distances, labels)
    u = np.asarray(unmasked_subjects, dtype=str).ravel()
    m = np.asarray(masked_subjects, dtype=str).ravel()
    if not (len(u) == len(m) == len(d)):
        raise InputError(f"{len(d)} distances but {len(u)} unmasked and {len(m)} masked subjects")
    if n_resamples < 1:
        raise InputError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    subjects, codes = np.unique(np.r_[u, m], return_inverse=True)
    u_code, m_code = codes[:len(u)], codes[len(u):]
    order = np.argsort(d, kind="stable")
    ds, ys, u_code, m_code = d[order], y[order], u_code[order], m_code[order]
    ends = np.r_[np.flatnonzero(np.diff(ds) != 0), len(ds) - 1] if len(ds) else np.zeros(0, int)
    n_s = len(subjects)
    samples = {k: np.full(n_resamples, np.nan) for k in BOOTSTRAP_STATS}
    for r, counts in enumerate(subject_draws(n_s, n_resamples, seed)):
        w = subject_weights(counts, u_code, m_code)
        if len(ds) and w.sum():
            for k, v in _weighted_stats(ds, ys, w, ends).items():
                samples[k][r] = v
    intervals = {k: percentile_interval(v, confidence) for k, v in samples.items()}
    return {"unit": "subject", "n_resamples": int(n_resamples), "seed": int(seed),
            "confidence": float(confidence), "n_subjects": int(n_s), "intervals": intervals}


# --------------------------------------------------------------------------- identification

_CDIST = {"sum_squared": "sqeuclidean", "cosine": "cosine", "l2": "euclidean", "l1": "cityblock"}


def distance_matrix(a: np.ndarray, b: np.ndarray, metric: str = "sum_squared") -> np.ndarray:
    """(len(a), len(b)) distances between every row of `a` and every row of `b` (float64),
    with the metrics of :data:`mfr.evaluation.distances.METRICS`."""
    from scipy.spatial.distance import cdist

    if metric not in _CDIST:
        raise InputError(f"metric must be one of {list(_CDIST)}, got {metric!r}")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError(f"expected (n, D) and (m, D) embeddings, got {a.shape} and {b.shape}")
    return cdist(a, b, metric=_CDIST[metric])


def subject_distances(dist: np.ndarray, gallery_subjects: Sequence[str]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's distance to each gallery subject: that of the subject's nearest gallery
    image. Returns the subjects (sorted) and a (n_probes, n_subjects) float64 matrix."""
    dist = np.asarray(dist, np.float64)
    g = np.asarray(gallery_subjects, dtype=str).ravel()
    if dist.ndim != 2 or dist.shape[1] != len(g):
        raise InputError(f"distance matrix {dist.shape} does not match {len(g)} gallery images")
    subjects, g_code = np.unique(g, return_inverse=True)
    order = np.argsort(g_code, kind="stable")
    starts = np.searchsorted(g_code[order], np.arange(len(subjects)))
    per_subject = (np.minimum.reduceat(dist[:, order], starts, axis=1) if len(g)
                   else np.zeros((len(dist), 0)))
    return subjects, per_subject


def identification_ranks(dist: np.ndarray, probe_subjects: Sequence[str],
                         gallery_subjects: Sequence[str]) -> np.ndarray:
    """Rank (1 = best) of each probe's true subject among the gallery's subjects.

    A subject's distance to a probe is its nearest gallery image's; ties count against the
    probe (rank = 1 + the number of other subjects at a distance <= the true one's). A probe
    whose subject has no gallery image gets rank 0.
    """
    dist = np.asarray(dist, np.float64)
    p = np.asarray(probe_subjects, dtype=str).ravel()
    g = np.asarray(gallery_subjects, dtype=str).ravel()
    if dist.shape != (len(p), len(g)):
        raise InputError(f"distance matrix {dist.shape} does not match {len(p)} probes x "
                         f"{len(g)} gallery images")
    subjects, per_subject = subject_distances(dist, g)
    index = {s: k for k, s in enumerate(subjects.tolist())}
    true = np.array([index.get(s, -1) for s in p.tolist()], dtype=np.int64)
    has = true >= 0
    ranks = np.zeros(len(p), dtype=np.int64)
    rows = np.flatnonzero(has)
    td = per_subject[rows, true[rows]]
    ranks[rows] = (per_subject[rows] <= td[:, None]).sum(axis=1)  # the true subject counts once
    return ranks


def identification(dist: np.ndarray, probe_subjects: Sequence[str],
                   gallery_subjects: Sequence[str], ranks: Sequence[int] = (1, 5)) -> dict[str, Any]:
    """1:N identification: rank-k accuracy and the CMC curve of probes against a gallery.

    Args:
        dist: (n_probes, n_gallery) distances (:func:`distance_matrix`).
        probe_subjects, gallery_subjects: the subject of each probe / gallery image.
        ranks: the k of the ``rank_k`` keys.

    Returns:
        ``rank_<k>`` (fraction of probes whose subject is among the k nearest gallery
        subjects), ``cmc`` (rank-1 .. rank-n_gallery_subjects), ``n_probes`` (probes whose
        subject is in the gallery: the denominator), ``n_probes_without_gallery``,
        ``n_gallery_images``, ``n_gallery_subjects``; None values with ``null_reason`` when
        no probe has its subject in the gallery.
    """
    r = identification_ranks(dist, probe_subjects, gallery_subjects)
    n_subj = len(set(np.asarray(gallery_subjects, dtype=str).tolist()))
    valid = r[r > 0]
    out: dict[str, Any] = {"n_probes": int(valid.size), "n_probes_without_gallery":
                           int((r == 0).sum()), "n_gallery_images": int(np.shape(dist)[1]),
                           "n_gallery_subjects": n_subj, "null_reason": None}
    if not valid.size:
        out.update({f"rank_{k}": None for k in ranks}, cmc=[],
                   null_reason="no probe has its subject in the gallery")
        return out
    cmc = [float(np.mean(valid <= k)) for k in range(1, n_subj + 1)]
    out.update({f"rank_{k}": float(np.mean(valid <= k)) for k in ranks}, cmc=cmc)
    return out


def bootstrap_identification(ranks: np.ndarray, probe_subjects: Sequence[str],
                             ks: Sequence[int] = (1, 5), n_resamples: int = 1000,
                             seed: int = 2021, confidence: float = 0.95) -> dict[str, Any]:
    """Percentile intervals of rank-k accuracy, resampling probe subjects (with replacement;
    a drawn subject brings all its probes; the gallery stays fixed). `ranks` from
    :func:`identification_ranks`; probes of rank 0 (no gallery image) are left out."""
    r = np.asarray(ranks)
    p = np.asarray(probe_subjects, dtype=str)
    keep = r > 0
    r, p = r[keep], p[keep]
    subjects, code = np.unique(p, return_inverse=True)
    samples = {k: np.full(n_resamples, np.nan) for k in ks}
    for i, counts in enumerate(subject_draws(len(subjects), n_resamples, seed)):
        w = counts[code]
        if w.sum():
            for k in ks:
                samples[k][i] = float(np.average(r <= k, weights=w))
    out = {f"rank_{k}": percentile_interval(v, confidence) for k, v in samples.items()}
    return {"unit": "probe subject", "n_resamples": int(n_resamples), "seed": int(seed),
            "confidence": float(confidence), "intervals": out}
