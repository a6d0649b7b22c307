"""The decision of a 1:N search: the threshold, where it came from in words, and per probe its
candidates and the decision (an identity, or "not in the gallery").

A probe is declared to be its nearest identity when that identity's distance is <= the
threshold, else "not in the gallery" (NIST FRVT 1:N's lights-out decision at rank 1). The
threshold (:func:`gallery_threshold`), first given:

- ``threshold``: a number (a distance), or a ``thresholds.json`` of `mfr evaluate` (a study's
  calibration of the gallery's run folder, or a dataset evaluation's of the same network:
  :func:`mfr.evaluation.thresholds.resolve_threshold`), for the gallery's distance;
- ``fpir=F``: calibrated on the gallery itself, as NIST sets a 1:N threshold: every enrolled
  photo (a seeded sample of :data:`MAX_CALIBRATION` of them in a larger gallery) searched
  against the other identities is a non-mated search; the threshold is the largest distance at
  which at most a fraction F of them return a candidate
  (:func:`mfr.evaluation.open_set.threshold_at_fpir`);
- ``fmr=F``: calibrated on the gallery's impostor template pairs (two enrolled photos of
  different identities; among the same sample), 1:1: the largest distance at which at most a
  fraction F of them match. A non-mated search meets N - 1 identities, so its FPIR can reach
  about (N - 1) F: ``fpir`` is the one for identification;
- none: the default of :func:`~mfr.evaluation.thresholds.resolve_threshold`: a run folder's
  study calibration, else the network's publisher's documented threshold (dlib's: 0.6 on its
  raw Euclidean distance, face_recognition's tolerance). MobileFaceNet and SENet50 have none
  published: without a threshold the candidates are listed and the decision is "undecided".

A threshold calibrated on a gallery's photos (unmasked, as enrolled) holds for probes like them;
masked probes lie farther from everyone, so at that threshold they are returned less often, both
the right and wrong people: ``results/open_set`` measures both on real masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["DISTANCE_WORDS", "MAX_CALIBRATION", "Identification", "ProbeResult",
           "calibrate_fmr", "calibrate_fpir", "gallery_threshold", "identification"]

#: enrolled photos (sampled with a seed) that a calibration searches or pairs
MAX_CALIBRATION = 2000
NOT_IN_GALLERY = "not in the gallery"
UNDECIDED = "undecided"
NOT_SEARCHED = "not searched"

DISTANCE_WORDS = {
    "sum_squared": "the thesis's sum of squared differences of the L2-normalised embeddings, "
                   "in [0, 4]",
    "cosine": "1 - cosine of the embeddings, in [0, 2]",
    "l2": "Euclidean distance of the L2-normalised embeddings, in [0, 2]",
    "euclidean_raw": "Euclidean distance of dlib's raw 128-d descriptors (face_recognition's "
                     "face_distance)",
}


def _target(value: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a fraction in (0, 1), got {value!r}") from None
    if not 0 < v < 1:
        raise InputError(f"{what}: expected a fraction in (0, 1) (0.01 for 1%), got {value!r}")
    return v


def _sample(n: int, seed: int) -> np.ndarray:
    if n <= MAX_CALIBRATION:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_CALIBRATION, replace=False))


def _need_two(gallery: Any, how: str) -> None:
    if gallery.n_identities < 2:
        raise InputError(f"{how} needs a gallery of two identities at least (it has "
                         f"{gallery.n_identities}): give --threshold")


def calibrate_fpir(gallery: Any, target: float, seed: int = 2021) -> Any:
    """The threshold at FPIR `target` of the gallery's own leave-one-identity-out searches
    (see the module docstring): a :class:`mfr.evaluation.thresholds.Threshold`."""
    from mfr.evaluation.open_set import Searches, fpir, threshold_at_fpir
    from mfr.evaluation.thresholds import Threshold

    target = _target(target, "--fpir")
    _need_two(gallery, "--fpir")
    vec, norms, ids = gallery.templates()
    rows = _sample(len(vec), seed)
    top = gallery.search(vec[rows], k=2, norms=norms[rows])
    own = ids[rows].astype(str)
    first = top.identities[:, 0].astype(str)
    d = np.where(first == own, top.distance[:, 1], top.distance[:, 0])
    n = len(d)
    s = Searches(np.zeros(n, bool), np.zeros(n, np.int64), np.full(n, np.nan), d, 1,
                 gallery.n_identities - 1)
    t = threshold_at_fpir(s, target)
    reached = float(fpir(s, t))
    floor = (f"; {n} searches cannot measure FPIR {target:.2%} (the least above 0 is 1/{n}): "
             f"this is FPIR 0" if n * target < 1 else "")
    sample = (f"{n} of its {len(vec)} enrolled photos (seeded sample)" if n < len(vec)
              else f"its {n} enrolled photos")
    return Threshold(float(t), f"FPIR {target:.2%} calibrated on this gallery: {sample}, each "
                               f"searched against the other {gallery.n_identities - 1} "
                               f"identities (non-mated searches); FPIR there {reached:.2%}"
                               f"{floor}; enrolled photos stand in for probes",
                     gallery.distance, {"rule": "fpir", "target": target, "reached": reached,
                                        "n_searches": n})


def calibrate_fmr(gallery: Any, target: float, seed: int = 2021) -> Any:
    """The threshold at FMR `target` of the gallery's impostor template pairs (see the
    module docstring)."""
    from mfr.evaluation.thresholds import Threshold
    from mfr.gallery.raw_search import raw_distances
    from mfr.gallery.search import similarity_to_distance

    target = _target(target, "--fmr")
    _need_two(gallery, "--fmr")
    vec, norms, ids = gallery.templates()
    rows = _sample(len(vec), seed)
    v, nm, who = vec[rows], norms[rows], ids[rows].astype(str)
    if gallery.distance == "euclidean_raw":
        dist = raw_distances(v, nm, v, nm)
    else:
        v64 = v.astype(np.float64)
        dist = similarity_to_distance(v64 @ v64.T, gallery.distance)
    iu = np.triu_indices(len(v), 1)
    imp = dist[iu][who[iu[0]] != who[iu[1]]]
    d = np.sort(imp)
    n = len(d)
    over = np.flatnonzero(np.arange(1, n + 1) / n > target)
    t = float(np.nextafter(d[over[0]], -np.inf)) if over.size else float("inf")
    reached = float(np.searchsorted(d, t, side="right") / n)
    return Threshold(t, f"FMR {target:.2%} calibrated on this gallery's {n} impostor pairs of "
                        f"enrolled photos (1:1; FMR there {reached:.2%}); a search meets "
                        f"{gallery.n_identities} identities, so its false-positive rate can "
                        f"reach about {min(1.0, gallery.n_identities * target):.0%}: --fpir "
                        f"calibrates for identification", gallery.distance,
                     {"rule": "fmr", "target": target, "reached": reached, "n_pairs": n})


def gallery_threshold(gallery: Any, threshold: float | str | Path | None = None, *,
                      fpir: float | None = None, fmr: float | None = None) -> Any:
    """The threshold a gallery's search decides at, with its source (module docstring)."""
    from mfr.evaluation.thresholds import Threshold, parse_threshold, resolve_threshold

    given = [n for n, v in (("--threshold", threshold), ("--fpir", fpir), ("--fmr", fmr))
             if v is not None]
    if len(given) > 1:
        raise InputError(f"{given[0]} and {given[1]}: give one way to set the threshold")
    if fpir is not None:
        return calibrate_fpir(gallery, fpir)
    if fmr is not None:
        return calibrate_fmr(gallery, fmr)
    spec = parse_threshold(threshold) if isinstance(threshold, str) else threshold
    if isinstance(spec, int | float):
        return Threshold(float(spec), "given (--threshold)", gallery.distance)
    run_dir = gallery.embedder_options.get("run_dir")
    # what resolve_threshold reads of an embedder, without building its network
    who = SimpleNamespace(name=gallery.embedder_name, run_dir=Path(run_dir) if run_dir else None,
                          describe=lambda: dict(gallery.description),
                          default_distance=gallery.distance)
    t = resolve_threshold(spec, who, gallery.distance)
    if t.value is None and spec is None:
        return Threshold(None, f"{t.source}; or --fpir F to calibrate one on the gallery",
                         gallery.distance, t.details)
    return t


