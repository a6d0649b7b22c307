"""The figures of an evaluation: ROC, DET and CMC curves of a study's settings, the
distance distributions of a dataset's pair sets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.runs import Study
from mfr.evaluation import metrics as M
from mfr.evaluation.pair_sets import EVAL_DISTANCES, read_distances
from mfr.evaluation.setting_metrics import StudyEvaluation, _report_runs
from mfr.report import plots, thesis_tables

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
        history = thesis_tables.loss_history(trained)
        f1, a1 = plt.subplots(figsize=(6, 4))
        f2, a2 = plt.subplots(figsize=(6, 4))
        plots.plot_losses(history, axes=[a1, a2])
        tnote = init_note([s.random_init for s in study.settings if s.kind == "train"])
        a1.set_title(f"Train loss per epoch (Fig 5.1){tnote}\nthesis: lower with more "
                     f"trainable layers (no values printed)", fontsize=10)
        a2.set_title(f"Validation loss per epoch (Fig 5.2){tnote}\nthesis: lower with more "
                     f"trainable layers (no values printed)", fontsize=10)
        figs["fig_5_1_train_loss"], figs["fig_5_2_val_loss"] = f1, f2
    runs = _report_runs(study.settings)
    if runs:
        thesis = {s.label: thesis_tables.THESIS_TABLE_5_1[s.report_key][:2] for s in study.settings
                  if s.report_key in thesis_tables.THESIS_TABLE_5_1}
        fig, ax = plt.subplots(figsize=(max(5.0, 1.5 * len(runs)), 4.5))
        plots.plot_distances(thesis_tables.sweep_distances(runs), ax=ax, thesis=thesis,
                              title=f"Test pair distances by label (Fig 5.3){note}")
        figs["fig_5_3_distances"] = fig
    table = ev.tables.get("table_5_1")
    if table is not None and len(table):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(table)), 4.5))
        plots.plot_medians(table, ax=ax, title=f"Median test distances (Fig 5.4){note}")
        figs["fig_5_4_medians"] = fig
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        plots.plot_gap_vs_layers(table["trained layers"], table["gap"],
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
            plots.plot_roc(good, ax=ar[0, k], title=f"ROC, test pairs, {dist}{note}")
            plots.plot_det(good, ax=ad[0, k], title=f"DET, test pairs, {dist}{note}")
            for lab, why in curves.items():
                if isinstance(why, str):
                    for ax in (ar[0, k], ad[0, k]):
                        ax.plot([], [], " ", label=f"{lab}: {why.split(':')[0]}")
                        ax.legend(fontsize=7)
            cmcs = {ev.metrics["settings"][s.key]["label"]:
                    ev.metrics["settings"][s.key].get("identification", {}).get(dist, {})
                    .get("cmc", []) for s in study.settings}
            plots.plot_cmc(cmcs, ax=ac[0, k], title=f"CMC, masked test probes, {dist}{note}")
        figs["roc"], figs["det"], figs["cmc"] = fr, fd, fc
    for fig in figs.values():
        fig.tight_layout()
    return figs




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
        plots.plot_roc(curves, ax=ar[0, k], title=f"ROC, {title}, {dist}")
        plots.plot_det(curves, ax=ad[0, k], title=f"DET, {title}, {dist}")
    figs = {"roc": fr, "det": fd}
    if identification:
        fc, ac = plt.subplots(1, n, figsize=(5 * n, 4.2), squeeze=False)
        for k, dist in enumerate(dists):
            plots.plot_cmc({"masked probes": identification.get(dist, {}).get("cmc", [])},
                            ax=ac[0, k], title=f"CMC, {title}, {dist}")
        figs["cmc"] = fc
    for fig in figs.values():
        fig.tight_layout()
    return figs
