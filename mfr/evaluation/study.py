"""Chapter 5's evaluation: a study folder's settings, or a dataset's pair sets, in numbers.

Everything here works on stored distances and embeddings (no forward pass): verification
metrics per setting, pair split and distance (:mod:`mfr.evaluation.metrics`, with subject-bootstrap
intervals on the test pairs), a decision threshold chosen on the validation pairs and applied to
the test pairs, 1:N identification of the masked test images against the unmasked ones, and
the tables of it all. :mod:`mfr.study.steps` (``evaluate_step``, ``evaluate_dataset_step``) reads
and writes the folders; :mod:`mfr.report.thesis` draws the figures.

A study folder (what ``mfr evaluate --study DIR`` reads)::

    DIR/partition/      pair CSVs (`mfr partition`)
    DIR/cache/          image cache
    DIR/baseline/       an `mfr embed` run folder (run.json "command": "embed"; --split val,test)
    DIR/train_N<N>/     an `mfr train` run folder per N (run.json "trainable_layers")
    DIR/train_N<N>_s<seed>/  the same N trained with another seed (`mfr study --seeds`)
    DIR/evaluation/     written by `mfr evaluate`

Settings are found by their run.json, whatever the folder names (:func:`mfr.core.runs.discover_study`,
shared with Grad-CAM and the report); a setting that the study's
configs ask for (their ``trainable_layers``, and the ledger's ``seeds``) but that has no
finished run folder is listed as missing, and a run folder lacking what a metric needs is
listed as incomplete, with the reason.

Seeds: a fine-tuned N trained with the study's seed (the baseline's) is setting ``N<n>``; the
same N with another seed is ``N<n>_s<seed>``, a *replicate*: evaluated like any setting
(metrics.json, the verification, threshold and identification tables, labelled with its seed),
left out of Table 5.1 and the figures, and summarised with the others of its N in
``seeds.csv/.md`` (:func:`seed_table`): the spread across seeds (mean, sd, min, max) beside the
subject-bootstrap interval of one run. The interval says how much the numbers would move with
other subjects; the spread, how much with another training order (and, from random weights,
another initialisation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.errors import InputError, MissingError
from mfr.core.progress import progress_bar
from mfr.core.runs import Setting, Study, discover_study
from mfr.evaluation import metrics as M
from mfr.report import thesis as report

__all__ = [
    "DEFAULT_DISTANCE",
    "EVAL_DISTANCES",
    "Setting",
    "Study",
    "StudyEvaluation",
    "discover_study",
    "evaluate_study",
    "identification_table",
    "masked_vs_unmasked_pairs",
    "pair_set_metrics",
    "read_distances",
    "seed_spread",
    "seed_table",
    "threshold_table",
    "verification_table",
]

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


# --------------------------------------------------------------------------- a study folder


def _entry(setting: str, path: Path, reason: str) -> dict[str, str]:
    return {"setting": setting, "path": str(path), "reason": reason}


def read_distances(run_dir: str | Path, distances: Sequence[str] = EVAL_DISTANCES) -> pd.DataFrame:
    """A run folder's distances.csv (subjects as strings); ValueError naming a missing column."""
    path = Path(run_dir) / "distances.csv"
    if not path.is_file():
        raise MissingError(f"{path}: no distances (expected the output of `mfr embed` or "
                                f"`mfr train`)")
    df = pd.read_csv(path, dtype={"unmasked_subject": str, "masked_subject": str,
                                  "unmasked_path": str, "masked_path": str},
                     keep_default_na=False)
    need = ["split", "label", "unmasked_path", "masked_path", "unmasked_subject",
            "masked_subject", *distances]
    lacking = [c for c in need if c not in df.columns]
    if lacking:
        raise InputError(f"{path}: missing column(s) {lacking}; expected {need}")
    return df


# --------------------------------------------------------------------------- pair sets


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


# --------------------------------------------------------------------------- a study


@dataclass
class StudyEvaluation:
    """What :func:`evaluate_study` computed: metrics.json, thresholds.json and the tables."""

    study: Study
    metrics: dict[str, Any]
    thresholds: dict[str, Any]
    tables: dict[str, pd.DataFrame]


