"""Figures of a Grad-CAM run: overlays like the thesis's Fig 5.6, and the attention shares.

Both return a ``matplotlib.figure.Figure`` built without pyplot (no global state: safe in
scripts, tests and notebooks). A setting whose maps fail the deletion test
(:mod:`mfr.explain.attention`) says so in its title, so its maps are not read as an answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["overlay_grid", "plot_shares"]


def _title(label: str, passes: bool | None) -> str:
    if passes is None:
        return label
    return label if passes else f"{label}\nmaps FAIL the deletion test"


def overlay_grid(images: np.ndarray, maps: Mapping[str, np.ndarray], lines: Sequence[tuple[int, str]],
                 labels: Mapping[str, str], passes: Mapping[str, bool | None] | None = None,
                 shares: Mapping[str, Sequence[float]] | None = None, row_names: Sequence[str] = (),
                 title: str = ""):
    """Rows = images, columns = the image, then its map under each setting (heat map over the
    image, the mask line dashed).

    Args:
        images: uint8 (K, H, W, 3).
        maps: setting -> (K, H, W) maps at the image size (column order = mapping order).
        lines: per image (row, how) from :func:`mfr.data.faces.mask_line`.
        labels: setting -> column title; passes: setting -> deletion test passed (or None).
        shares: setting -> per-image attention share, printed in each panel.
    """
    from matplotlib.figure import Figure

    passes = passes or {}
    k, settings = len(images), list(maps)
    fig = Figure(figsize=(max(2.1 * (1 + len(settings)), 5.0), 2.2 * k + 1.0), dpi=100)
    axes = np.asarray(fig.subplots(k, 1 + len(settings), squeeze=False))
    for i in range(k):
        row, how = lines[i]
        panels = [(None, images[i])] + [(s, maps[s][i]) for s in settings]
        for j, (setting, m) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(images[i])
            if setting is not None:
                peak = float(np.max(m))
                if peak > 0:
                    ax.imshow(m / peak, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
                else:
                    ax.text(0.5, 0.5, "no map\n(all zero)", transform=ax.transAxes,
                            ha="center", va="center", color="white", fontsize=8)
                if shares is not None and np.isfinite(shares[setting][i]):
                    ax.text(0.02, 0.02, f"above line {shares[setting][i]:.2f}",
                            transform=ax.transAxes, color="white", fontsize=7,
                            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1})
            ax.axhline(row - 0.5, color="white", linestyle="--", linewidth=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("image" if setting is None else
                             _title(labels[setting], passes.get(setting)), fontsize=8)
            if j == 0:
                name = row_names[i] if i < len(row_names) else f"image {i}"
                ax.set_ylabel(f"{name}\nline: {how}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_shares(attention: pd.DataFrame, summary: pd.DataFrame, order: Sequence[str]):
    """Per setting and role, each image's share above the mask line (dots), the mean with its
    bootstrap CI (bar), and the share a uniform map would have (dotted: the mean line height).
    Maps failing the deletion test are drawn grey and their setting's label says so."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(max(7.5, 1.8 * len(order) + 3.5), 4.2), dpi=100)
    ax = fig.subplots()
    roles = sorted(attention["role"].unique())
    width = 0.8 / max(len(roles), 1)
    colours = {"masked": "tab:red", "unmasked": "tab:blue"}
    markers = {"masked": "o", "unmasked": "^"}
    for r, role in enumerate(roles):
        for x, setting in enumerate(order):
            g = attention[(attention.setting == setting) & (attention.role == role)]
            s = summary[(summary.setting == setting) & (summary.role == role)]
            if g.empty or s.empty:
                continue
            s = s.iloc[0]
            passes = bool(s["maps_pass_deletion_test"])
            colour = colours.get(role, "tab:green") if passes else "0.6"
            pos = x - 0.4 + width * (r + 0.5)
            y = g["share_above"].to_numpy(float)
            jitter = np.linspace(-width / 3, width / 3, len(y)) if len(y) > 1 else np.zeros(1)
            ax.scatter(pos + jitter, y, s=14, color=colour, alpha=0.7,
                       marker=markers.get(role, "s"))
            if np.isfinite(s["share_above_mean"]):
                ax.errorbar(pos, s["share_above_mean"],
                            yerr=[[s["share_above_mean"] - s["share_above_ci_low"]],
                                  [s["share_above_ci_high"] - s["share_above_mean"]]],
                            fmt="s", color="black" if passes else "0.6", capsize=4, markersize=4)
            ax.hlines(s["line_fraction_mean"], pos - width / 2, pos + width / 2, colors="k",
                      linestyles=":", linewidth=1)
    labels = []
    for setting in order:
        s = summary[summary.setting == setting]
        label = s["label"].iloc[0] if len(s) else setting
        failing = list(s.loc[~s["maps_pass_deletion_test"].astype(bool), "role"])
        if failing:
            label += f"\n({' and '.join(failing)} maps\nfail deletion test)"
        labels.append(label)
    ax.set_xticks(range(len(order)), labels, fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("share of Grad-CAM mass above the mask line", fontsize=9)
    ax.set_title("attention above the mask line\n(dots: images; square: mean, 95% bootstrap "
                 "CI; dotted: uniform map)", fontsize=9)
    handles = [Line2D([], [], linestyle="", marker=markers.get(r, "s"),
                      color=colours.get(r, "tab:green"), label=f"{r} image") for r in roles]
    handles.append(Line2D([], [], linestyle="", marker="o", color="0.6",
                          label="grey: maps fail deletion test"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    fig.tight_layout()
    return fig
