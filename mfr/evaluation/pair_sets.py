"""Verification and identification metrics of one pair set (:mod:`mfr.evaluation.metrics`
with subject-bootstrap intervals), a threshold chosen on validation pairs and applied to test
pairs, and the pair sets themselves (probes and gallery, masked-vs-unmasked pairs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.errors import InputError, MissingError
from mfr.core.integrity import check_recorded
from mfr.evaluation import metrics as M

#: the distances evaluated (the thesis's RQ3): its squared distance of normalised embeddings,
#: cosine, L1
EVAL_DISTANCES = ("sum_squared", "cosine", "l1")
DEFAULT_DISTANCE = "sum_squared"
#: an embedder's own distance on its unnormalised vectors (dlib: face_recognition's
#: face_distance), reported beside the others in a dataset evaluation
RAW_EUCLIDEAN = "euclidean_raw"

BOOTSTRAP_DEFINITION = (
    "Percentile bootstrap over subjects: each resample draws the pair set's S subjects with "
    "replacement (S draws); every pair whose unmasked or masked image belongs to a drawn subject "
    "enters once per such draw (a genuine pair once per draw of its subject, an impostor pair "
    "once per draw of either of its subjects); statistics are recomputed on the resampled "
    "pairs. Pairs of one subject share images and are not independent, so pairs are not "
    "resampled. The same seed draws the same subjects for every setting (paired). "
    "Identification: probe subjects resampled, gallery fixed.")




def _entry(setting: str, path: Path, reason: str) -> dict[str, str]:
    return {"setting": setting, "path": str(path), "reason": reason}


def read_distances(run_dir: str | Path, distances: Sequence[str] = EVAL_DISTANCES) -> pd.DataFrame:
    """A run folder's distances.csv (subjects as strings), the bytes its run recorded
    (:func:`mfr.core.integrity.check_recorded`); ValueError naming a missing column."""
    path = Path(run_dir) / "distances.csv"
    if not path.is_file():
        raise MissingError(f"{path}: no distances (expected the output of `mfr embed` or "
                                f"`mfr train`)")
    check_recorded(path)
    df = pd.read_csv(path, dtype={"unmasked_subject": str, "masked_subject": str,
                                  "unmasked_path": str, "masked_path": str},
                     keep_default_na=False)
    need = ["split", "label", "unmasked_path", "masked_path", "unmasked_subject",
            "masked_subject", *distances]
    lacking = [c for c in need if c not in df.columns]
    if lacking:
        raise InputError(f"{path}: missing column(s) {lacking}; expected {need}")
    return df




def pair_set_metrics(pairs: pd.DataFrame, distances: Sequence[str] = EVAL_DISTANCES,
                     n_resamples: int = 1000, seed: int = 2021) -> dict[str, dict[str, Any]]:
    """Verification metrics of one pair set for each distance, with subject-bootstrap
    intervals (``ci``) when `n_resamples` > 0 and what a reader must know (``notes``).

    `pairs`: columns label, unmasked_subject, masked_subject and one column per distance.
    Returns {distance: :func:`mfr.evaluation.metrics.verification_metrics` + ``ci``}.
    """
    y = pairs["label"].to_numpy().astype(np.int64)
    out = {}
    for dist in distances:
        d = pairs[dist].to_numpy(dtype=np.float64)
        m = M.verification_metrics(d, y)
        m["notes"] = pair_set_notes(m)
        if n_resamples:
            m["ci"] = M.bootstrap_subjects(d, y, pairs["unmasked_subject"].to_numpy(),
                                           pairs["masked_subject"].to_numpy(),
                                           n_resamples=n_resamples, seed=seed)["intervals"]
        out[dist] = m
    return out


def threshold_metrics(val: pd.DataFrame, test: pd.DataFrame | None, rule: str,
                      distances: Sequence[str] = EVAL_DISTANCES) -> dict[str, dict[str, Any]]:
    """Per distance: the threshold chosen by `rule` on the `val` pairs and what it gives on
    them and on the `test` pairs (:func:`mfr.evaluation.metrics.apply_threshold`); a distance whose
    validation pairs lack a class gets ``threshold`` None and the reason."""
    out = {}
    y_val = val["label"].to_numpy().astype(np.int64)
    why = M.missing_class(y_val)
    for dist in distances:
        if why:
            out[dist] = {"rule": rule, "threshold": None, "null_reason": f"validation pairs: {why}"}
            continue
        d_val = val[dist].to_numpy(np.float64)
        t = M.choose_threshold(d_val, y_val, rule)
        entry = {"rule": rule, "threshold": t, "accept": "distance <= threshold",
                 "val": M.apply_threshold(d_val, y_val, t), "null_reason": None}
        if test is not None:
            entry["test"] = M.apply_threshold(test[dist].to_numpy(np.float64),
                                              test["label"].to_numpy().astype(np.int64), t)
        out[dist] = entry
    return out


def identification_metrics(emb, probes: pd.DataFrame, gallery: pd.DataFrame,
                           distances: Sequence[str] = EVAL_DISTANCES, n_resamples: int = 1000,
                           seed: int = 2021) -> dict[str, dict[str, Any]]:
    """1:N identification per distance: each probe (masked image) against the gallery
    (unmasked images); `probes` / `gallery` have columns path and subject, `emb` is an
    :class:`mfr.evaluation.embeddings.Embeddings` holding their rows. Adds ``ci`` (probe-subject
    bootstrap of rank-1 and rank-5) when `n_resamples` > 0."""
    pv = emb.vectors[emb.index_of(probes["path"])]
    gv = emb.vectors[emb.index_of(gallery["path"])]
    out = {}
    for dist in distances:
        dm = M.distance_matrix(pv, gv, dist)
        res = M.identification(dm, probes["subject"], gallery["subject"])
        if n_resamples and res["null_reason"] is None:
            ranks = M.identification_ranks(dm, probes["subject"], gallery["subject"])
            res["ci"] = M.bootstrap_identification(ranks, probes["subject"],
                                                   n_resamples=n_resamples, seed=seed)["intervals"]
        out[dist] = res
    return out


def probes_and_gallery(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The masked images (probes) and unmasked images (gallery) of a pair table, each once,
    sorted by path: columns path, subject."""
    probes = (pairs[["masked_path", "masked_subject"]].drop_duplicates()
              .set_axis(["path", "subject"], axis=1).sort_values("path", kind="stable"))
    gallery = (pairs[["unmasked_path", "unmasked_subject"]].drop_duplicates()
               .set_axis(["path", "subject"], axis=1).sort_values("path", kind="stable"))
    return probes.reset_index(drop=True), gallery.reset_index(drop=True)


