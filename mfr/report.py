"""The thesis's Table 5.1 and Figures 5.1-5.5 from run folders, beside the thesis's values.

A run folder is what `mfr embed` (the pre-trained baseline) or `mfr train` (one N) wrote: a
``summary.json`` (splits -> split -> metric -> statistics), a ``distances.csv`` and, for
training, a ``history.csv``. Plain functions: folders in, DataFrames or axes out. This module
is the one home of the thesis's Chapter 5 numbers (:data:`THESIS_TABLE_5_1`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mfr.errors import InputError, MissingError

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
_STATS = ["median_impostor", "median_genuine", "gap", "gmean", "imean"]


def thesis_row(setting: str | int) -> dict[str, float]:
    """Table 5.1's row of a setting ("pre-trained" or N) as {median_impostor, median_genuine,
    gap}; NaN where the thesis has no such setting."""
    nan = float("nan")
    imp, gen, gap = THESIS_TABLE_5_1.get(setting, (nan, nan, nan))
    return {"median_impostor": imp, "median_genuine": gen, "gap": gap}


def setting_label(setting: str | int) -> str:
    return "SENet50 pre-trained" if setting == "pre-trained" else f"last {setting} layers"


def run_summary(run_dir: str | Path, split: str = "test", metric: str = "sum_squared") -> dict:
    """One run's statistics (medians, gap, GMean, IMean, counts) for `split` and `metric`."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise MissingError(f"{path}: no summary (expected the output folder of `mfr embed` "
                                f"or `mfr train`)")
    s = json.loads(path.read_text(encoding="utf-8"))
    try:
        return s["splits"][split][metric]
    except KeyError:
        raise InputError(f"{path}: holds no {split!r} split with metric {metric!r}") from None


def summary_table(summary: Mapping[str, Any], label: str = "this run") -> pd.DataFrame:
    """One run's medians, gap, GMean, IMean (a :func:`mfr.distances.summarise` dict) beside
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
            "setting": setting_label(setting),
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
            "setting": setting_label(setting),
            "pair": d["label"].map({1: "genuine", 0: "impostor"}),
            "distance": d[metric].to_numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


def loss_history(runs: Mapping[int, str | Path]) -> pd.DataFrame:
    """Per-epoch train and validation loss of training runs, long format (Figs 5.1, 5.2)."""
    frames = []
    for n, run_dir in runs.items():
        h = pd.read_csv(Path(run_dir) / "history.csv")
        frames.append(h.assign(setting=setting_label(n)))
    return pd.concat(frames, ignore_index=True)


def plot_distances(dist: pd.DataFrame, ax=None, title: str | None = None,
                   metric: str = "sum_squared"):
    """Box plots of distances by pair type (Fig 5.3), one group per setting.

    `dist`: :func:`sweep_distances`'s long table (columns setting, pair, distance), or one
    run's ``distances.csv`` (a ``label`` column and one column per metric; `metric` picks it).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if "pair" not in dist.columns:  # one run's distances.csv
        dist = pd.DataFrame({"setting": "this run",
                             "pair": dist["label"].map({1: "genuine", 0: "impostor"}),
                             "distance": dist[metric].to_numpy()})
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5, 1.4 * dist["setting"].nunique()), 4))
    sns.boxplot(data=dist, x="setting", y="distance", hue="pair",
                hue_order=["impostor", "genuine"], ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel(f"{metric} distance")
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_title(title or "Test pair distances (Fig 5.3)")
    return ax


def plot_gap(table: pd.DataFrame, ax=None):
    """Median impostor - median genuine per setting, this run and the thesis (Fig 5.5)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    x = range(len(table))
    ax.plot(x, table["gap"], "o-", label="this run")
    ax.plot(x, table["thesis gap"], "s--", label="thesis (Table 5.1)")
    ax.set_xticks(list(x), table["setting"], rotation=30, ha="right")
    ax.set_ylabel("median impostor - median genuine")
    ax.set_title("Gap per setting (Fig 5.5)")
    ax.legend()
    return ax


def plot_losses(history: pd.DataFrame, axes=None):
    """Train and validation loss per epoch and setting (Figs 5.1, 5.2)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, col, title in zip(axes, ("loss", "val_loss"), ("train loss (Fig 5.1)",
                                                           "validation loss (Fig 5.2)"), strict=True):
        sns.lineplot(data=history, x="epoch", y=col, hue="setting", marker="o", ax=ax)
        ax.set_title(title)
    return axes