def _other_partition(s: Setting, partition_dir: Path) -> str | None:
    """Why run `s` was not made from `partition_dir` (its run.json's fingerprint names another
    test.csv), or None: it was, or it records no digest to tell."""
    from mfr.core.provenance import file_digest

    pairs = (s.run.get("fingerprint") or {}).get("pairs")
    made = pairs.get("test.csv") if isinstance(pairs, dict) else None
    if made is None or made == file_digest(partition_dir / "test.csv"):
        return None
    recorded = s.run.get("pairs_dir")
    return (f"made from another partition ({recorded or 'its run.json'}: test.csv "
            f"{made[:12]}, not {partition_dir / 'test.csv'}): its test pairs are not this "
            f"partition's; evaluate it with the partition it was made from, or run it again")


def _setting_metrics(s: Setting, study: Study, rule: str, n_resamples: int, seed: int,
                     distances: Sequence[str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """One setting's entry of metrics.json, and what it could not evaluate (incomplete)."""
    from mfr.evaluation.embeddings import load_embeddings

    notes: list[dict[str, str]] = []
    d = read_distances(s.run_dir, distances)
    splits = {sp: d[d["split"] == sp].reset_index(drop=True) for sp in ("val", "test")}
    entry: dict[str, Any] = {"label": s.label, "kind": s.kind, "trainable_layers": s.n_layers,
                             "random_init": s.random_init, "run_dir": str(s.run_dir),
                             "splits": {}}
    for sp, df in splits.items():
        if len(df):
            entry["splits"][sp] = pair_set_metrics(df, distances,
                                                   n_resamples if sp == "test" else 0, seed)
    if not len(splits["test"]):
        notes.append(_entry(s.key, s.run_dir, "no test pairs in distances.csv"))
    if study.partition_dir is not None:
        n_part = len(pd.read_csv(study.partition_dir / "test.csv", usecols=["label"]))
        entry["test_pairs_not_evaluated"] = n_part - len(splits["test"])
        other = _other_partition(s, study.partition_dir)
        if other:
            notes.append(_entry(s.key, s.run_dir, other))
        elif n_part != len(splits["test"]):
            notes.append(_entry(s.key, s.run_dir, f"{n_part - len(splits['test'])} of the "
                                                  f"partition's {n_part} test pairs have no "
                                                  f"distance (an image failed to load?)"))
    if len(splits["val"]):
        entry["threshold"] = threshold_metrics(splits["val"], splits["test"] if len(splits["test"])
                                               else None, rule, distances)
    else:
        why = ("no validation distances (embed with --split val,test)" if s.kind == "embed" else
               "no validation distances (a run made before mfr wrote them: train it again)")
        entry["threshold"] = {"null_reason": why}
        notes.append(_entry(s.key, s.run_dir, f"threshold: {why}"))
    emb_dir = s.run_dir / "embeddings"
    if (emb_dir / "run.json").is_file() and len(splits["test"]):
        probes, gallery = probes_and_gallery(splits["test"])
        try:
            entry["identification"] = identification_metrics(
                load_embeddings(emb_dir), probes, gallery, distances, n_resamples, seed)
        except ValueError as e:
            entry["identification"] = {"null_reason": f"{emb_dir}: {e}"}
            notes.append(_entry(s.key, s.run_dir, f"identification: {e}"))
    else:
        why = f"no embeddings of the test images ({emb_dir})"
        entry["identification"] = {"null_reason": why}
        notes.append(_entry(s.key, s.run_dir, f"identification: {why}"))
    return entry, notes


def evaluate_study(study: Study, threshold_rule: str = "eer", n_resamples: int = 1000,
                   seed: int = 2021, distances: Sequence[str] = EVAL_DISTANCES,
                   progress: bool = False) -> StudyEvaluation:
    """Every setting of `study`: verification (val and test; test with subject-bootstrap
    intervals), thresholds chosen on val and applied to test, identification of the masked
    test images, Table 5.1; from stored distances and embeddings only."""
    if threshold_rule not in M.THRESHOLD_RULES:
        raise InputError(f"threshold rule must be one of {list(M.THRESHOLD_RULES)}, got "
                         f"{threshold_rule!r}")
    settings: dict[str, Any] = {}
    incomplete = list(study.incomplete)
    for s in progress_bar(study.settings, progress, desc="settings", unit="setting"):
        settings[s.key], notes = _setting_metrics(s, study, threshold_rule, n_resamples, seed,
                                                  distances)
        incomplete += notes
    thresholds = {
        "rule": threshold_rule, "accept": "distance <= threshold",
        "chosen_on": "validation pairs", "applied_to": "test pairs",
        "settings": {k: {"label": v["label"], "run_dir": v["run_dir"], **v["threshold"]}
                     for k, v in settings.items()},
    }
    metrics = {
        "study": str(study.root),
        "distances": list(distances),
        "default_distance": DEFAULT_DISTANCE,
        "bootstrap": {"unit": "subject", "n_resamples": n_resamples, "seed": seed,
                      "confidence": 0.95, "method": "percentile",
                      "definition": BOOTSTRAP_DEFINITION},
        "threshold_rule": threshold_rule,
        "settings": settings,
        "missing": study.missing,
        "incomplete": incomplete,
        "thesis_table_5_1": {str(k): dict(zip(("median_impostor", "median_genuine", "gap"), v,
                                              strict=True))
                             for k, v in report.THESIS_TABLE_5_1.items()},
    }
    tables = {
        "verification": verification_table(settings, distances),
        "thresholds": threshold_table(settings, distances),
        "identification": identification_table(settings, distances),
    }
    runs = _report_runs([s for s in study.settings if (s.run_dir / "summary.json").is_file()
                         and "test" in settings[s.key]["splits"]])
    if runs:
        t51 = report.table_5_1(runs)
        t51.insert(1, "trained layers", [0 if k == "pre-trained" else int(k) for k in runs])
        tables["table_5_1"] = t51
    spread = seed_spread(study, settings)
    if spread:
        metrics["seeds"] = spread
        tables["seeds"] = seed_table(spread)
    return StudyEvaluation(study, metrics, thresholds, tables)


def _report_runs(settings: Sequence[Setting]) -> dict[str | int, Path]:
    """{"pre-trained" or N: run folder} for :mod:`mfr.report.thesis` (the first of several embed runs;
    the study seed's run of each N, not its replicates)."""
    runs: dict[str | int, Path] = {}
    for s in settings:
        if not s.replicate:
            runs.setdefault(s.report_key, s.run_dir)
    return runs


#: the statistics whose spread across seeds is reported (test pairs, the default distance)
SEED_STATS = ("auc", "eer", "fnmr_at_fmr_1pct", "median_genuine", "median_impostor", "gap")


def seed_spread(study: Study, settings: Mapping[str, Any],
                distance: str = DEFAULT_DISTANCE) -> dict[str, Any]:
    """Per fine-tuned N trained with more than one seed: each statistic of :data:`SEED_STATS`
    on the test pairs across its seeds (``values`` per seed, ``mean``, ``sd`` -- the sample
    standard deviation, ddof 1 --, ``min``, ``max``), beside the subject-bootstrap 95% interval
    of the study seed's run (``ci_seed``, ``ci_value``, ``ci_low``, ``ci_high``). Seeds whose
    statistic is undefined (null) are left out of its numbers (``n``)."""
    groups: dict[int, list[Setting]] = {}
    for s in study.settings:
        if s.kind == "train" and "test" in settings[s.key]["splits"]:
            groups.setdefault(s.n_layers, []).append(s)
    out: dict[str, Any] = {}
    for n, runs in sorted(groups.items()):
        if len(runs) < 2:
            continue
        main = next((r for r in runs if not r.replicate), runs[0])
        main_m = settings[main.key]["splits"]["test"][distance]
        stats = {}
        for stat in SEED_STATS:
            values = {str(r.seed): settings[r.key]["splits"]["test"][distance][stat]
                      for r in runs}
            v = np.array([x for x in values.values() if x is not None], dtype=np.float64)
            ci = main_m.get("ci", {}).get(stat, {})
            stats[stat] = {
                "values": values, "n": int(len(v)),
                "mean": float(v.mean()) if len(v) else None,
                "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
                "min": float(v.min()) if len(v) else None,
                "max": float(v.max()) if len(v) else None,
                "ci_seed": main.seed, "ci_value": main_m[stat],
                "ci_low": ci.get("low"), "ci_high": ci.get("high")}
        out[f"N{n}"] = {"label": report.setting_label(n, main.random_init),
                        "trainable_layers": n, "distance": distance,
                        "seeds": [r.seed for r in runs], "settings": [r.key for r in runs],
                        "stats": stats}
    return out


def seed_table(spread: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`seed_spread` as a table: one row per N and statistic."""
    rows = [{"setting": g["label"], "trained layers": g["trainable_layers"],
             "distance": g["distance"], "statistic": stat,
             "seeds": ",".join(str(x) for x in g["seeds"]),
             **{k: v[k] for k in ("n", "mean", "sd", "min", "max", "ci_seed", "ci_value",
                                  "ci_low", "ci_high")}}
            for g in spread.values() for stat, v in g["stats"].items()]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- tables

_CI_KEYS = ("auc", "eer", "fnmr_at_fmr_1pct", "fnmr_at_fmr_0_1pct")
_VALUE_KEYS = ("gmean", "imean", "median_genuine", "median_impostor", "gap", "fisher")


def verification_table(settings: Mapping[str, Any], distances: Sequence[str] = EVAL_DISTANCES,
                       split: str = "test") -> pd.DataFrame:
    """One row per setting and distance: AUC, EER, FNMR at FMR 1% / 0.1% with their interval
    bounds, GMean, IMean, medians, gap, Fisher ratio, pair counts, null_reason."""
    rows = []
    for entry in settings.values():
        by = entry["splits"].get(split)
        if not by:
            continue
        for dist in distances:
            m = by[dist]
            row = {"setting": entry["label"], "distance": dist}
            for k in _CI_KEYS:
                ci = m.get("ci", {}).get(k, {})
                row.update({k: m[k], f"{k}_low": ci.get("low"), f"{k}_high": ci.get("high")})
            row.update({k: m[k] for k in _VALUE_KEYS})
            row.update(n_genuine=m["n_genuine"], n_impostor=m["n_impostor"],
                       null_reason=m["null_reason"] or "")
            rows.append(row)
    return pd.DataFrame(rows)


def threshold_table(settings: Mapping[str, Any], distances: Sequence[str] = EVAL_DISTANCES
                    ) -> pd.DataFrame:
    """One row per setting and distance: the validation threshold and its test accuracy,
    FMR and FNMR."""
    rows = []
    for entry in settings.values():
        th = entry["threshold"]
        for dist in distances:
            t = th.get(dist, {"threshold": None, "null_reason": th.get("null_reason")})
            val, test = t.get("val", {}), t.get("test", {})
            rows.append({"setting": entry["label"], "distance": dist, "rule": t.get("rule"),
                         "threshold": t["threshold"], "val_fmr": val.get("fmr"),
                         "val_fnmr": val.get("fnmr"), "test_accuracy": test.get("accuracy"),
                         "test_fmr": test.get("fmr"), "test_fnmr": test.get("fnmr"),
                         "null_reason": t.get("null_reason") or ""})
    return pd.DataFrame(rows)


def identification_table(settings: Mapping[str, Any], distances: Sequence[str] = EVAL_DISTANCES
                         ) -> pd.DataFrame:
    """One row per setting and distance: rank-1 and rank-5 identification with intervals."""
    rows = []
    for entry in settings.values():
        ident = entry.get("identification", {})
        for dist in distances:
            r = ident.get(dist, {"null_reason": ident.get("null_reason")})
            row = {"setting": entry["label"], "distance": dist}
            for k in ("rank_1", "rank_5"):
                ci = r.get("ci", {}).get(k, {})
                row.update({k: r.get(k), f"{k}_low": ci.get("low"), f"{k}_high": ci.get("high")})
            row.update(n_probes=r.get("n_probes"), n_gallery_subjects=r.get("n_gallery_subjects"),
                       null_reason=r.get("null_reason") or "")
            rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and v != v) else f"{v:.{digits}f}"


def _with_ci(row: Mapping[str, Any], key: str) -> str:
    lo, hi = row.get(f"{key}_low"), row.get(f"{key}_high")
    if row.get(key) is None or lo is None or (isinstance(lo, float) and lo != lo):
        return _fmt(row.get(key))
    return f"{_fmt(row[key])} [{_fmt(lo)}, {_fmt(hi)}]"


def table_markdown(table: pd.DataFrame, kind: str, first: str = "setting") -> str:
    """A verification / thresholds / identification table as Markdown (values with their 95%
    intervals in brackets); `first` names the first column."""
    if table.empty:
        return "(nothing to show)\n"
    if kind == "verification":
        cols = {"setting": "setting", "distance": "distance", "auc": "AUC", "eer": "EER",
                "fnmr_at_fmr_1pct": "FNMR@FMR1%", "fnmr_at_fmr_0_1pct": "FNMR@FMR0.1%"}
        rows = [[r["setting"], r["distance"], *(_with_ci(r, k) for k in _CI_KEYS),
                 _fmt(r["gmean"]), _fmt(r["imean"]), _fmt(r["fisher"], 3),
                 f"{r['n_genuine']} / {r['n_impostor']}", r["null_reason"]]
                for r in table.to_dict("records")]
        head = [*cols.values(), "GMean", "IMean", "Fisher", "genuine / impostor", "note"]
    elif kind == "thresholds":
        rows = [[r["setting"], r["distance"], r["rule"] or "", _fmt(r["threshold"]),
                 _fmt(r["val_fmr"]), _fmt(r["val_fnmr"]), _fmt(r["test_accuracy"]),
                 _fmt(r["test_fmr"]), _fmt(r["test_fnmr"]), r["null_reason"]]
                for r in table.to_dict("records")]
        head = ["setting", "distance", "rule", "threshold", "val FMR", "val FNMR",
                "test accuracy", "test FMR", "test FNMR", "note"]
    elif kind == "identification":
        rows = [[r["setting"], r["distance"], _with_ci(r, "rank_1"), _with_ci(r, "rank_5"),
                 r["n_probes"] if r["n_probes"] is not None else "n/a",
                 r["n_gallery_subjects"] if r["n_gallery_subjects"] is not None else "n/a",
                 r["null_reason"]] for r in table.to_dict("records")]
        head = ["setting", "distance", "rank-1", "rank-5", "probes", "gallery subjects", "note"]
    elif kind == "seeds":
        rows = [[r["setting"], r["statistic"], r["seeds"], str(r["n"]),
                 f"{_fmt(r['mean'])} ± {_fmt(r['sd'])}", _fmt(r["min"]), _fmt(r["max"]),
                 f"{_fmt(r['ci_value'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
                 if r["ci_low"] is not None and r["ci_low"] == r["ci_low"]
                 else _fmt(r["ci_value"])]
                for r in table.to_dict("records")]
        seed = table["ci_seed"].iloc[0]
        head = ["setting", "statistic (test pairs)", "seeds", "n", "mean ± sd", "min", "max",
                f"seed {seed}: value [95% subject-bootstrap CI]"]
    else:
        raise InputError(f"unknown table kind {kind!r}")
    head[0] = first
    return pd.DataFrame(rows, columns=head).to_markdown(index=False, disable_numparse=True) + "\n"


# --------------------------------------------------------------------------- figures


def init_note(random_init: Sequence[bool]) -> str:
    """The random-init mark of a figure title: all, some or none of its settings."""
    flags = list(random_init)
    if flags and all(flags):
        return " (random init)"
    return " (some settings random init)" if any(flags) else ""


def _roc_curves(study: Study, dist: str, rows: str = "test") -> dict[str, Any]:
    curves: dict[str, Any] = {}
    for s in study.settings:
        d = read_distances(s.run_dir, (dist,))
        d = d[d["split"] == rows]
        why = M.missing_class(d["label"].to_numpy())
        curves[s.label] = why or M.roc(d[dist].to_numpy(np.float64), d["label"].to_numpy())
    return curves


def study_figures(ev: StudyEvaluation, distances: Sequence[str] = EVAL_DISTANCES
                  ) -> dict[str, Any]:
    """Chapter 5's figures of an evaluated study, the thesis's values beside the run's:
    {file stem: matplotlib Figure}. Figs 5.1 / 5.2 (losses per epoch), 5.3 (box plots of test
    distances), 5.4 (medians per setting), 5.5 (gap vs trained layers); ROC, DET and CMC
    curves per distance."""
    import dataclasses

    import matplotlib.pyplot as plt

    # the study seed's runs: a replicate (another seed) adds no curve or box
    study = dataclasses.replace(ev.study, settings=[s for s in ev.study.settings
                                                    if not s.replicate])
    figs: dict[str, Any] = {}
    note = init_note([s.random_init for s in study.settings])
    trained = {s.n_layers: s.run_dir for s in study.settings
               if s.kind == "train" and (s.run_dir / "history.csv").is_file()}
    if trained:
        history = report.loss_history(trained)
        f1, a1 = plt.subplots(figsize=(6, 4))
        f2, a2 = plt.subplots(figsize=(6, 4))
        report.plot_losses(history, axes=[a1, a2])
        tnote = init_note([s.random_init for s in study.settings if s.kind == "train"])
        a1.set_title(f"Train loss per epoch (Fig 5.1){tnote}\nthesis: lower with more "
                     f"trainable layers (no values printed)", fontsize=10)
        a2.set_title(f"Validation loss per epoch (Fig 5.2){tnote}\nthesis: lower with more "
                     f"trainable layers (no values printed)", fontsize=10)
        figs["fig_5_1_train_loss"], figs["fig_5_2_val_loss"] = f1, f2
    runs = _report_runs(study.settings)
    if runs:
        thesis = {s.label: report.THESIS_TABLE_5_1[s.report_key][:2] for s in study.settings
                  if s.report_key in report.THESIS_TABLE_5_1}
        fig, ax = plt.subplots(figsize=(max(5.0, 1.5 * len(runs)), 4.5))
        report.plot_distances(report.sweep_distances(runs), ax=ax, thesis=thesis,
                              title=f"Test pair distances by label (Fig 5.3){note}")
        figs["fig_5_3_distances"] = fig
    table = ev.tables.get("table_5_1")
    if table is not None and len(table):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(table)), 4.5))
        report.plot_medians(table, ax=ax, title=f"Median test distances (Fig 5.4){note}")
        figs["fig_5_4_medians"] = fig
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        report.plot_gap_vs_layers(table["trained layers"], table["gap"],
                                  table["thesis gap"], labels=list(table["setting"]), ax=ax,
                                  title=f"Median gap vs trained layers (Fig 5.5){note}")
        figs["fig_5_5_gap"] = fig
    if study.settings:
        fr, ar = plt.subplots(1, len(distances), figsize=(5 * len(distances), 4.2), squeeze=False)
        fd, ad = plt.subplots(1, len(distances), figsize=(5 * len(distances), 4.2), squeeze=False)
        fc, ac = plt.subplots(1, len(distances), figsize=(5 * len(distances), 4.2), squeeze=False)
        for k, dist in enumerate(distances):
            curves = _roc_curves(study, dist)
            good = {lab: r for lab, r in curves.items() if not isinstance(r, str)}
            report.plot_roc(good, ax=ar[0, k], title=f"ROC, test pairs, {dist}{note}")
            report.plot_det(good, ax=ad[0, k], title=f"DET, test pairs, {dist}{note}")
            for lab, why in curves.items():
                if isinstance(why, str):
                    for ax in (ar[0, k], ad[0, k]):
                        ax.plot([], [], " ", label=f"{lab}: {why.split(':')[0]}")
                        ax.legend(fontsize=7)
            cmcs = {ev.metrics["settings"][s.key]["label"]:
                    ev.metrics["settings"][s.key].get("identification", {}).get(dist, {})
                    .get("cmc", []) for s in study.settings}
            report.plot_cmc(cmcs, ax=ac[0, k], title=f"CMC, masked test probes, {dist}{note}")
        figs["roc"], figs["det"], figs["cmc"] = fr, fd, fc
    for fig in figs.values():
        fig.tight_layout()
    return figs


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


def pair_set_figures(distances: pd.DataFrame, pair_sets: Sequence[str],
                     identification: Mapping[str, Any] | None = None, title: str = "",
                     dists: Sequence[str] = EVAL_DISTANCES) -> dict[str, Any]:
    """ROC, DET (one curve per pair set) and CMC figures of a dataset evaluation, one panel
    per distance: {file stem: Figure}. `distances`: its distances.csv (split = pair set)."""
    import matplotlib.pyplot as plt

    n = len(dists)
    fr, ar = plt.subplots(1, n, figsize=(5 * n, 4.2), squeeze=False)
    fd, ad = plt.subplots(1, n, figsize=(5 * n, 4.2), squeeze=False)
    for k, dist in enumerate(dists):
        curves = {}
        for name in pair_sets:
            d = distances[distances["split"] == name]
            why = M.missing_class(d["label"].to_numpy())
            if why:
                for ax in (ar[0, k], ad[0, k]):
                    ax.plot([], [], " ", label=f"{name}: {why.split(':')[0]}")
            else:
                curves[name] = M.roc(d[dist].to_numpy(np.float64), d["label"].to_numpy())
        report.plot_roc(curves, ax=ar[0, k], title=f"ROC, {title}, {dist}")
        report.plot_det(curves, ax=ad[0, k], title=f"DET, {title}, {dist}")
    figs = {"roc": fr, "det": fd}
    if identification:
        fc, ac = plt.subplots(1, n, figsize=(5 * n, 4.2), squeeze=False)
        for k, dist in enumerate(dists):
            report.plot_cmc({"masked probes": identification.get(dist, {}).get("cmc", [])},
                            ax=ac[0, k], title=f"CMC, {title}, {dist}")
        figs["cmc"] = fc
    for fig in figs.values():
        fig.tight_layout()
    return figs
