"""The thesis's Table 5.1 and Figures 5.1-5.5 from run folders, beside the thesis's values;
ROC, DET and CMC curves (:mod:`mfr.evaluation.metrics`); figures saved as PNG and SVG (:func:`save_figure`).

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

import numpy as np
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
    config = read_run(run_dir).config if (Path(run_dir) / RUN_FILE).is_file() else {}
    return setting_label(setting, run_random_init(run_dir), config.get("backbone", "senet50"),
                         config.get("weights"))


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


_PAIR_ORDER = ("impostor", "genuine")
_DODGE = {"impostor": -0.2, "genuine": 0.2}  # seaborn's box centres for two hue levels


def plot_distances(dist: pd.DataFrame, ax=None, title: str | None = None,
                   metric: str = "sum_squared",
                   thesis: Mapping[str, tuple[float, float]] | None = None):
    """Box plots of distances by pair type (Fig 5.3), one group per setting.

    `dist`: :func:`sweep_distances`'s long table (columns setting, pair, distance), or one
    run's ``distances.csv`` (a ``label`` column and one column per metric; `metric` picks it).
    `thesis`: setting label -> (median impostor, median genuine), drawn as markers beside the
    boxes. A setting with no pairs of a type says so where its box would be (no silent gap).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if "pair" not in dist.columns:  # one run's distances.csv
        dist = pd.DataFrame({"setting": "this run",
                             "pair": dist["label"].map({1: "genuine", 0: "impostor"}),
                             "distance": dist[metric].to_numpy()})
    settings = list(dict.fromkeys(dist["setting"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5, 1.4 * len(settings)), 4))
    if len(dist):
        sns.boxplot(data=dist, x="setting", y="distance", hue="pair", hue_order=list(_PAIR_ORDER),
                    order=settings, ax=ax)
    lo, hi = (dist["distance"].min(), dist["distance"].max()) if len(dist) else (0.0, 1.0)
    for i, setting in enumerate(settings):
        have = set(dist.loc[dist["setting"] == setting, "pair"])
        for pair in _PAIR_ORDER:
            if pair not in have:
                ax.text(i + _DODGE[pair], (lo + hi) / 2, f"no {pair} pairs", rotation=90,
                        ha="center", va="center", fontsize=8, color="0.3")
    if thesis:
        xs, ys = [], []
        for i, setting in enumerate(settings):
            if setting in thesis and all(v == v for v in thesis[setting]):
                imp, gen = thesis[setting]
                xs += [i + _DODGE["impostor"], i + _DODGE["genuine"]]
                ys += [imp, gen]
        if xs:
            ax.scatter(xs, ys, marker="x", color="black", zorder=5, s=40,
                       label="thesis median (Table 5.1)")
            ax.legend()
    ax.set_xlabel("")
    ax.set_ylabel(f"{metric} distance")
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_title(title or "Test pair distances (Fig 5.3)")
    return ax


def plot_medians(table: pd.DataFrame, ax=None, title: str | None = None):
    """Median impostor and genuine distance per setting, this run and the thesis (Fig 5.4).

    `table`: :func:`table_5_1`'s columns (setting, median impostor, median genuine, thesis
    impostor, thesis genuine).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 1.2 * len(table)), 4))
    x = list(range(len(table)))
    ax.plot(x, table["median impostor"], "o-", color="C0", label="impostor, this run")
    ax.plot(x, table["median genuine"], "o-", color="C1", label="genuine, this run")
    ax.plot(x, table["thesis impostor"], "s--", color="C0", alpha=0.6, label="impostor, thesis")
    ax.plot(x, table["thesis genuine"], "s--", color="C1", alpha=0.6, label="genuine, thesis")
    ax.set_xticks(x, table["setting"], rotation=30, ha="right")
    ax.set_ylabel("median sum_squared distance")
    ax.set_title(title or "Median test distances per setting (Fig 5.4)")
    ax.legend(fontsize=8)
    return ax


def plot_gap_vs_layers(layers, gap, thesis_gap, labels=None, ax=None, title: str | None = None):
    """Median impostor - median genuine against the number of trained layers (Fig 5.5); the
    baseline is N = 0. `labels` name the ticks (default: the numbers)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    layers = [int(n) for n in layers]
    ax.plot(layers, list(gap), "o-", label="this run")
    ax.plot(layers, list(thesis_gap), "s--", label="thesis (Table 5.1)")
    ax.set_xticks(layers, labels if labels is not None else [str(n) for n in layers],
                  rotation=30 if labels is not None else 0, ha="right" if labels is not None
                  else "center")
    ax.set_xlabel("trained layers N (0: no fine-tuning)")
    ax.set_ylabel("median impostor - median genuine")
    ax.set_title(title or "Gap vs trained layers (Fig 5.5)")
    ax.legend()
    return ax


