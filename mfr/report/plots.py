"""The study's plot library: box plots of pair distances (Fig 5.3), medians and gaps per
setting (Figs 5.4, 5.5), loss curves (Figs 5.1, 5.2), ROC, DET and CMC curves
(:mod:`mfr.evaluation.metrics`), and figures saved as PNG and SVG (:func:`save_figure`). Plain
functions: tables in, axes out; matplotlib and seaborn are imported when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
