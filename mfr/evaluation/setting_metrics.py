"""Chapter 5's evaluation: a study folder's settings, or a dataset's pair sets, in numbers.

Everything here works on stored distances and embeddings (no forward pass): verification
metrics per setting, pair split and distance (:mod:`mfr.evaluation.metrics`, with subject-bootstrap
intervals on the test pairs), a decision threshold chosen on the validation pairs and applied to
the test pairs, 1:N identification of the masked test images against the unmasked ones, and
the tables of it all. :mod:`mfr.study.steps` (``evaluate_step``, ``evaluate_dataset_step``) reads
and writes the folders; :mod:`mfr.report.plots` draws the figures.

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

from mfr.core.errors import InputError
from mfr.core.progress import progress_bar
from mfr.core.runs import Setting, Study
from mfr.evaluation import metrics as M
from mfr.evaluation.pair_sets import (
    BOOTSTRAP_DEFINITION,
    DEFAULT_DISTANCE,
    EVAL_DISTANCES,
    _entry,
    identification_metrics,
    pair_set_metrics,
    probes_and_gallery,
    read_distances,
    threshold_metrics,
)
from mfr.evaluation.tables import identification_table, threshold_table, verification_table
from mfr.report import thesis_tables

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
    from mfr.core.integrity import ChangedOutputError
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
        except ChangedOutputError:
            raise  # not the run's embeddings: no number is made from them
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
                             for k, v in thesis_tables.THESIS_TABLE_5_1.items()},
    }
    tables = {
        "verification": verification_table(settings, distances),
        "thresholds": threshold_table(settings, distances),
        "identification": identification_table(settings, distances),
    }
    runs = _report_runs([s for s in study.settings if (s.run_dir / "summary.json").is_file()
                         and "test" in settings[s.key]["splits"]])
    if runs:
        t51 = thesis_tables.table_5_1(runs)
        t51.insert(1, "trained layers", [0 if k == "pre-trained" else int(k) for k in runs])
        tables["table_5_1"] = t51
    spread = seed_spread(study, settings)
    if spread:
        metrics["seeds"] = spread
        tables["seeds"] = seed_table(spread)
    return StudyEvaluation(study, metrics, thresholds, tables)


def _report_runs(settings: Sequence[Setting]) -> dict[str | int, Path]:
    """{"pre-trained" or N: run folder} for :mod:`mfr.report.thesis_tables` (the first of several embed runs;
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
        out[f"N{n}"] = {"label": thesis_tables.setting_label(n, main.random_init),
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