def masked_vs_unmasked_pairs(unmasked: pd.DataFrame, masked: pd.DataFrame) -> pd.DataFrame:
    """Every unmasked x masked image pair (columns :data:`mfr.data.pairs.COLUMNS`; label 1 when the
    subjects agree), unmasked image in the outer loop, both sorted by path. `unmasked` /
    `masked`: columns path, subject."""
    from mfr.data.pairs import COLUMNS

    u = unmasked.sort_values("path", kind="stable").reset_index(drop=True)
    m = masked.sort_values("path", kind="stable").reset_index(drop=True)
    ui = np.repeat(np.arange(len(u)), len(m))
    mi = np.tile(np.arange(len(m)), len(u))
    us, ms = u["subject"].to_numpy()[ui], m["subject"].to_numpy()[mi]
    return pd.DataFrame({"unmasked_path": u["path"].to_numpy()[ui],
                         "masked_path": m["path"].to_numpy()[mi],
                         "label": (us == ms).astype(np.int64),
                         "unmasked_subject": us, "masked_subject": ms}, columns=COLUMNS)


def pair_set_notes(m: Mapping[str, Any]) -> list[str]:
    """What a reader must know to read a pair set's numbers: an FMR target finer than one
    impostor pair, and accuracy on unbalanced classes."""
    notes = []
    n_g, n_i = m["n_genuine"], m["n_impostor"]
    for key, target in M.FMR_TARGETS.items():
        if n_i and n_i * target < 1:
            notes.append(f"{key}: {n_i} impostor pairs, so the smallest FMR above 0 is "
                         f"1/{n_i} = {1 / n_i:.2%} > {target:.1%}: this is the FNMR at FMR 0")
    if n_g and n_i and max(n_g, n_i) > 3 * min(n_g, n_i):
        base = max(n_g, n_i) / (n_g + n_i)
        notes.append(f"accuracy: {n_g} genuine vs {n_i} impostor pairs; answering "
                     f"'{'same' if n_g > n_i else 'different'}' every time scores {base:.4f}")
    return notes
