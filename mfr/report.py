"""The thesis's Table 5.1 and Figures 5.1-5.5 from run folders, beside the thesis's values.

A run folder is what `mfr embed` (the pre-trained baseline) or `mfr train` (one N) wrote: a
``summary.json`` (splits -> split -> metric -> statistics), a ``distances.csv`` and, for
training, a ``history.csv``. Plain functions: folders in, DataFrames or axes out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

# Table 5.1 of the thesis (test set, 8 epochs): setting -> (median impostor, median genuine)
THESIS_TABLE_5_1: dict[str | int, tuple[float, float]] = {
    "pre-trained": (1.278899, 0.989988),
    10: (1.699373, 1.406768),
    20: (1.969977, 1.667269),
    30: (1.974622, 1.679480),
    40: (1.959761, 1.689339),
    50: (1.976508, 1.555529),
    60: (1.988818, 1.607727),
    70: (1.987619, 1.544770),
}


def setting_label(setting: str | int) -> str:
    return "SENet50 pre-trained" if setting == "pre-trained" else f"last {setting} layers"


def run_summary(run_dir: str | Path, split: str = "test", metric: str = "sum_squared") -> dict:
    """One run's statistics (medians, gap, GMean, IMean, counts) for `split` and `metric`."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no summary (expected the output folder of `mfr embed` "
                                f"or `mfr train`)")
    s = json.loads(path.read_text(encoding="utf-8"))
    try:
        return s["splits"][split][metric]
    except KeyError:
        raise ValueError(f"{path}: holds no {split!r} split with metric {metric!r}") from None


def table_5_1(runs: Mapping[str | int, str | Path], metric: str = "sum_squared") -> pd.DataFrame:
    """Table 5.1: a row per setting ("pre-trained" or N -> run folder), this run beside the
    thesis (thesis values only for the thesis's distance, sum_squared)."""
    rows = []
    for setting, run_dir in runs.items():
        s = run_summary(run_dir, metric=metric)
        t_imp, t_gen = THESIS_TABLE_5_1.get(setting, (float("nan"), float("nan")))
        if metric != "sum_squared":
            t_imp = t_gen = float("nan")
        rows.append({
            "setting": setting_label(setting),
            "median impostor": s["median_impostor"],
            "median genuine": s["median_genuine"],
            "gap": s["gap"],
            "GMean": s["gmean"],
            "IMean": s["imean"],
            "thesis impostor": t_imp,
            "thesis genuine": t_gen,
            "thesis gap": t_imp - t_gen,
        })
    return pd.DataFrame(rows)


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


def plot_distances(dist: pd.DataFrame, ax=None, title: str | None = None):
    """Box plots of distances by setting and pair type (Fig 5.3)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(max(5, 1.4 * dist["setting"].nunique()), 4))
    sns.boxplot(data=dist, x="setting", y="distance", hue="pair",
                hue_order=["impostor", "genuine"], ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("distance (sum of squared differences)")
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
