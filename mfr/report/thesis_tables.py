"""The thesis's Table 5.1 from run folders, beside the thesis's values, and the tables its
figures are drawn from (:mod:`mfr.report.plots` draws them).

A run folder is what `mfr embed` (the pre-trained baseline) or `mfr train` (one N) wrote: a
``summary.json`` (splits -> split -> metric -> statistics), a ``distances.csv`` and, for
training, a ``history.csv``. Plain functions: folders in, DataFrames or axes out. This module
is the one home of the thesis's Chapter 5 numbers (:data:`THESIS_TABLE_5_1`,
:data:`THESIS_TABLE_5_2`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mfr.core.errors import InputError, MissingError
from mfr.core.integrity import check_recorded
from mfr.core.run_record import read_json_record
from mfr.core.runs import RUN_FILE, read_run, setting_label
from mfr.core.runs import random_init as run_random_init

# Table 5.1 of the thesis (test set, 8 epochs, sum_squared distance):
# setting -> (median impostor, median genuine, gap), as printed
THESIS_TABLE_5_1: dict[str | int, tuple[float, float, float]] = {
    "pre-trained": (1.278899, 0.989988, 0.288911),
    10: (1.699373, 1.406768, 0.292605),
    20: (1.969977, 1.667269, 0.302708),
    30: (1.974622, 1.679480, 0.295142),
    40: (1.959761, 1.689339, 0.270422),
    50: (1.976508, 1.555529, 0.420979),
    60: (1.988818, 1.607727, 0.381091),
    70: (1.987619, 1.544770, 0.442849),
}
# Table 5.2 of the thesis: the distances (its sum_squared) of five scraped masked/unmasked pairs
# of other ethnicities, as printed and in its order: genuine pairs lower than impostor ones, a
# small gap. THESIS.md restates neither which pair is genuine nor which setting measured them.
THESIS_TABLE_5_2: tuple[float, ...] = (1.3828, 1.0777, 1.6498, 1.9072, 1.9341)
_STATS = ["median_impostor", "median_genuine", "gap", "gmean", "imean"]


def thesis_row(setting: str | int) -> dict[str, float]:
    """Table 5.1's row of a setting ("pre-trained" or N) as {median_impostor, median_genuine,
    gap}; NaN where the thesis has no such setting."""
    nan = float("nan")
    imp, gen, gap = THESIS_TABLE_5_1.get(setting, (nan, nan, nan))
    return {"median_impostor": imp, "median_genuine": gen, "gap": gap}


def run_label(setting: str | int, run_dir: str | Path) -> str:
    """:func:`setting_label` of a run folder, random init, backbone and weights read from it."""
    record = read_run(run_dir) if (Path(run_dir) / RUN_FILE).is_file() else None
    backbone = record.backbone if record is not None else None
    weights = record.config.get("weights") if record is not None else None
    return setting_label(setting, run_random_init(run_dir), backbone, weights)


def run_summary(run_dir: str | Path, split: str = "test", metric: str = "sum_squared") -> dict:
    """One run's statistics (medians, gap, GMean, IMean, counts) for `split` and `metric`."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise MissingError(f"{path}: no summary (expected the output folder of `mfr embed` "
                                f"or `mfr train`)")
    s = read_json_record(check_recorded(path), "the summary.json of `mfr embed` or `mfr train`")
    try:
        return s["splits"][split][metric]
    except KeyError:
        raise InputError(f"{path}: holds no {split!r} split with metric {metric!r}") from None


def summary_table(summary: Mapping[str, Any], label: str = "this run") -> pd.DataFrame:
    """One run's medians, gap, GMean, IMean (a :func:`mfr.evaluation.distances.summarise` dict) beside
    Table 5.1's first row (the pre-trained SENet50)."""
    thesis = {k: thesis_row("pre-trained").get(k, float("nan")) for k in _STATS}
    return pd.DataFrame(
        [{"setting": label, **{k: summary[k] for k in _STATS}},
         {"setting": "thesis Table 5.1: SENet50 pre-trained", **thesis}]
    ).set_index("setting")


def table_5_1(runs: Mapping[str | int, str | Path], metric: str = "sum_squared") -> pd.DataFrame:
    """Table 5.1: a row per setting ("pre-trained" or N -> run folder), this run beside the
    thesis (thesis values only for the thesis's distance, sum_squared)."""
    rows = []
    for setting, run_dir in runs.items():
        s = run_summary(run_dir, metric=metric)
        t = thesis_row(setting if metric == "sum_squared" else None)
        rows.append({
            "setting": run_label(setting, run_dir),
            "median impostor": s["median_impostor"],
            "median genuine": s["median_genuine"],
            "gap": s["gap"],
            "GMean": s["gmean"],
            "IMean": s["imean"],
            "thesis impostor": t["median_impostor"],
            "thesis genuine": t["median_genuine"],
            "thesis gap": t["gap"],
        })
    return pd.DataFrame(rows)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.6f}"


def baseline_markdown(summary: Mapping[str, Any]) -> str:
    """``summary.md`` of `mfr embed`: the baseline's medians per split beside Table 5.1's first
    row, with the random-weights warning when there is one."""
    t = thesis_row("pre-trained")
    rows = []
    for split, by_metric in summary["splits"].items():
        s = by_metric["sum_squared"]
        rows.append([f"this run, {split}", _fmt(s["median_impostor"]), _fmt(s["median_genuine"]),
                     _fmt(s["gap"]), _fmt(s["gmean"]), _fmt(s["imean"]),
                     f"{s['n_pairs']} ({s['n_genuine']} genuine)"])
    rows.append(["thesis Table 5.1, SENet50 pre-trained (test)", _fmt(t["median_impostor"]),
                 _fmt(t["median_genuine"]), _fmt(t["gap"]), "not reported", "not reported",
                 "18190"])
    table = pd.DataFrame(rows, columns=["setting", "median impostor", "median genuine", "gap",
                                        "GMean", "IMean", "pairs"])
    lines = ["# Baseline pair distances (mfr embed)", ""]
    if summary["warning"]:
        lines += [f"> **WARNING: {summary['warning']}**", ""]
    lines += [f"Weights: {summary['weights_desc']}; preprocessing: {summary['preprocessing']}; "
              f"distance: sum of squared differences of L2-normalised embeddings (the thesis's).",
              "", table.to_markdown(index=False, disable_numparse=True), "",
              f"Images embedded: {summary['n_images_embedded']}; failed to decode: "
              f"{summary['n_images_failed']}; pairs dropped: {summary['n_pairs_dropped']}.", ""]
    return "\n".join(lines)


def sweep_distances(runs: Mapping[str | int, str | Path], metric: str = "sum_squared",
                    split: str = "test") -> pd.DataFrame:
    """Long table of every pair's distance: setting, pair (genuine/impostor), distance."""
    frames = []
    for setting, run_dir in runs.items():
        d = pd.read_csv(Path(run_dir) / "distances.csv")
        if "split" in d.columns:
            d = d[d["split"] == split]
        frames.append(pd.DataFrame({
            "setting": run_label(setting, run_dir),
            "pair": d["label"].map({1: "genuine", 0: "impostor"}),
            "distance": d[metric].to_numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


def loss_history(runs: Mapping[int, str | Path]) -> pd.DataFrame:
    """Per-epoch train and validation loss of training runs, long format (Figs 5.1, 5.2)."""
    frames = []
    for n, run_dir in runs.items():
        h = pd.read_csv(check_recorded(Path(run_dir) / "history.csv"))
        frames.append(h.assign(setting=run_label(n, run_dir)))
    return pd.concat(frames, ignore_index=True)
