"""The evaluation steps: a study folder's settings (`mfr evaluate --study`, notebook 04), or a
dataset's pairs with any embedder (`mfr evaluate --data-root`)."""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError
from mfr.core.outputs import write_csv, write_json, write_text
from mfr.core.precision import with_precision
from mfr.core.provenance import (
    claim,
    complete,
    listing_digest,
    marks_its_runs,
)
from mfr.core.run_record import read_run
from mfr.data.image_cache import build_image_cache
from mfr.data.pairs import (
    drop_failed_pairs,
    pair_indices,
    unique_pair_paths,
)
from mfr.evaluation.distances import DISTANCE_FLOAT_FORMAT
from mfr.evaluation.thresholds import evaluated_run
from mfr.report.plots import save_figures
from mfr.study.steps.settings import config_settings


@marks_its_runs
def evaluate_step(study_dir: str | Path, out_dir: str | Path | None = None,
                  config: StudyConfig | None = None, progress: bool = True, force: bool = False):
    """Chapter 5 for a study folder (`mfr evaluate --study DIR`), from its stored distances
    and embeddings (no forward pass).

    Reads ``DIR/partition``, the baseline (`mfr embed` run folder) and every ``mfr train``
    run folder (found by their run.json, :func:`mfr.evaluation.setting_metrics.discover_study`); lists what is
    missing or incomplete and evaluates the rest. An earlier evaluation of the same study with
    the same settings in `out_dir` is replaced when the study's run folders changed since. Writes into `out_dir` (default
    ``DIR/evaluation``): ``metrics.json`` (per setting, split and distance: AUC, EER, FNMR at
    FMR 1% / 0.1%, GMean, IMean, medians, Fisher ratio; test values with 95% intervals from a
    bootstrap over subjects; identification rank-1 / rank-5 / CMC), ``thresholds.json`` (chosen
    on the validation pairs by ``config.threshold_rule``, applied to the test pairs), tables
    as CSV and Markdown (``table_5_1``, ``verification``, ``thresholds``, ``identification``),
    ``summary.md``, Figures 5.1-5.5 and ROC / DET / CMC as PNG and SVG, ``run.json``.

    Args:
        config: its ``bootstrap_resamples``, ``threshold_rule`` and ``seed`` (the bootstrap's).

    Returns:
        The :class:`mfr.evaluation.setting_metrics.StudyEvaluation`.
    """
    from mfr.core.runs import discover_study
    from mfr.evaluation.figures import study_figures
    from mfr.evaluation.setting_metrics import evaluate_study
    from mfr.evaluation.tables import table_markdown

    cfg = config or StudyConfig()
    study = discover_study(study_dir)
    if not study.settings:
        what = "; ".join(f"{m['setting']}: {m['reason']}" for m in study.missing + study.incomplete)
        raise InputError(f"{study.root}: no finished run folder to evaluate ({what})")
    for m in study.missing:
        warnings.warn(f"missing {m['setting']} ({m['path']}): {m['reason']}", stacklevel=2)
    out = Path(out_dir) if out_dir is not None else study.root / "evaluation"
    fp = evaluate_fingerprint(study_dir, cfg)
    root = str(study.root.resolve())
    claim(out, "evaluate", fp, config=cfg, reopen=True, force=force or _follows_study(out, root, fp),
          study=root)
    ev = evaluate_study(study, cfg.threshold_rule, cfg.bootstrap_resamples, cfg.seed,
                          progress=progress)
    write_json(out / "metrics.json", ev.metrics)
    write_json(out / "thresholds.json", ev.thresholds)
    md = ["# Evaluation of " + str(study.root), ""]
    for name, table in ev.tables.items():
        write_csv(out / f"{name}.csv", table, float_format="%.6f")
        text = (table.to_markdown(index=False, floatfmt=".6f") + "\n" if name == "table_5_1"
                else table_markdown(table, name))
        write_text(out / f"{name}.md", text)
        md += [f"## {name}", "", text]
    notes = [f"{v['label']}, {d}: {n}" for v in ev.metrics["settings"].values()
             for d, m in v["splits"].get("test", {}).items() for n in m.get("notes", [])]
    if notes:
        md += ["## Notes (test pairs)", "", *(f"- {n}" for n in notes), ""]
    for title, items in (("Missing", study.missing), ("Incomplete", ev.metrics["incomplete"])):
        if items:
            md += [f"## {title}", "", *(f"- {m['setting']} ({m['path']}): {m['reason']}"
                                        for m in items), ""]
    figures = save_figures(study_figures(ev), out)
    md += ["Figures: " + ", ".join(figures), ""]
    write_text(out / "summary.md", "\n".join(md))
    complete(out, "evaluate", fp, config=cfg,
             outputs=["metrics.json", "thresholds.json", "summary.md",
                      *(f"{n}.{x}" for n in ev.tables for x in ("csv", "md")), *figures],
             study=str(study.root.resolve()),
             settings={s.key: str(s.run_dir) for s in study.settings}, missing=study.missing,
             incomplete=ev.metrics["incomplete"], figures=figures, tables=sorted(ev.tables))
    return ev