def plot_roc(curves: Mapping[str, Any], ax=None, title: str | None = None):
    """ROC curves (TMR against FMR, log FMR axis); `curves`: label -> :class:`mfr.evaluation.metrics.Roc`."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    floor = min((1 / (2 * max(len(r.fmr) - 1, 1)) for r in curves.values()), default=1e-3)
    for label, r in curves.items():
        ax.plot(np.maximum(r.fmr, floor), r.tmr, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("false match rate (log)")
    ax.set_ylabel("true match rate")
    ax.set_title(title or "ROC")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return ax


def plot_det(curves: Mapping[str, Any], ax=None, title: str | None = None):
    """DET curves (FNMR against FMR, both log); `curves`: label -> :class:`mfr.evaluation.metrics.Roc`."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    for label, r in curves.items():
        keep = (r.fmr > 0) & (r.fnmr > 0)
        ax.plot(r.fmr[keep], r.fnmr[keep], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false match rate (log)")
    ax.set_ylabel("false non-match rate (log)")
    ax.set_title(title or "DET")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return ax


def plot_cmc(cmcs: Mapping[str, Any], ax=None, title: str | None = None):
    """Cumulative match characteristic: rank-k identification rate against k; `cmcs`: label ->
    the ``cmc`` list of :func:`mfr.evaluation.metrics.identification`."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    for label, cmc in cmcs.items():
        if len(cmc):
            ax.plot(range(1, len(cmc) + 1), cmc, "o-", markersize=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("rank k")
    ax.set_ylabel("identification rate (rank <= k)")
    ax.set_title(title or "CMC: masked probes vs unmasked gallery")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return ax


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write `fig` as ``stem.png`` and ``stem.svg`` (atomically; the SVG without a date and with
    fixed element ids, so it is the same for the same figure)."""
    import matplotlib

    from mfr.core.outputs import atomic_path

    paths = []
    with matplotlib.rc_context({"svg.hashsalt": "mfr"}):
        for ext in ("png", "svg"):
            path = Path(f"{stem}.{ext}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, dpi=110,
                            metadata={"Date": None} if ext == "svg" else {"Software": None})
            paths.append(path)
    return paths


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
    from matplotlib.ticker import MaxNLocator

    for ax, col, title in zip(axes, ("loss", "val_loss"), ("train loss (Fig 5.1)",
                                                           "validation loss (Fig 5.2)"), strict=True):
        if col in history.columns:
            sns.lineplot(data=history, x="epoch", y=col, hue="setting", marker="o", ax=ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
    return axes


def save_figures(figs: dict[str, Any], out: Path) -> list[str]:
    """Each figure of `figs` (stem -> figure) as PNG and SVG in `out` (:func:`save_figure`),
    closed after; the names written."""
    import matplotlib.pyplot as plt

    written = []
    for stem, fig in figs.items():
        written += [p.name for p in save_figure(fig, out / stem)]
        plt.close(fig)
    return written
