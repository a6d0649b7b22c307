"""Recipes judged across subject splits (issue 26, `mfr splits`).

One partition's test subjects decide little: on RMFRD's development subjects the thesis's
partition tests 25 subjects, and its test impostors use a few unmasked photos only. Here the
subjects are cut into K folds (:mod:`mfr.data.subject_splits`: contiguous folds of the
dataset's sorted subjects, or of a seeded order with ``split_seed``); each fold is tested once,
by networks trained and validated on the other K - 1, so every subject is a test subject
exactly once. With protocol ``all_pairs`` the test pairs are every unmasked x masked pair of
the fold's subjects (no impostor sampling).

A splits profile (``configs/rmfrd-splits.yaml``) is a recipes profile
(:mod:`mfr.study.recipes`: a base config and a ``recipes:`` list) with two more top-level keys,
``folds`` (K >= 2, default 5) and ``split_seed`` (None: the sorted subjects). They are not
config fields: they name the partitions here, as `mfr partition --folds/--fold/--split-seed`
does. Each recipe runs once per fold, at the profile's seed (so ``seeds``, a recipe's ``seeds``
and a ``best_val`` base are refused, as are synthetic masks and image-cache settings in a
recipe: the folds share one image cache).

Layout under the output folder: ``fold<f>/partition/`` (fold f's partition), ``cache/`` (one
image cache of every fold's images, and the aligned faces beside it: one face detection per
image), ``trunk_store/`` (the frozen trunk's features per N, shared by the folds:
:mod:`mfr.training.trunk_store`), ``fold<f>/runs/<recipe>/`` (an `mfr embed` folder for a
recipe with ``train: false``, else an `mfr train` folder). Every folder is reused when complete
with the same inputs and settings, so a rerun trains nothing and writes the same files.

Numbers: per recipe and fold, the test pairs' AUC, EER and FNMR at FMR 1% of the thesis's
distance with subject-bootstrap 95% intervals (the same resampled subjects for every recipe
of a fold: :func:`mfr.evaluation.metrics.bootstrap_subjects` draws by seed), and the
validation pairs' AUC; per recipe across folds (:func:`fold_summary`): mean, sd, min and max, fold 0's value and
interval beside them, and against the reference (the first recipe with ``train: false``, the
pre-trained network) the per-fold difference (mean, min, max) and the number of folds where
the recipe is better (higher AUC, lower EER, lower FNMR).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError
from mfr.core.readers.text import excerpt
from mfr.study.recipes import (
    BEST_VAL,
    DISTANCE,
    FLOAT_FORMAT,
    STATS,
    RecipesPlan,
    _Ledger,
    _merged,
    _one_n,
    _split_metrics,
    load_recipes,
)

__all__ = ["SplitsPlan", "fold_summary", "load_splits", "run_splits", "splits_figure",
           "splits_markdown"]

SPLIT_KEYS = ("folds", "split_seed")
DEFAULT_FOLDS = 5
#: fields a recipe may not change here: they would rebuild the image cache the folds share
SHARED_CACHE_FIELDS = ("image_size", "decoder")
#: per statistic, whether a higher value is better (AUC) or a lower one (EER, FNMR)
HIGHER_IS_BETTER = {"auc": True, "eer": False, "fnmr_at_fmr_1pct": False}
LABELS = {"auc": "AUC", "eer": "EER", "fnmr_at_fmr_1pct": "FNMR at FMR 1%"}


@dataclass
class SplitsPlan:
    """A splits profile: its recipes plan (base config, recipes, file), K and the split seed."""

    plan: RecipesPlan
    folds: int
    split_seed: int | None

    @property
    def config(self) -> StudyConfig:
        return self.plan.config

    @property
    def path(self) -> Path:
        return self.plan.path


def load_splits(profile: str | Path, folds: int | None = None, split_seed: Any = "profile",
                **values: Any) -> SplitsPlan:
    """The splits profile `profile` (a name in ``configs/`` or a YAML path) with `values` set
    on its base config, `folds` / `split_seed` in place of the profile's when given; every
    recipe checked before any work (:func:`mfr.study.recipes.load_recipes`, then what a run per
    fold cannot take). Bad input: one :class:`InputError` naming the file."""
    from mfr.data.subject_splits import check_split_options

    plan = load_recipes(profile, extra_keys=SPLIT_KEYS, **values)
    where = str(plan.path)
    k = plan.extra.get("folds", DEFAULT_FOLDS) if folds is None else folds
    seed = plan.extra.get("split_seed") if split_seed == "profile" else split_seed
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise InputError(f"{where}: folds must be an integer >= 2, got {excerpt(k)}")
    try:
        check_split_options(seed, k, 0)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    if plan.config.seeds:
        raise InputError(f"{where}: seeds {list(plan.config.seeds)}: mfr splits trains each "
                         f"fold once, at the profile's seed ({plan.config.seed})")
    for r in plan.recipes:
        at = f"{where}: recipe {r.name!r}"
        if r.base == BEST_VAL:
            raise InputError(f"{at}: base {BEST_VAL} is not taken here (each fold would choose "
                             f"its own); name the recipe")
        if r.seeds is not None:
            raise InputError(f"{at}: seeds: mfr splits trains each fold once, at the profile's "
                             f"seed")
        merged = _merged(r, plan.recipes, None)
        shared = sorted(set(merged) & set(SHARED_CACHE_FIELDS))
        if shared:
            raise InputError(f"{at}: {shared} cannot differ between recipes (the folds share "
                             f"one image cache)")
        if plan.config.replace(**merged).synthetic_masks != "none":
            raise InputError(f"{at}: synthetic_masks: not taken by mfr splits (use mfr recipes)")
    return SplitsPlan(plan, k, seed)


def _reference(plan: RecipesPlan) -> str | None:
    return next((r.name for r in plan.recipes if not r.train), None)


def _fold_subjects(parts: list[Path]) -> list[list[str]]:
    """Each fold's test subjects (its partition's stats.json), checked: disjoint, and together
    every subject of the partitions (InputError otherwise: folds of other data)."""
    import json

    tests, everyone = [], set()
    for p in parts:
        split = json.loads((p / "stats.json").read_text(encoding="utf-8"))["split_subjects"]
        tests.append(list(split["test"]))
        everyone |= set(split["test"]) | set(split["train_val"])
    seen: set[str] = set()
    for p, t in zip(parts, tests, strict=True):
        if seen & set(t) or not t:
            raise InputError(f"{p / 'stats.json'}: its test subjects are empty or overlap "
                             f"another fold's")
        seen |= set(t)
    if seen != everyone:
        raise InputError(f"{parts[0].parent.parent}: the folds' test subjects miss "
                         f"{sorted(everyone - seen)[:3]}")
    return tests


def _shared_cache(parts: list[Path], cfg: StudyConfig, cache_dir: Path, ledger: _Ledger,
                  progress: bool) -> None:
    """One image cache of every fold's images (built once; every step then finds it covers
    its pairs and reuses it)."""
    from mfr.core.outputs import write_json
    from mfr.data.image_cache import reusable
    from mfr.data.pairs import unique_pair_paths
    from mfr.study.steps.inputs import resolve_data_root
    from mfr.study.steps.prepare import image_cache_for, read_partition

    frames = {f"{i}/{s}": df for i, p in enumerate(parts) for s, df in read_partition(p).items()}
    root = resolve_data_root(None, parts[0], cfg, cache_dir)
    if reusable(cache_dir, unique_pair_paths(*frames.values()), cfg.image_size, root,
                cfg.decoder) is not None:
        return
    t0 = time.perf_counter()
    image_cache_for(root, frames, cache_dir, cfg, progress)
    ledger.data["cache"] = round(ledger.data.get("cache", 0.0) + time.perf_counter() - t0, 1)
    write_json(ledger.path, ledger.data)


def run_splits(splits: SplitsPlan, out_dir: str | Path, progress: bool = True,
               log: Callable[[str], None] = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Partition, train and score every recipe of `splits` on each of its folds (module
    docstring). Writes ``splits_folds.csv`` (a row per recipe and fold), ``splits.csv`` (a row
    per recipe: the spread across folds), ``splits.md``, ``splits_auc.png`` (and .svg),
    ``run.json`` and ``times.json`` under `out_dir`; returns (per fold, per recipe)."""
    from mfr.core.outputs import write_csv, write_json, write_text
    from mfr.report.plots import save_figure
    from mfr.study.steps import embed_step, partition_step, train_step

    plan, cfg0, k = splits.plan, splits.config, splits.folds
    if cfg0.data_root is None:
        raise InputError(f"{plan.path}: no data root: pass --data-root DIR")
    out = Path(out_dir)
    ledger = _Ledger(out / "times.json")
    t_start = time.perf_counter()
    parts = []
    for f in range(k):
        folder = out / f"fold{f}" / "partition"
        log(f"splits: partition, fold {f} of {k} -> {folder}")
        ledger.timed(f"fold{f}/partition", folder, partial(
            partition_step, cfg0, folder, split_seed=splits.split_seed, folds=k, fold=f))
        parts.append(folder)
    subjects = _fold_subjects(parts)
    cache_dir = out / "cache"
    log(f"splits: image cache of every fold's images -> {cache_dir}")
    _shared_cache(parts, cfg0, cache_dir, ledger, progress)
    configs = {r.name: cfg0.replace(**_merged(r, plan.recipes, None)) for r in plan.recipes}
    rows, done, steps = [], 0, k * len(plan.recipes)
    for f, pairs in enumerate(parts):  # fold by fold: a run cut short has whole folds
        for recipe in plan.recipes:
            cfg, run = configs[recipe.name], out / f"fold{f}" / "runs" / recipe.name
            done += 1
            log(f"splits: [{done}/{steps}] fold {f}, {recipe.name} -> {run}")
            if recipe.train:
                ledger.timed(f"fold{f}/{recipe.name}", run, partial(
                    train_step, cfg, _one_n(cfg, recipe.name), pairs, run, cache_dir=cache_dir,
                    resume=True, progress=progress, trunk_store=out / "trunk_store"))
            else:
                ledger.timed(f"fold{f}/{recipe.name}", run, partial(
                    embed_step, cfg, pairs, run, split="val,test", cache_dir=cache_dir,
                    progress=progress))
            test = _split_metrics(run, "test", cfg0.bootstrap_resamples, cfg0.seed)
            val = _split_metrics(run, "val", 0, cfg0.seed)
            rows.append(_fold_row(recipe.name, cfg if recipe.train else None, f,
                                  len(subjects[f]), test, val))
    per_fold = pd.DataFrame(rows)
    summary = fold_summary(per_fold, _reference(plan))
    write_csv(out / "splits_folds.csv", per_fold, float_format=FLOAT_FORMAT)
    write_csv(out / "splits.csv", summary, float_format=FLOAT_FORMAT)
    import matplotlib.pyplot as plt

    fig = splits_figure(per_fold)
    figs = [p.name for p in save_figure(fig, out / "splits_auc")]
    plt.close(fig)
    write_text(out / "splits.md", splits_markdown(per_fold, summary, splits, ledger.data))
    write_json(out / "run.json", {
        "command": "splits", "profile": str(plan.path), "config": cfg0.to_dict(),
        "recipes": [{**vars(r), "seeds": None} for r in plan.recipes],
        "folds": k, "split_seed": splits.split_seed, "reference": _reference(plan),
        "fold_test_subjects": subjects, "distance": DISTANCE,
        "bootstrap_resamples": cfg0.bootstrap_resamples, "seconds_computed": ledger.data,
        "outputs": ["splits_folds.csv", "splits.csv", "splits.md", *figs]})
    log(f"splits: wrote {out / 'splits.csv'} ({len(summary)} recipes x {k} folds, "
        f"{time.perf_counter() - t_start:.0f} s this time)")
    return per_fold, summary


