"""A dataset's own pair sets evaluated (`mfr evaluate --data-root`): one entry per pair set,
its notes and its Markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mfr.evaluation import metrics as M
from mfr.evaluation.pair_sets import (
    DEFAULT_DISTANCE,
    EVAL_DISTANCES,
    RAW_EUCLIDEAN,
    pair_set_metrics,
)
from mfr.evaluation.tables import (
    _CI_KEYS,
    _VALUE_KEYS,
    _fmt,
    _with_ci,
    identification_table,
    table_markdown,
)

# --------------------------------------------------------------------------- a dataset

#: the keys of a pair set's entry in a dataset evaluation's metrics.json (default distance)
PAIR_SET_KEYS = ("auc", "eer", "fnmr_at_fmr_1pct", "fnmr_at_fmr_0_1pct", "gmean", "imean",
                 "median_genuine", "median_impostor", "gap", "fisher", "eer_threshold",
                 "n_pairs", "n_genuine", "n_impostor", "null_reason")


_DISTANCE_WORDS = {
    "sum_squared": "sum_squared of L2-normalised embeddings (the thesis's)",
    RAW_EUCLIDEAN: "euclidean_raw, Euclidean on the unnormalised descriptors (the embedder's "
                   "own, e.g. face_recognition's face_distance)",
}


def pair_set_entry(pairs: pd.DataFrame, distances: Sequence[str] = EVAL_DISTANCES,
                   n_resamples: int = 1000, seed: int = 2021,
                   default: str = DEFAULT_DISTANCE) -> dict[str, Any]:
    """A pair set's entry of a dataset evaluation: the `default` distance's metrics at the top
    (``auc``, ``eer``, ...; ``ci`` their intervals; the embedder's own distance), every
    distance's under ``by_distance``, and LFW-style 10-fold accuracy (``accuracy_cv``: the
    threshold of highest accuracy on nine folds applied to the tenth)."""
    by = pair_set_metrics(pairs, distances, n_resamples, seed)
    default = default if default in by else distances[0]
    top = by[default]
    entry = {k: top[k] for k in PAIR_SET_KEYS}
    entry.update(distance=default, ci=top.get("ci", {}), by_distance=by)
    d = pairs[entry["distance"]].to_numpy(np.float64)
    entry["accuracy_cv"] = M.cv_accuracy(d, pairs["label"].to_numpy(), n_folds=10, seed=seed)
    entry["notes"] = top["notes"]
    return entry




def dataset_markdown(metrics: Mapping[str, Any], pair_sets: Sequence[str]) -> str:
    """metrics.md of a dataset evaluation: one row per pair set (default distance, 95%
    subject-bootstrap intervals), then every distance, then identification."""
    emb = metrics["embedder"]
    ds = metrics["dataset"]
    lines = [f"# {emb['name']} on {ds['layout']} ({ds['root']})", "",
             f"Embedder: {emb.get('weights_desc', emb.get('weights'))}; "
             f"{ds['n_subjects']} subjects, {ds['n_unmasked_images']} unmasked and "
             f"{ds['n_masked_images']} masked images. Distance: "
             f"{_DISTANCE_WORDS.get(metrics['default_distance'], metrics['default_distance'])}"
             f" (lower = same person). Brackets: 95% intervals, "
             f"bootstrap over subjects ({metrics['bootstrap']['n_resamples']} resamples, seed "
             f"{metrics['bootstrap']['seed']}).", ""]
    if emb.get("random_init"):
        lines += ["> **random init: these numbers say nothing about faces.**", ""]
    licence = emb.get("licence") or emb.get("weights_licence")
    if licence:  # the released weights' terms, wherever they are used
        lines += [f"Weights licence: {licence}.", ""]
    rows = []
    for name in pair_sets:
        e = metrics[name]
        r = {**{k: e[k] for k in _CI_KEYS}, **{f"{k}_{b}": e["ci"].get(k, {}).get(b)
                                              for k in _CI_KEYS for b in ("low", "high")}}
        rows.append([name, *(_with_ci(r, k) for k in _CI_KEYS),
                     _fmt(e["accuracy_cv"]["accuracy"]), _fmt(e["gmean"]), _fmt(e["imean"]),
                     _fmt(e["median_genuine"]), _fmt(e["median_impostor"]),
                     f"{e['n_genuine']} / {e['n_impostor']}", e["null_reason"] or ""])
    lines += [pd.DataFrame(rows, columns=[
        "pair set", "AUC", "EER", "FNMR@FMR1%", "FNMR@FMR0.1%", "accuracy (10-fold)", "GMean",
        "IMean", "median genuine", "median impostor", "genuine / impostor", "note"]
    ).to_markdown(index=False, disable_numparse=True), ""]
    detail = pd.DataFrame([{"setting": name, "distance": dist, **{
        k: m[k] for k in (*_CI_KEYS, *_VALUE_KEYS, "n_genuine", "n_impostor")},
        **{f"{k}_{b}": m.get("ci", {}).get(k, {}).get(b) for k in _CI_KEYS for b in ("low", "high")},
        "null_reason": m["null_reason"] or ""}
        for name in pair_sets for dist, m in metrics[name]["by_distance"].items()])
    lines += ["## Every distance", "",
              table_markdown(detail, "verification", first="pair set")]
    ident = metrics.get("identification", {})
    if ident:
        t = identification_table({"x": {"label": "masked probes vs unmasked gallery",
                                        "identification": ident}}, list(ident))
        lines += ["## Identification (1:N)", "", table_markdown(t, "identification")]
    notes = [*metrics.get("notes", []),
             *(f"{name}: {n}" for name in pair_sets for n in metrics[name].get("notes", []))]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)