@dataclass
class ProbeResult:
    """One probe's search: ``candidates`` (identity, distance, the best template's photo),
    nearest first; ``decision``: an identity, "not in the gallery", "undecided" (no
    threshold) or "not searched" (``status`` says why)."""

    probe: str
    status: str
    candidates: list[tuple[str, float, str]] = field(default_factory=list)
    decision: str = NOT_SEARCHED
    no_face_detected: bool = False
    note: str = ""

    @property
    def identity(self) -> str | None:
        """The identity declared, or None."""
        return self.decision if self.decision not in (NOT_IN_GALLERY, UNDECIDED,
                                                      NOT_SEARCHED) else None


@dataclass
class Identification:
    """What a gallery search found for its probes (:meth:`mfr.gallery.store.Gallery.
    identify`)."""

    probes: list[ProbeResult]
    threshold: Any  # mfr.evaluation.thresholds.Threshold
    distance: str
    k: int
    method: str
    gallery: dict[str, Any]

    def __len__(self) -> int:
        return len(self.probes)

    def __getitem__(self, i: int) -> ProbeResult:
        return self.probes[i]

    @property
    def decisions(self) -> list[str]:
        return [p.decision for p in self.probes]

    def table(self) -> Any:
        """A row per probe and rank (a probe without candidates: one row, rank empty)."""
        import pandas as pd

        rows = []
        t = self.threshold.value
        for p in self.probes:
            base = {"probe": p.probe, "status": p.status, "decision": p.decision,
                    "no_face_detected": p.no_face_detected, "threshold": t}
            if not p.candidates:
                rows.append({**base, "rank": None, "identity": None, "distance": None,
                             "photo": None})
            for r, (ident, d, photo) in enumerate(p.candidates, 1):
                rows.append({**base, "rank": r, "identity": ident, "distance": d,
                             "photo": photo})
        cols = ["probe", "status", "rank", "identity", "distance", "photo", "threshold",
                "decision", "no_face_detected"]
        return pd.DataFrame(rows, columns=cols)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `mfr identify --json`."""
        t = self.threshold
        return {"gallery": self.gallery, "distance": self.distance,
                "distance_meaning": DISTANCE_WORDS.get(self.distance, self.distance),
                "accept": "nearest identity's distance <= threshold", "k": self.k,
                "method": self.method,
                "threshold": {"value": t.value, "source": t.source, "details": t.details},
                "probes": [{"probe": p.probe, "status": p.status, "decision": p.decision,
                            "identity": p.identity, "no_face_detected": p.no_face_detected,
                            "note": p.note,
                            "candidates": [{"rank": r, "identity": i, "distance": d,
                                            "photo": ph}
                                           for r, (i, d, ph) in enumerate(p.candidates, 1)]}
                           for p in self.probes]}

    def lines(self) -> list[str]:
        """What `mfr identify` prints."""
        g, t = self.gallery, self.threshold
        out = [f"gallery: {g.get('path') or '(in memory)'}: {g['n_identities']} identities, "
               f"{g['n_templates']} templates; {g['embedder']}"
               + (f", face box {g['signature'].get('face_box')}"
                  if g["signature"].get("face_box") else ""),
               f"distance: {self.distance}, {DISTANCE_WORDS.get(self.distance, '')}; lower = "
               f"more alike; search {self.method}",
               f"threshold: none ({t.source})" if t.value is None else
               f"threshold {t.value:.6g}: {t.source}"]
        for p in self.probes:
            if not p.candidates:
                out.append(f"probe {p.probe}: {p.decision}: {p.status}")
                continue
            near, dn = p.candidates[0][0], p.candidates[0][1]
            if p.decision == UNDECIDED:
                why = f"nearest {near} at {dn:.4f}; no threshold"
            elif p.decision == NOT_IN_GALLERY:
                why = f"nearest {near} at {dn:.4f} > {t.value:.4g}"
            else:
                why = f"distance {dn:.4f} <= {t.value:.4g}"
            mark = " [no face found: embedded from the fall-back]" if p.no_face_detected else ""
            out.append(f"probe {p.probe}: {p.decision} ({why}){mark}")
            width = max(len(c[0]) for c in p.candidates)
            out += [f"  {r}. {ident:<{width}}  {d:.4f}  ({Path(photo).name})"
                    for r, (ident, d, photo) in enumerate(p.candidates, 1)]
        return out


def identification(gallery: Any, names: Sequence[str], embedded: Any, threshold: Any, k: int,
                   method: str = "exact") -> Identification:
    """Search the probes `embedded` (:class:`mfr.gallery.photos.Embedded`) in `gallery` and
    decide each at `threshold`."""
    if not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"--top-k must be an integer >= 1, got {k!r}")
    ok = embedded.ok
    photos = gallery.photos()
    enrolled = photos[photos["template"] >= 0].sort_values("template")["path"].tolist()
    results = [ProbeResult(n, s, no_face_detected=bool(f), note=note)
               for n, s, f, note in zip(names, embedded.status, embedded.no_face,
                                        embedded.notes, strict=True)]
    if ok.any():
        top = gallery.search(embedded.vectors[ok], int(k), norms=embedded.norms[ok],
                             method=method)
        t = threshold.value
        for j, i in enumerate(np.flatnonzero(ok)):
            cands = [(str(ident), float(d), enrolled[int(r)])
                     for ident, d, r in zip(top.identities[j], top.distance[j], top.rows[j],
                                            strict=True) if ident is not None]
            results[i].candidates = cands
            if not cands:
                results[i].decision = NOT_IN_GALLERY
            elif t is None:
                results[i].decision = UNDECIDED
            else:
                results[i].decision = cands[0][0] if cands[0][1] <= t else NOT_IN_GALLERY
    for r in results:
        if r.status != "ok":
            r.decision = NOT_SEARCHED
    return Identification(results, threshold, gallery.distance, int(k), method,
                          gallery.summary())