def _follows_study(out: Path, root: str, fp: dict[str, Any]) -> bool:
    """Whether `out` holds an evaluation of the study at `root` with these settings, made
    before its run folders changed (a setting or seed added, a run redone): it is replaced,
    as the evaluation follows the study's runs. Any other run there is refused by claim."""
    run = read_run(out, lenient=True) or {}
    return (run.get("command") == "evaluate" and run.get("study") == root
            and (run.get("fingerprint") or {}).get("settings") == fp["settings"])


#: The config fields an evaluation's numbers depend on.
EVALUATE_SETTINGS = ("bootstrap_resamples", "threshold_rule", "seed")


def evaluate_fingerprint(study_dir: str | Path, config: StudyConfig) -> dict[str, Any]:
    """What a study's evaluation depends on: its settings and the fingerprints and outputs of
    every run folder in the study (the partition, the baseline, each fine-tuned setting)."""
    study = Path(study_dir)
    runs = {}
    for d in sorted(p for p in study.iterdir() if p.is_dir()) if study.is_dir() else []:
        run = read_run(d, lenient=True)
        if run is not None and run.get("command") in ("partition", "embed", "train"):
            runs[d.name] = evaluated_run(run)
    return {"settings": config_settings(config, EVALUATE_SETTINGS), "runs": runs}


@dataclass
class DatasetEvaluation:
    """What :func:`evaluate_dataset_step` made (also on disk under `out_dir`)."""

    out_dir: Path
    metrics: dict[str, Any]  # metrics.json
    distances: pd.DataFrame  # a row per pair: split (the pair set), paths, label, distances
    embeddings: Any  # mfr.evaluation.embeddings.Embeddings


def _dataset_images(config: StudyConfig, data_root: Path, layout: str):
    """(dataset, unmasked, masked): the tree's images, each side a frame of path, subject
    (at most ``config.max_per_subject`` per subject and side, as the partition picks them);
    `layout` names a registered dataset (:func:`mfr.data.datasets.dataset_names`)."""
    from mfr.data.datasets import get_dataset, require_mask_flags
    from mfr.data.partition import select_images

    ds = get_dataset(layout).load(data_root, config.protocol)
    require_mask_flags(ds, "a direct evaluation (masked vs unmasked pairs, masked probes)")
    unmasked, masked, _, _ = select_images(ds, config.max_per_subject, verify=False)

    def frame(side):
        rows = [(im.path, im.subject) for s in ds.subjects for im in side[s]]
        return pd.DataFrame(rows, columns=["path", "subject"]).sort_values("path").reset_index(
            drop=True)
    return ds, frame(unmasked), frame(masked)