def _fold_row(name: str, cfg: StudyConfig | None, fold: int, n_subjects: int,
              test: dict[str, Any], val: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "recipe": name, "trainable_layers": cfg.trainable_layers[0] if cfg else 0,
        "fold": fold, "test_subjects": n_subjects, "test_pairs": test["pairs"],
        "test_genuine": test["n_genuine"], "test_impostor": test["n_impostor"],
        "val_auc": val["auc"]}
    for stat in STATS:
        ci = test.get("ci", {}).get(stat, {})
        row[stat] = test[stat]
        row[f"{stat}_low"] = ci.get("low", np.nan)
        row[f"{stat}_high"] = ci.get("high", np.nan)
    return row


def fold_summary(per_fold: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    """A row per recipe (in order of appearance) from the per-fold rows (columns recipe,
    trainable_layers, fold, test_pairs and, per statistic of ``STATS``, its value and
    ``_low``/``_high``): across folds the mean, sd (ddof 1; NaN for one fold), min and max;
    fold 0's value and interval; against `reference`'s row of the same fold the difference
    (mean, min, max) and the number of folds where the recipe is better (``_better_folds``:
    strictly, higher AUC, lower EER or FNMR; empty for the reference itself or without one)."""
    ref = (per_fold[per_fold["recipe"] == reference].set_index("fold")
           if reference is not None else None)
    out = []
    for name in dict.fromkeys(per_fold["recipe"]):
        g = per_fold[per_fold["recipe"] == name].sort_values("fold", kind="stable")
        row: dict[str, Any] = {"recipe": name,
                               "trainable_layers": int(g["trainable_layers"].iloc[0]),
                               "folds": len(g), "test_pairs": int(g["test_pairs"].sum())}
        first = g[g["fold"] == 0]
        for stat in STATS:
            v = g[stat].to_numpy(np.float64)
            row[f"{stat}_mean"] = float(v.mean())
            row[f"{stat}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else np.nan
            row[f"{stat}_min"] = float(v.min())
            row[f"{stat}_max"] = float(v.max())
            for suffix in ("", "_low", "_high"):
                row[f"{stat}_fold0{suffix}"] = (float(first[f"{stat}{suffix}"].iloc[0])
                                                if len(first) else np.nan)
            diff, better = np.array([np.nan]), pd.NA
            if ref is not None and name != reference:
                common = [f for f in g["fold"] if f in ref.index]
                d = (g.set_index("fold").loc[common, stat].to_numpy(np.float64)
                     - ref.loc[common, stat].to_numpy(np.float64))
                if len(d):
                    diff = d
                    better = int((d > 0).sum() if HIGHER_IS_BETTER[stat] else (d < 0).sum())
            row[f"{stat}_diff_mean"] = float(diff.mean())
            row[f"{stat}_diff_min"] = float(diff.min())
            row[f"{stat}_diff_max"] = float(diff.max())
            row[f"{stat}_better_folds"] = better
        out.append(row)
    table = pd.DataFrame(out)
    for stat in STATS:
        table[f"{stat}_better_folds"] = table[f"{stat}_better_folds"].astype("Int64")
    return table


def splits_figure(per_fold: pd.DataFrame):
    """Test AUC per recipe and fold: each fold's value with its subject-bootstrap 95% interval,
    a line joining one fold's recipes (a fold's test subjects are the same for every recipe)."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(per_fold["recipe"]))
    folds = sorted(per_fold["fold"].unique())
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 3, 4))
    width = 0.5 / max(len(folds), 1)
    for i, f in enumerate(folds):
        g = per_fold[per_fold["fold"] == f].set_index("recipe").loc[names]
        x = np.arange(len(names)) + (i - (len(folds) - 1) / 2) * width
        auc = g["auc"].to_numpy(float)
        err = np.vstack([auc - g["auc_low"].to_numpy(float), g["auc_high"].to_numpy(float) - auc])
        ax.plot(x, auc, "-", color=f"C{i}", lw=0.8, alpha=0.6)
        ax.errorbar(x, auc, yerr=err, fmt="o", color=f"C{i}", capsize=2, ms=4,
                    label=f"fold {f} ({int(g['test_subjects'].iloc[0])} subjects)")
    ax.axhline(0.5, color="0.8", ls="--", lw=1)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("test AUC (every masked x unmasked pair)")
    ax.set_title("Test AUC per fold, subject-bootstrap 95% intervals", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _ci(row: pd.Series, stat: str, suffix: str = "") -> str:
    return (f"{row[stat + suffix]:.3f} [{row[f'{stat}{suffix}_low']:.3f}, "
            f"{row[f'{stat}{suffix}_high']:.3f}]")


def _spread(row: pd.Series, stat: str) -> str:
    return (f"{row[f'{stat}_mean']:.3f} ± {row[f'{stat}_sd']:.3f} "
            f"({row[f'{stat}_min']:.3f}-{row[f'{stat}_max']:.3f})")


def splits_markdown(per_fold: pd.DataFrame, summary: pd.DataFrame, splits: SplitsPlan,
                    seconds: dict[str, float]) -> str:
    """The spread across folds per recipe, the per-fold table, the comparison with the
    reference and the compute time."""
    cfg, k = splits.config, splits.folds
    ref = _reference(splits.plan)
    order = ("sorted subjects" if splits.split_seed is None
             else f"subjects in the order of split seed {splits.split_seed}")
    lines = [f"# Recipes across {k} subject folds ({cfg.backbone}, profile {splits.path.stem})",
             "", f"Data: {cfg.data_root}; {k} folds over subjects ({order}, contiguous folds: "
             f"every subject tested once, by networks trained and validated on the other "
             f"folds); protocol {cfg.protocol} (test pairs: "
             + ("every masked x unmasked pair of the fold's subjects" if cfg.protocol ==
                "all_pairs" else f"the {cfg.protocol} protocol's") + f"); distance: {DISTANCE} "
             f"of unit embeddings; face box {cfg.face_box}; every trained row at seed "
             f"{cfg.seed}. Intervals: subject bootstrap, {cfg.bootstrap_resamples} resamples "
             f"(the same draws for every recipe of a fold).", "",
             "## Across folds", "",
             "Cells: mean ± sd (min-max) over the folds; fold 0: its value [95% interval]; "
             f"better: folds where the recipe beats {ref or 'the reference'} (higher AUC, lower "
             "EER, lower FNMR at FMR 1%), with the mean difference.", "",
             "| recipe | N | test AUC | fold 0 AUC | EER | fold 0 EER | FNMR at FMR 1% | "
             "fold 0 FNMR | better: AUC | better: EER | better: FNMR |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        better = [("-" if pd.isna(r[f"{s}_better_folds"]) else
                   f"{int(r[f'{s}_better_folds'])} of {r['folds']} ({r[f'{s}_diff_mean']:+.3f})")
                  for s in STATS]
        lines.append(f"| {r['recipe']} | {r['trainable_layers'] or '-'} | "
                     + " | ".join(f"{_spread(r, s)} | {_ci(r, s, '_fold0')}" for s in STATS)
                     + " | " + " | ".join(better) + " |")
    lines += ["", "## Per fold", "",
              "| fold | subjects | genuine / impostor pairs | recipe | val AUC | test AUC | "
              "EER | FNMR at FMR 1% |", "|---|---|---|---|---|---|---|---|"]
    for _, r in per_fold.sort_values(["fold"], kind="stable").iterrows():
        lines.append(f"| {r['fold']} | {r['test_subjects']} | {r['test_genuine']} / "
                     f"{r['test_impostor']} | {r['recipe']} | {r['val_auc']:.3f} | "
                     + " | ".join(_ci(r, s) for s in STATS) + " |")
    notes = [f"- {r.name}: {r.note}" for r in splits.plan.recipes if r.note]
    if notes:
        lines += ["", *notes]
    lines += ["", *_reading(summary, ref)]
    if seconds:
        total = sum(seconds.values())
        lines += ["", f"Compute: {total / 60:.1f} min in all for the run folders (partitions, "
                  f"image cache, embeddings, fine-tuning; the first run of each N also "
                  f"computes its trunk features, the first embedding the face boxes), "
                  + ", ".join(f"{key} {v:.0f} s" for key, v in sorted(seconds.items())) + "."]
    return "\n".join(lines) + "\n"


def _reading(summary: pd.DataFrame, ref: str | None) -> list[str]:
    if ref is None:
        return []
    out = []
    for _, r in summary[summary["recipe"] != ref].iterrows():
        parts = [f"{LABELS[s]} better in {int(r[f'{s}_better_folds'])} of {r['folds']} folds "
                 f"(difference {r[f'{s}_diff_mean']:+.3f}, from {r[f'{s}_diff_min']:+.3f} to "
                 f"{r[f'{s}_diff_max']:+.3f})" for s in STATS
                 if not pd.isna(r[f"{s}_better_folds"])]
        if parts:
            out.append(f"- {r['recipe']} against {ref}: " + "; ".join(parts) + ".")
    return out
