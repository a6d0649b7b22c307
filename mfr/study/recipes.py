"""Training recipes compared on the same held-out test subjects (issue 19, `mfr recipes`).

A recipes profile (``configs/rmfrd-recipes.yaml``) is a study profile plus a ``recipes:`` list.
``StudyConfig`` refuses keys it does not know, so :func:`load_recipes` takes ``recipes`` out of
the YAML before the rest becomes the base config. Each recipe has a ``name`` and optionally:

``train``      false for the pre-trained network (embeddings only, no fine-tuning)
``base``       another recipe's name, or ``best_val``: the trained recipe listed before this
               one (without synthetic masks) with the highest validation AUC (the profile
               seed's run; ties: the first listed); its overrides come first, this recipe's on top
``overrides``  config fields (loss and its fields, synthetic_masks, trainable_layers -- one N
               --, optimizer, learning_rate, epochs, ...); the partition's subjects are the same
               for every row, so its fields other than synthetic_masks/_kinds are refused, and
               so is ``seed`` (the seeds are ``--seeds``)
``seeds``      the training seeds this recipe runs, a subset of the comparison's that holds
               the profile's seed (default: all of them): a slow recipe's cut, said in its row
``note``       a line for the table's reader

Layout under the output folder: ``partition_<synthetic_masks>/`` (one partition per mode,
made with the profile's seed, so every row has the same val and test pairs: checked),
``cache_<mode>/`` (its image cache), ``runs/pretrained/`` (an `mfr embed` folder),
``runs/<recipe>_s<seed>/`` (an `mfr train` folder per seed: the seed changes only the
initialisation and the order of the batches, never the partition). Every folder is reused
when complete with the same inputs and settings (the steps' own checks), so a rerun computes
nothing and writes the same ``recipes.csv``.

Numbers: the test pairs' AUC, EER and FNMR at FMR 1% of the thesis's distance (sum of squared
differences of unit embeddings; the same ranking as cosine, so the same AUC/EER, whatever the
loss trained) for the profile's seed with subject-bootstrap 95% intervals
(:func:`mfr.evaluation.pair_sets.pair_set_metrics`), their mean / sd / min / max over the
seeds, and the validation pairs' AUC (the basis of every choice: the ``best_val`` base and the
recipe named as the winner). The test pairs choose nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.config import CONFIG_DIR, StudyConfig, _read_profile
from mfr.core.errors import InputError, MissingError
from mfr.core.provenance import marks_its_runs
from mfr.core.readers.text import excerpt

__all__ = ["Recipe", "RecipesPlan", "auc_figure", "load_recipes", "run_recipes",
           "recipes_markdown"]

RECIPE_KEYS = ("name", "train", "base", "overrides", "seeds", "note")
#: partition fields a recipe may not change (every row has the same test subjects and pairs)
FIXED_FIELDS = ("data_root", "protocol", "max_per_subject", "train_val_fraction", "val_size",
                "seed", "seeds", "profile")
BEST_VAL = "best_val"
DISTANCE = "sum_squared"
STATS = ("auc", "eer", "fnmr_at_fmr_1pct")
FLOAT_FORMAT = "%.6f"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Recipe:
    """One row of the comparison, as the profile lists it."""

    name: str
    train: bool = True
    base: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    seeds: tuple[int, ...] | None = None


@dataclass
class RecipesPlan:
    """A recipes profile: its base config, its recipes, the file they came from."""

    config: StudyConfig
    recipes: list[Recipe]
    path: Path
    #: the profile's top-level keys that the caller reserved (``extra_keys``), as given
    extra: dict[str, Any] = field(default_factory=dict)


def _profile_path(profile: str | Path) -> Path:
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{profile}.yaml"
    if not path.exists():  # a folder, a FIFO ...: refused by the reader, naming what it is
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise MissingError(f"{path}: no such recipes profile (expected a YAML file or one of "
                           f"{known})")
    return path


def load_recipes(profile: str | Path, extra_keys: Sequence[str] = (),
                 **values: Any) -> RecipesPlan:
    """The recipes profile `profile` (a name in ``configs/`` or a YAML path) with `values` set
    on its base config; every recipe checked (its keys, its overrides as the config checks
    them, its base) before any work. `extra_keys`: top-level keys that are not config fields,
    taken out before the config is made and returned in ``extra`` (`mfr splits`' folds).
    Bad input: one :class:`InputError` naming the file."""
    path = _profile_path(profile)
    loaded = _read_profile(path)
    raw = loaded.pop("recipes", None)
    extra = {k: loaded.pop(k) for k in extra_keys if k in loaded}
    loaded.setdefault("profile", path.stem)
    try:
        config = StudyConfig().replace(**loaded).replace(**values)
    except ValueError as e:
        raise InputError(f"{path}: {e}") from None
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{path}: expected a non-empty 'recipes:' list of mappings (name, "
                         f"train, base, overrides, note)")
    recipes: list[Recipe] = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict) or "name" not in item:
            raise InputError(f"{path}: recipe {i}: expected a mapping with a name, got {excerpt(item)}")
        name = str(item["name"])
        where = f"{path}: recipe {excerpt(name, 40)}"
        unknown = sorted(set(item) - set(RECIPE_KEYS))
        if unknown:
            raise InputError(f"{where}: unknown key(s) {unknown}; a recipe has {list(RECIPE_KEYS)}")
        if not _NAME.match(name) or name in {r.name for r in recipes}:
            raise InputError(f"{where}: names must be unique and of letters, digits and "
                             f"_.+- (they name folders)")
        overrides = item.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise InputError(f"{where}: overrides must be a mapping of config keys, got "
                             f"{excerpt(overrides)}")
        fixed = sorted(set(overrides) & set(FIXED_FIELDS))
        if fixed:
            raise InputError(f"{where}: {fixed} cannot differ between recipes (every row has "
                             f"the same partition; seeds are --seeds)")
        train = item.get("train", True)
        if not isinstance(train, bool):
            raise InputError(f"{where}: train must be true or false, got {excerpt(train)}")
        base = item.get("base")
        if base is not None and base != BEST_VAL and base not in {r.name for r in recipes
                                                                  if r.train}:
            raise InputError(f"{where}: base must be {BEST_VAL!r} or a trained recipe listed "
                             f"before it, got {excerpt(base)}")
        if not train and (base is not None or overrides):
            raise InputError(f"{where}: a recipe with train: false takes no base or overrides")
        seeds = item.get("seeds")
        if seeds is not None and (not isinstance(seeds, list) or not seeds or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds)):
            raise InputError(f"{where}: seeds must be a non-empty list of seeds >= 0, got "
                             f"{excerpt(seeds)}")
        if seeds is not None and not train:
            raise InputError(f"{where}: a recipe with train: false has no seeds")
        recipe = Recipe(name, train, base, dict(overrides), str(item.get("note") or ""),
                        tuple(sorted(set(seeds))) if seeds is not None else None)
        recipes.append(recipe)
        try:
            cfg = config.replace(**_merged(recipe, recipes, None))
        except ValueError as e:
            raise InputError(f"{where}: {e}") from None
        if train:
            _one_n(cfg, where)
    return RecipesPlan(config, recipes, path, extra)


def _one_n(cfg: StudyConfig, where: str) -> int:
    from mfr.backbones import get_backbone

    if len(cfg.trainable_layers) != 1:
        raise InputError(f"{where}: trainable_layers must be one N per recipe, got "
                         f"{list(cfg.trainable_layers)}")
    return get_backbone(cfg.backbone).check_trainable_layers(cfg.trainable_layers[0])[0]


def _merged(recipe: Recipe, recipes: Sequence[Recipe], chosen: str | None) -> dict[str, Any]:
    """The recipe's overrides over its base's (``best_val``: `chosen`'s; None: none yet)."""
    by_name = {r.name: r for r in recipes}
    base = chosen if recipe.base == BEST_VAL else recipe.base
    below = _merged(by_name[base], recipes, chosen) if base is not None else {}
    return {**below, **recipe.overrides}


def _run_dir(out: Path, recipe: Recipe, seed: int) -> Path:
    return out / "runs" / (recipe.name if not recipe.train else f"{recipe.name}_s{seed}")


def _split_metrics(run_dir: Path, split: str, n_resamples: int, seed: int) -> dict[str, Any]:
    from mfr.evaluation.pair_sets import pair_set_metrics, read_distances

    d = read_distances(run_dir, (DISTANCE,))
    d = d[d["split"] == split]
    if len(d) == 0:
        raise InputError(f"{run_dir / 'distances.csv'}: no {split} pairs")
    m = pair_set_metrics(d, (DISTANCE,), n_resamples=n_resamples, seed=seed)[DISTANCE]
    m["pairs"] = len(d)
    return m


class _Ledger:
    """Seconds each run folder took when it was computed (``times.json``): a rerun that
    reuses a folder adds nothing, so the report's times stay those of the real work."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}

    def timed(self, key: str, folder: Path, fn: Callable[[], Any]) -> Any:
        from mfr.core.outputs import write_json

        before = (folder / "run.json").read_bytes() if (folder / "run.json").is_file() else None
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        after = (folder / "run.json").read_bytes() if (folder / "run.json").is_file() else None
        if after != before:
            self.data[key] = round(self.data.get(key, 0.0) + seconds, 1)
            write_json(self.path, self.data)
        return result


@marks_its_runs
def run_recipes(plan: RecipesPlan, out_dir: str | Path, seeds: Sequence[int] | None = None,
                only: Sequence[str] | None = None, progress: bool = True,
                log: Callable[[str], None] = print) -> pd.DataFrame:
    """Train and score every recipe of `plan` (those of `only` and what they depend on) for
    each seed of `seeds` (default: the config's ``seeds``, else its seed; the config's own seed
    is always run: its run carries the bootstrap intervals). Writes ``recipes.csv``,
    ``recipes.md``, ``recipes_auc.png`` and ``run.json`` under `out_dir`, returns the table."""
    from mfr.core.outputs import write_csv, write_text
    from mfr.core.provenance import claim, complete, lock, unlock
    from mfr.study.steps import embed_step, partition_step, train_step

    cfg0 = plan.config
    if cfg0.data_root is None:
        raise InputError(f"{plan.path}: no data root: pass --data-root DIR")
    seeds = sorted({cfg0.seed, *(seeds if seeds is not None else cfg0.seeds)})
    names = [r.name for r in plan.recipes]
    only = list(only) if only else names
    unknown = [n for n in only if n not in names]
    if unknown:
        raise InputError(f"--only: no recipe {unknown} in {plan.path} (it has {names})")
    needed = _needed(plan.recipes, only)
    out = Path(out_dir)
    fp = recipes_fingerprint(cfg0)
    lock(out)  # the claim every command makes: another command's folder is refused
    try:
        _adopt_record(out, fp)
        claim(out, "recipes", fp, config=cfg0, reopen=True)
    except BaseException:
        unlock(out)
        raise
    ledger = _Ledger(out / "times.json")
    t_start = time.perf_counter()
    for r in plan.recipes:
        if r.seeds is not None and cfg0.seed not in r.seeds:
            raise InputError(f"{plan.path}: recipe {r.name!r}: its seeds {list(r.seeds)} must "
                             f"hold the profile's seed {cfg0.seed} (its run has the intervals)")

    def runs_seed(r: Recipe, seed: int) -> bool:
        return (seed == cfg0.seed if not r.train
                else r.seeds is None or seed in r.seeds)

    steps = sum(runs_seed(r, s) for r in plan.recipes if r.name in needed for s in seeds)
    done = 0

    parts: dict[str, Path] = {}

    def partition_for(mode: str) -> Path:
        if mode not in parts:
            folder = out / f"partition_{mode}"
            log(f"recipes: partition (synthetic_masks {mode}) -> {folder}")
            ledger.timed(folder.name, folder,
                         partial(partition_step, cfg0.replace(synthetic_masks=mode), folder))
            parts[mode] = folder
            _check_same_pairs(parts)
        return parts[mode]

    # the profile's seed first, for every recipe (a ``best_val`` base is chosen on its
    # validation pairs), then each other seed: a run cut short still has whole rows for it
    results: dict[str, dict[int, dict[str, Any]]] = {}
    configs: dict[str, StudyConfig] = {}
    val_auc: dict[str, float] = {}
    chosen_base: str | None = None
    for seed in seeds:
        main = seed == cfg0.seed
        for recipe in plan.recipes:
            if recipe.name not in needed or not runs_seed(recipe, seed):
                continue
            if main and recipe.base == BEST_VAL:
                chosen_base = _best_val(plan.recipes, val_auc, recipe)
            cfg = configs.setdefault(
                recipe.name, cfg0.replace(**_merged(recipe, plan.recipes, chosen_base)))
            pairs = partition_for(cfg.synthetic_masks)
            cache = out / f"cache_{cfg.synthetic_masks}"
            run = _run_dir(out, recipe, seed)
            done += 1
            log(f"recipes: [{done}/{steps}] {recipe.name} seed {seed} -> {run}")
            if recipe.train:
                n = _one_n(cfg, recipe.name)
                ledger.timed(run.name, run, partial(
                    train_step, cfg.replace(seed=seed), n, pairs, run, cache_dir=cache,
                    resume=True, progress=progress))
            else:
                ledger.timed(run.name, run, partial(
                    embed_step, cfg, pairs, run, split="val,test", cache_dir=cache,
                    progress=progress))
            results.setdefault(recipe.name, {})[seed] = {
                "test": _split_metrics(run, "test", cfg0.bootstrap_resamples if main else 0,
                                       cfg0.seed),
                "val": _split_metrics(run, "val", 0, cfg0.seed)}
            if main:
                val_auc[recipe.name] = results[recipe.name][seed]["val"]["auc"]
    rows = {r.name: _row(r, configs[r.name], results[r.name], cfg0.seed,
                         chosen_base if r.base == BEST_VAL else r.base)
            for r in plan.recipes if r.name in needed}
    table = pd.DataFrame([rows[n] for n in names if n in only])
    write_csv(out / "recipes.csv", table, float_format=FLOAT_FORMAT)
    fig = auc_figure(table)
    from mfr.report.plots import save_figure

    fig_files = [p.name for p in save_figure(fig, out / "recipes_auc")]
    import matplotlib.pyplot as plt

    plt.close(fig)
    wall = time.perf_counter() - t_start
    md = recipes_markdown(table, cfg0, plan.path, seeds, ledger.data)
    write_text(out / "recipes.md", md)
    complete(out, "recipes", fp, config=cfg0,
             outputs=["recipes.csv", "recipes.md", *fig_files], profile=str(plan.path),
             recipes=[{**vars(r), "seeds": list(r.seeds) if r.seeds else None}
                      for r in plan.recipes], only=only, seeds=seeds, distance=DISTANCE,
             bootstrap_resamples=cfg0.bootstrap_resamples,
             seconds_this_invocation=round(wall, 1), seconds_computed=ledger.data)
    log(f"recipes: wrote {out / 'recipes.csv'} ({len(table)} rows, {wall:.0f} s)")
    return table


def recipes_fingerprint(config: StudyConfig) -> dict[str, Any]:
    """What a comparison folder is of: the data and the partition every row shares (its
    recipes, seeds and ``--only`` may change between invocations: each run folder under it
    has its own record, and the table is that invocation's)."""
    root = Path(config.data_root).expanduser().resolve() if config.data_root else None
    return {"data_root": str(root) if root else None,
            "partition": {k: getattr(config, k) for k in FIXED_FIELDS
                          if k not in ("data_root", "seeds", "profile")}}


def _adopt_record(out: Path, fp: dict[str, Any]) -> None:
    """A comparison folder made before `mfr recipes` claimed its folder (a run.json of
    command recipes without a fingerprint, or none beside a times.json) is taken as this
    comparison's, so that it is resumed, not refused as another run's."""
    from mfr.core.outputs import write_json
    from mfr.core.run_record import read_run

    run = read_run(out, lenient=True)
    if run is None and (out / "times.json").is_file() and not (out / "run.json").exists():
        write_json(out / "run.json", {"command": "recipes", "fingerprint": fp,
                                      "status": "running"})
    elif run is not None and run.get("command") == "recipes" and "fingerprint" not in run:
        old = {k: v for k, v in run.items() if k != "outputs"}  # then a list of names
        write_json(out / "run.json", {**old, "fingerprint": fp, "status": "complete"})


def _needed(recipes: Sequence[Recipe], only: Sequence[str]) -> set[str]:
    """The recipes of `only` and those they build on (a ``best_val`` base: every trained
    recipe before it without synthetic masks)."""
    by_name = {r.name: r for r in recipes}
    need: set[str] = set()
    todo = list(only)
    while todo:
        name = todo.pop()
        if name in need:
            continue
        need.add(name)
        r = by_name[name]
        if r.base == BEST_VAL:
            todo += [c.name for c in _candidates(recipes, r)]
        elif r.base is not None:
            todo.append(r.base)
    return need


def _candidates(recipes: Sequence[Recipe], recipe: Recipe) -> list[Recipe]:
    before = recipes[:[r.name for r in recipes].index(recipe.name)]
    return [r for r in before if r.train and r.base != BEST_VAL
            and r.overrides.get("synthetic_masks", "none") == "none"]


def _best_val(recipes: Sequence[Recipe], val_auc: dict[str, float], recipe: Recipe) -> str:
    cands = [r.name for r in _candidates(recipes, recipe)]
    if not cands:
        raise InputError(f"recipe {recipe.name!r}: base {BEST_VAL} needs a trained recipe "
                         f"without synthetic masks listed before it")
    return max(cands, key=lambda n: (val_auc[n], -cands.index(n)))


def _check_same_pairs(parts: dict[str, Path]) -> None:
    """Every partition's val and test pairs are the same (only train pairs gain masks)."""
    first = next(iter(parts.values()))
    for folder in parts.values():
        for split in ("val", "test"):
            if (folder / f"{split}.csv").read_bytes() != (first / f"{split}.csv").read_bytes():
                raise InputError(f"{folder / f'{split}.csv'}: differs from "
                                 f"{first / f'{split}.csv'}; the recipes must share their "
                                 f"{split} pairs")


def _row(recipe: Recipe, cfg: StudyConfig, per_seed: dict[int, dict[str, Any]], main_seed: int,
         base: str | None) -> dict[str, Any]:
    main = per_seed[main_seed]["test"]
    row: dict[str, Any] = {
        "recipe": recipe.name,
        "loss": cfg.loss if recipe.train else "none (pre-trained)",
        "synthetic_masks": cfg.synthetic_masks if recipe.train else "none",
        "trainable_layers": cfg.trainable_layers[0] if recipe.train else 0,
        "optimizer": cfg.optimizer if recipe.train else "",
        "learning_rate": cfg.learning_rate if recipe.train else np.nan,
        "epochs": cfg.epochs if recipe.train else 0,
        "based_on": base or "",
        "note": recipe.note,
        "seeds": ",".join(str(s) for s in per_seed),
        "val_auc": per_seed[main_seed]["val"]["auc"],
        "val_auc_mean": float(np.mean([m["val"]["auc"] for m in per_seed.values()])),
        "test_pairs": main["pairs"],
    }
    for stat in STATS:
        v = np.array([m["test"][stat] for m in per_seed.values()], dtype=np.float64)
        ci = main.get("ci", {}).get(stat, {})
        row[stat] = main[stat]
        row[f"{stat}_low"] = ci.get("low", np.nan)
        row[f"{stat}_high"] = ci.get("high", np.nan)
        row[f"{stat}_mean"] = float(v.mean())
        row[f"{stat}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else np.nan
        row[f"{stat}_min"] = float(v.min())
        row[f"{stat}_max"] = float(v.max())
    return row


def auc_figure(table: pd.DataFrame):
    """Test AUC per recipe: the profile seed's value with its subject-bootstrap 95% interval
    (bar), each seed's range (grey line)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(table) + 1.6))
    y = np.arange(len(table))[::-1]
    auc = table["auc"].to_numpy(float)
    err = np.vstack([auc - table["auc_low"].to_numpy(float),
                     table["auc_high"].to_numpy(float) - auc])
    ax.hlines(y, table["auc_min"], table["auc_max"], color="0.6", lw=6, alpha=0.5,
              label="range over seeds")
    ax.errorbar(auc, y, xerr=err, fmt="o", color="C0", capsize=3,
                label="seed's AUC, subject-bootstrap 95% CI")
    ax.axvline(0.5, color="0.8", ls="--", lw=1)
    ax.set_yticks(y, table["recipe"])
    ax.set_xlabel("test AUC (held-out subjects, masked vs unmasked pairs)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(table)), ncol=2,
              fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _fmt(row: pd.Series, stat: str) -> str:
    text = f"{row[stat]:.3f} [{row[f'{stat}_low']:.3f}, {row[f'{stat}_high']:.3f}]"
    if not np.isnan(row[f"{stat}_sd"]):
        text += f" ({row[f'{stat}_mean']:.3f} ± {row[f'{stat}_sd']:.3f})"
    return text


def recipes_markdown(table: pd.DataFrame, config: StudyConfig, profile: Path,
                     seeds: Sequence[int], seconds: dict[str, float]) -> str:
    """The table, the recipe chosen on validation pairs against the pre-trained network and
    the thesis's recipe, the compute time and what it was computed on."""
    lines = [f"# Recipes compared ({config.backbone}, profile {profile.stem})", "",
             f"Data: {config.data_root}; test pairs: the held-out test subjects' masked vs "
             f"unmasked pairs (the same for every row); distance: {DISTANCE} of unit "
             f"embeddings. Cells: the value for seed {config.seed} [subject-bootstrap 95% "
             f"interval, {config.bootstrap_resamples} resamples] (mean ± sd over seeds "
             f"{', '.join(map(str, seeds))}). val AUC: validation pairs, seed {config.seed}: "
             f"the basis of every choice (the test pairs choose nothing).", "",
             "| recipe | loss | masks | N | opt, lr, epochs | val AUC | test AUC | test EER | "
             "FNMR at FMR 1% |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        opt = (f"{r['optimizer']}, {r['learning_rate']:g}, {r['epochs']}"
               if r["epochs"] else "-")
        loss = r["loss"] + (f" (base: {r['based_on']})" if r["based_on"] else "")
        lines.append(f"| {r['recipe']} | {loss} | {r['synthetic_masks']} | "
                     f"{r['trainable_layers'] or '-'} | {opt} | {r['val_auc']:.3f} | "
                     f"{_fmt(r, 'auc')} | {_fmt(r, 'eer')} | {_fmt(r, 'fnmr_at_fmr_1pct')} |")
    notes = [f"- {r['recipe']} (seeds {r['seeds']}): {r['note']}" for _, r in table.iterrows()
             if r["note"] or r["seeds"] != ",".join(map(str, seeds)) and r["epochs"]]
    lines += ["", *notes, "", *_reading(table), ""]
    if seconds:
        total = sum(seconds.values())
        lines += [f"Compute: {total / 60:.1f} min in all for the run folders (partitions, "
                  f"embeddings, fine-tuning), "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(seconds.items())) + ".", ""]
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f} x" if b > 0 else "no ratio: 0"


def _reading(table: pd.DataFrame) -> list[str]:
    trained = table[table["epochs"] > 0]
    if trained.empty:
        return []
    best = trained.sort_values("val_auc", ascending=False, kind="stable").iloc[0]
    out = [f"Chosen on validation pairs: **{best['recipe']}** (val AUC {best['val_auc']:.3f})."]
    for ref in ("pretrained", "thesis"):
        hit = table[table["recipe"] == ref]
        if hit.empty or ref == best["recipe"]:
            continue
        r = hit.iloc[0]
        out.append(f"Against {ref}: test AUC {best['auc']:.3f} vs {r['auc']:.3f} "
                   f"({best['auc'] - r['auc']:+.3f}); EER {best['eer']:.3f} vs {r['eer']:.3f} "
                   f"({_ratio(best['eer'], r['eer'])}); FNMR at FMR 1% "
                   f"{best['fnmr_at_fmr_1pct']:.3f} vs {r['fnmr_at_fmr_1pct']:.3f}.")
    return [" ".join(out)]