@marks_its_runs
@with_precision
def evaluate_dataset_step(
    config: StudyConfig,
    data_root: str | Path,
    layout: str,
    out_dir: str | Path,
    embedder: Any = "senet50",
    run_dir: str | Path | None = None,
    progress: bool = True,
    **embedder_options: Any,
) -> DatasetEvaluation:
    """A dataset evaluated directly, without a study (`mfr evaluate --data-root DIR --layout
    NAME --embedder E`; NAME a registered dataset, :mod:`mfr.data.datasets`; E a backbone or a
    reference embedder, :func:`mfr.backbones.embedders.embedder_names`).

    Pair sets: the dataset's ``evaluation_pair_sets``, in order: ``masked_vs_unmasked`` (every
    unmasked x masked image pair; at most ``config.max_per_subject`` images per subject and
    side) and its own (:attr:`mfr.data.datasets.DatasetSpec.pair_sets`; MFR2's pairs.txt:
    its masked-vs-unmasked pairs before it, and every pair of pairs.txt after it). A dataset
    whose images carry no mask flag (MLFW) is refused in one line.
    Each unique image is decoded once into an image cache of the embedder's size and embedded
    once; pairs of images that failed to load are dropped and counted.

    Writes into `out_dir`: ``cache/``, ``embeddings/``, ``distances.csv``, ``metrics.json``
    (one entry per pair set with ``auc``, ``eer``, ``fnmr_at_fmr_1pct``, ``fnmr_at_fmr_0_1pct``,
    ``gmean``, ``imean``, ``median_genuine``, ``median_impostor``, ``n_genuine``,
    ``n_impostor``, ... for the embedder's own distance (``default_distance``: sum_squared
    for senet50, euclidean_raw for dlib's), ``ci`` (95% subject bootstrap),
    ``by_distance`` (sum_squared, cosine, l1, and for dlib ``euclidean_raw``: Euclidean on the
    unnormalised descriptors, face_recognition's own distance), ``accuracy_cv``; plus
    ``identification``, ``embedder``, ``dataset``),
    ``metrics.md``, ``thresholds.json``, ROC / DET / CMC figures, ``run.json``.

    Args:
        config: seed, bootstrap_resamples, max_per_subject, protocol (RMFRD file patterns),
            decoder, embed_batch_size; when `embedder` is the config's backbone also its
            network: weights, preprocessing, image_size and the backbone's own settings.
        embedder: a backbone (its generic embedder) or a reference embedder, by name; or an
            :class:`mfr.backbones.embedders.Embedder` made by the caller (its ``describe()``
            is then what the run depends on; no `run_dir` or options).
        run_dir: a backbone's `mfr train` run folder (its fine-tuned network).
        embedder_options: passed on to the embedder (e.g. ``face_box``, dlib's ``landmarks``).
    """
    from mfr.backbones import BACKBONES, get_backbone
    from mfr.backbones.embedders import get_embedder
    from mfr.backbones.facts import RANDOM_WEIGHTS_WARNING
    from mfr.data.datasets import EVERY_PAIR, get_dataset
    from mfr.evaluation.dataset import dataset_markdown, pair_set_entry
    from mfr.evaluation.distances import all_pair_distances, pair_distances
    from mfr.evaluation.embeddings import Embeddings, save_embeddings
    from mfr.evaluation.figures import init_note, pair_set_figures
    from mfr.evaluation.pair_sets import (
        BOOTSTRAP_DEFINITION,
        DEFAULT_DISTANCE,
        EVAL_DISTANCES,
        RAW_EUCLIDEAN,
        identification_metrics,
        masked_vs_unmasked_pairs,
    )

    cfg = config
    out = Path(out_dir)
    root = Path(data_root)
    ds, unmasked, masked = _dataset_images(cfg, root, layout)
    given = None
    if not isinstance(embedder, str):  # an embedder object: its description names it
        if run_dir is not None or embedder_options:
            raise InputError("an embedder object takes no run_dir or options (they are its own)")
        given = embedder
        embedder = given.name
        desc_now = {k: v for k, v in given.describe().items() if not k.startswith("n_")}
        embedder_options = {"describe": json.dumps(desc_now, sort_keys=True, default=str)}
    fp = {"data_root": str(ds.root.resolve()), "data": listing_digest(ds.root),
          "layout": layout, "embedder": embedder, "options": {k: str(v) for k, v in
                                                              sorted(embedder_options.items())},
          "run": (read_run(run_dir, lenient=True) or {}).get("fingerprint") if run_dir else None,
          "settings": config_settings(cfg, ("bootstrap_resamples", "seed", "max_per_subject",
                                      "protocol", "decoder", "weights", "preprocessing",
                                      "pooling", "image_size", "precision"))}
    spec = get_dataset(layout)
    pair_sets: dict[str, pd.DataFrame] = {
        name: (masked_vs_unmasked_pairs(unmasked, masked) if name == EVERY_PAIR
               else spec.own_pairs(name, ds.root))
        for name in spec.evaluation_pair_sets}
    if given is not None:
        pass
    elif embedder in BACKBONES:
        backbone = get_backbone(embedder)
        network = {}
        if embedder == cfg.backbone and run_dir is None:  # the config's network
            network = {"weights": cfg.weights, "preprocessing": cfg.preprocessing,
                       "image_size": cfg.image_size,
                       **{k: getattr(cfg, k) for k in backbone.facts.settings}}
        embedder_options = {**network, "run_dir": run_dir, "batch_size": cfg.embed_batch_size,
                            "seed": cfg.seed, **embedder_options}
    elif run_dir is not None:
        raise InputError(f"--run-dir is a backbone's option (a `mfr train` run of "
                         f"{', '.join(BACKBONES)}), not {embedder}'s")
    # bad options fail before slow work
    emb_model = given if given is not None else get_embedder(embedder, **embedder_options)
    if given is None and embedder in BACKBONES and run_dir is None:
        get_backbone(embedder).check_weights(emb_model.weights, progress)
    # the run records the config fields this evaluation used: the backbone's when it embeds
    record = cfg if embedder == cfg.backbone else cfg.used_by("evaluate_embedder")
    claim(out, "evaluate", fp, config=record, reopen=True)
    paths = sorted(set(unmasked["path"]) | set(masked["path"])
                   | set(unique_pair_paths(*pair_sets.values())))
    cache = build_image_cache(ds.root, paths, out / "cache", size=emb_model.image_size,
                              progress=progress, decoder=cfg.decoder, config=cfg)
    vectors = emb_model.embed(cache.images, progress=progress)
    desc = emb_model.describe()
    if desc.get("random_init"):
        print(f"WARNING: {RANDOM_WEIGHTS_WARNING.format(seed=cfg.seed, label=desc['label'])}",
              file=sys.stderr)
    flags = {k: [cache.paths[i] for i in np.flatnonzero(v)] for k, v in emb_model.flags.items()}
    failed = sorted(set(cache.failed["path"]) | set(flags.get("failed", [])))
    save_embeddings(out / "embeddings", vectors, cache.paths, config=cfg,
                    meta={"embedder": desc, "flags": flags})
    dist_names = list(EVAL_DISTANCES)
    raw = None
    if emb_model.norms is not None:  # the model's own distance: Euclidean on raw vectors
        raw = vectors.astype(np.float64) * emb_model.norms[:, None]
        dist_names.append(RAW_EUCLIDEAN)
    emb = Embeddings(vectors, cache.paths, {"embedder": desc})
    emb.failed_paths = frozenset(failed)

    frames, entries, notes = [], {}, []
    for name, df in pair_sets.items():
        kept, dropped = drop_failed_pairs(df, emb)
        if len(dropped):
            notes.append(f"{name}: {len(dropped)} of {len(df)} pairs dropped: an image failed "
                         f"to load or embed (see images_failed)")
        idx = pair_indices(kept, emb)
        dists = all_pair_distances(emb.vectors, idx.u_idx, idx.m_idx, EVAL_DISTANCES)
        if raw is not None:
            dists[RAW_EUCLIDEAN] = pair_distances(raw, idx.u_idx, idx.m_idx, "l2")
        frame = pd.DataFrame({"split": name, **{c: kept[c].to_numpy() for c in kept.columns},
                              **dists})
        frames.append(frame)
        entries[name] = pair_set_entry(frame, dist_names, cfg.bootstrap_resamples, cfg.seed,
                                         default=emb_model.default_distance)
        entries[name]["n_pairs_dropped"] = int(len(dropped))
        entries[name].update(df.attrs.get("entry", {}))  # the dataset's notes on its own pairs
        if entries[name]["null_reason"]:
            warnings.warn(f"{name}: {entries[name]['null_reason']}", stacklevel=2)
    ok_u = unmasked[~unmasked["path"].isin(failed)]
    ok_m = masked[~masked["path"].isin(failed)]
    identification = identification_metrics(emb, ok_m, ok_u, EVAL_DISTANCES,
                                              cfg.bootstrap_resamples, cfg.seed)
    n_no_face = len(flags.get("no_face_detected", []))
    if n_no_face:
        notes.append(f"{n_no_face} of {len(cache.paths)} images: no face detected, the whole "
                     f"image was the face box")
    metrics = {
        **entries,
        "identification": identification,
        "pair_sets": list(entries),
        "distances": dist_names,
        "default_distance": emb_model.default_distance if emb_model.default_distance in
        dist_names else DEFAULT_DISTANCE,
        "embedder": desc,
        "dataset": {"root": str(ds.root), "layout": layout, "n_subjects": len(ds.subjects),
                    "n_unmasked_images": len(unmasked), "n_masked_images": len(masked),
                    "max_per_subject": cfg.max_per_subject},
        "bootstrap": {"unit": "subject", "n_resamples": cfg.bootstrap_resamples,
                      "seed": cfg.seed, "confidence": 0.95, "method": "percentile",
                      "definition": BOOTSTRAP_DEFINITION},
        "images_failed": failed,
        "no_face_detected": flags.get("no_face_detected", []),
        "notes": notes,
    }
    distances = pd.concat(frames, ignore_index=True)
    write_csv(out / "distances.csv", distances, float_format=DISTANCE_FLOAT_FORMAT)
    write_json(out / "metrics.json", metrics)
    write_text(out / "metrics.md", dataset_markdown(metrics, list(entries)))
    write_json(out / "thresholds.json", {
        "rule": "eer", "accept": "distance <= threshold", "embedder": desc,
        "chosen_on": "each pair set itself (in-sample: a dataset has no validation split)",
        "pair_sets": {name: {d: e["by_distance"][d]["eer_threshold"] for d in dist_names}
                      for name, e in entries.items()}})
    figures = save_figures(pair_set_figures(distances, list(entries), identification,
                                               title=f"{desc['name']} on {layout}"
                                               + init_note([bool(desc.get("random_init"))])),
                          out)
    complete(out, "evaluate", fp, config=record,
             outputs=["distances.csv", "metrics.json", "metrics.md", "thresholds.json",
                      "embeddings", *figures],
             data_root=str(ds.root.resolve()), layout=layout, embedder=desc,
             pair_sets=list(entries), figures=figures, n_images=len(cache.paths),
             n_images_failed=len(failed))
    return DatasetEvaluation(out, metrics, distances, emb)
