"""The study's steps: each reads its inputs from run folders, calls the array-level modules, and
writes one run folder. The CLI (`mfr.commands`), the notebooks and the demo all call these.

==================  =========================================  ===============================
step                reads                                      writes (into `out_dir`)
==================  =========================================  ===============================
prepare_sample      nothing (generates a synthetic tree)       ``synthetic/``, ``partition/``
partition_step      a dataset tree (RMFRD or MFR2)             pair CSVs, stats, Table 4.2
embed_step          pair CSVs, the data root, weights          image cache, embeddings,
                                                               distances, summary (baseline)
train_step          pair CSVs, the image cache, weights        history, checkpoints, trained
                                                               layers, val+test embeddings,
                                                               distances, summary
evaluate_step       a study folder's run folders (stored       metrics, thresholds, tables,
                    distances and embeddings)                  Figures 5.1-5.5, ROC/DET/CMC
evaluate_dataset_   a dataset tree, an embedder                image cache, embeddings,
step                                                           distances, metrics, figures
verify_pairs_step   a CSV of photo pairs, an embedder (a run   Table 5.2: distance and
                    folder's), thresholds.json                 decision per pair, figure
==================  =========================================  ===============================

``verify_step`` (`mfr verify IMG_A IMG_B`) reads run folders and writes nothing.

Below this layer everything is arrays in, arrays out: :mod:`mfr.partition` (pairs),
:mod:`mfr.image_cache`, :mod:`mfr.embeddings`, :mod:`mfr.distances`, :mod:`mfr.training`,
:mod:`mfr.metrics`, :mod:`mfr.evaluation`, :mod:`mfr.gradcam`.

Every step checks its inputs, then claims its output folder (:func:`mfr.provenance.claim`:
new, up to date, resumable, or refused) before any slow work, and records what made it in
the folder's ``run.json``. A folder whose run is complete and was made from the same inputs
and settings is not computed again (``force=True``: it is, from scratch).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr import report
from mfr.config import StudyConfig
from mfr.distances import DISTANCE_FLOAT_FORMAT, distance_table
from mfr.errors import InputError, MissingError
from mfr.image_cache import ImageCache, build_image_cache, reusable
from mfr.outputs import write_csv, write_json, write_text
from mfr.pairs import (
    SPLITS,
    drop_failed_pairs,
    pair_indices,
    parse_splits,
    read_pair_csvs,
    unique_pair_paths,
)
from mfr.provenance import (
    claim,
    complete,
    file_digest,
    listing_digest,
    read_run,
    state,
)

__all__ = [
    "DatasetEvaluation",
    "EmbedRun",
    "Sample",
    "check_weights",
    "embed_step",
    "evaluate_dataset_step",
    "evaluate_step",
    "partition_step",
    "prepare_sample",
    "resolve_data_root",
    "train_step",
    "verify_embedder",
    "verify_pairs_step",
    "verify_step",
]

RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS (weights=None, seed {seed}): this is NOT the pre-trained SENet50; the "
    "distances only exercise the pipeline (offline demo) and mean nothing about faces."
)


# --------------------------------------------------------------------------- shared checks


def resolve_data_root(data_root: str | Path | None, pairs_dir: Path, config: StudyConfig,
                      cache_dir: Path | None = None) -> Path | None:
    """`data_root` if given, else the data root that `mfr partition` recorded in the pairs
    folder's run.json, else the config's, else the one the image cache in `cache_dir` was made
    from; None when none is known."""
    if data_root is not None:
        return Path(data_root)
    if root := _recorded_root(Path(pairs_dir) / "run.json"):
        return root
    if config.data_root:
        return Path(config.data_root)
    return _recorded_root(Path(cache_dir) / "cache.json") if cache_dir is not None else None


def _recorded_root(record: Path) -> Path | None:
    if not record.is_file():
        return None
    root = json.loads(record.read_text(encoding="utf-8")).get("data_root")
    return Path(root) if root else None


def check_weights(config: StudyConfig, progress: bool = True) -> None:
    """Make sure the config's weights can be had before any slow work: a file that exists, or
    the VGGFace2 file found or downloaded. FileNotFoundError says what is missing."""
    if config.weights not in (None, "vggface2"):
        if not Path(config.weights).is_file():
            raise MissingError(f"{config.weights}: weights file not found (expected vggface2, "
                               f"none, or a legacy keras-vggface .h5 file)")
        from mfr.models.pretrained import check_senet50_file

        check_senet50_file(config.weights)
    if config.weights == "vggface2":
        from mfr.models.pretrained import WeightsDownloadError, vggface2_weights_file

        try:
            vggface2_weights_file(progress=progress)
        except WeightsDownloadError as e:
            raise MissingError(f"VGGFace2 SENet50 weights unavailable: {e}") from e


def _weights_desc(config: StudyConfig) -> tuple[str, str | None]:
    """A run's weights in words, and the warning random weights carry into every output."""
    if config.weights is None:
        return f"random init, seed {config.seed}", RANDOM_WEIGHTS_WARNING.format(seed=config.seed)
    return str(config.weights), None


def _weights_fingerprint(config: StudyConfig) -> str:
    """The initial weights as a fingerprint: the file's sha256, or the random init's seed."""
    if config.weights is None:
        return f"random init, seed {config.seed}"
    if config.weights == "vggface2":
        from mfr.models.pretrained import VGGFACE2, weights_cache_dir

        return f"vggface2 sha256:{file_digest(weights_cache_dir() / VGGFACE2['file'])}"
    return f"file sha256:{file_digest(config.weights)}"


def _settings(config: StudyConfig, names: Sequence[str]) -> dict[str, Any]:
    return {k: config.to_dict()[k] for k in names}


#: The config fields each step's results depend on (the rest: speed, storage, names).
EMBED_SETTINGS = ("image_size", "decoder", "preprocessing", "pooling")
TRAIN_SETTINGS = EMBED_SETTINGS + ("margin", "optimizer", "learning_rate", "momentum",
                                   "batch_size", "seed")


def _devices(config: StudyConfig) -> int:
    """The devices a step's forward and SGD steps run on: every device with
    ``data_parallel`` (JAX only: InputError otherwise, before any work), else 1. Recorded in
    run.json; not in the fingerprint (data parallelism does not change results)."""
    if not config.data_parallel:
        return 1
    from mfr.data_parallel import device_count, distribution

    return device_count(distribution())


def _require_complete(folder: Path, what: str) -> None:
    """An input folder written by mfr must hold a finished run (a hand-made one is taken as
    it is): a partition killed halfway is not read."""
    run = read_run(folder)
    if run is not None and run.get("status") == "running":
        raise InputError(f"{folder}: the {what} there did not finish (its run.json says "
                         f"status running); run it again")


def _nonempty(frames: dict[str, pd.DataFrame], pairs_dir: Path, splits: Sequence[str]) -> None:
    for s in splits:
        if len(frames[s]) == 0:
            raise InputError(f"{pairs_dir / f'{s}.csv'}: no pairs (expected at least one "
                             f"{s} pair)")


def _core(config: StudyConfig):
    """SENet50 with the config's weights, pooling and input size (random init: seeded)."""
    import keras

    from mfr.models import senet50

    keras.utils.set_random_seed(config.seed)  # weights=None: the same random core every time
    return senet50(weights=config.weights, pooling=config.pooling,
                   input_shape=(config.image_size, config.image_size, 3))


# --------------------------------------------------------------------------- data


@dataclass
class Sample:
    """A generated dataset and its partition (see :func:`prepare_sample`)."""

    data_root: Path
    pairs_dir: Path


def prepare_sample(out_dir: str | Path, config: StudyConfig | None = None,
                   n_subjects: int | None = None, image_size: int = 224) -> Sample:
    """A small synthetic RMFRD-layout tree (``out_dir/synthetic``) and its partition under
    `config` (``out_dir/partition``): offline data for the demo, the notebooks and the tests.

    Clearly drawn faces (:mod:`mfr.synthetic`), not photographs. Both are reused when present.
    """
    from mfr.synthetic import make_demo_tree

    cfg = config or StudyConfig()
    out = Path(out_dir)
    tree = out / "synthetic"
    if not (tree / "AFDB_face_dataset").is_dir():
        make_demo_tree(tree, n_subjects=n_subjects or cfg.sample_subjects,
                       image_size=image_size, seed=cfg.seed)
    pairs_dir = out / "partition"
    if not (pairs_dir / "run.json").is_file():
        partition_step(cfg.replace(data_root=str(tree)), pairs_dir)
    return Sample(tree, pairs_dir)


def partition_step(config: StudyConfig, out_dir: str | Path, verify: bool = True,
                   force: bool = False):
    """The config's partition of the tree at ``config.data_root``, written to `out_dir`
    (train/val/test.csv, stats.json, table_4_2.md, run.json; an MFR2 tree also gets
    ``mfr2_pairs.csv``, its own pairs.txt). Returns the :class:`mfr.partition.Partition`
    (with ``up_to_date`` True when `out_dir` already held it and nothing was written)."""
    from mfr.datasets import dataset_root
    from mfr.partition import partition, partition_fingerprint, write_partition

    if config.data_root is None:
        raise InputError("no data root: pass --data-root DIR (an RMFRD or MFR2 tree)")
    root, _ = dataset_root(config.data_root)
    params = {**_settings(config, ("protocol", "max_per_subject", "seed", "train_val_fraction",
                                   "val_size")), "verify": verify}
    fp = partition_fingerprint(root, params)
    state = claim(out_dir, "partition", fp, config=config, force=force)
    part = partition(root, protocol=config.protocol, max_per_subject=config.max_per_subject,
                     seed=config.seed, train_val_fraction=config.train_val_fraction,
                     val_size=config.val_size, verify=verify)
    part.up_to_date = state == "complete"
    if not part.up_to_date:
        write_partition(part, out_dir, config=config)
    return part


def _image_cache(data_root: Path, frames: dict[str, pd.DataFrame], cache_dir: Path,
                 config: StudyConfig, progress: bool) -> ImageCache:
    """One image cache for the union of the pair tables: the one in `cache_dir` when it was
    made the same way from the same, unchanged images (:func:`mfr.image_cache.reusable`, the
    one check), else built there from `data_root` (see :func:`_check_cache_source` first)."""
    paths = unique_pair_paths(*frames.values())
    cache = reusable(cache_dir, paths, config.image_size, data_root, config.decoder)
    if cache is not None:
        return cache
    return build_image_cache(data_root, paths, cache_dir, size=config.image_size,
                             progress=progress, decoder=config.decoder, config=config)


def _check_cache_source(data_root: Path, frames: dict[str, pd.DataFrame], cache_dir: Path,
                        config: StudyConfig) -> None:
    """Before any slow work: the image cache can be had (reused, or rebuilt from an existing
    data root); else MissingError saying what the cache lacks."""
    if data_root.is_dir():
        return
    paths = unique_pair_paths(*frames.values())
    if reusable(cache_dir, paths, config.image_size, None, config.decoder) is not None:
        return
    lacking = ""
    try:
        cache = ImageCache.open(cache_dir)
        absent = sorted(set(paths) - set(cache.paths) - cache.failed_paths)
        if absent:
            lacking = f" (it lacks {len(absent)} of their images, e.g. {absent[0]})"
    except (OSError, ValueError):
        pass
    raise MissingError(f"{cache_dir}: no image cache made from these pairs' images{lacking}, "
                       f"and the data root {data_root} to build it is not a folder (pass "
                       f"--data-root)")


# --------------------------------------------------------------------------- baseline


@dataclass
class EmbedRun:
    """What :func:`embed_step` made (all of it is also on disk under `out_dir`)."""

    out_dir: Path
    distances: pd.DataFrame  # a row per kept pair: split, paths, label, one column per metric
    summary: dict[str, Any]  # summary.json
    embeddings: Any  # mfr.embeddings.Embeddings
    cache: ImageCache
    dropped: pd.DataFrame  # pairs dropped because an image failed to decode

    def summary_table(self, split: str | None = None, metric: str = "sum_squared") -> pd.DataFrame:
        split = split or next(iter(self.summary["splits"]))
        label = f"this run ({split}, {self.summary['weights_desc']})"
        return report.summary_table(self.summary["splits"][split][metric], label=label)


def embed_step(
    config: StudyConfig,
    pairs_dir: str | Path,
    out_dir: str | Path,
    data_root: str | Path | None = None,
    split: str | Sequence[str] = "test",
    cache_dir: str | Path | None = None,
    model=None,
    progress: bool = True,
    force: bool = False,
) -> EmbedRun:
    """The baseline (Table 5.1, first row) for the pairs of a partition (`mfr embed`).

    pairs CSVs -> one image cache for the union of the partition's splits (each unique image
    decoded once; reused if present and unchanged) -> embeddings of the unique images of
    `split` (each embedded once) -> distances of every pair for each metric -> summary.

    Writes into `out_dir`: ``cache/`` (unless `cache_dir`), ``embeddings/`` (npy, index,
    run.json), ``distances.csv``, ``summary.json``, ``summary.md``, ``run.json``. When
    `out_dir` already holds this run, complete, it is read back, not computed again.

    Args:
        config: its weights (``None`` = random initialisation with
            ``keras.utils.set_random_seed(config.seed)``, for the offline demo only, flagged
            loudly in every output), preprocessing, embed_batch_size, image_size, pooling and
            decoder.
        data_root: the folder the pair paths are relative to (default:
            :func:`resolve_data_root`).
        split: ``"test"`` (default), ``"train"``, ``"val"``, ``"all"`` or a comma list.
        model: a ready model to use instead of building ``senet50(config.weights)``.
        force: replace whatever `out_dir` holds.
    """
    from mfr.embeddings import Embeddings, embed_images, load_embeddings, save_embeddings

    cfg = config
    devices = _devices(cfg)  # --data-parallel under TensorFlow: an error before any work
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    splits = parse_splits(split)
    _require_complete(pairs_dir, "partition")
    pairs = read_pair_csvs(pairs_dir, splits)  # bad input fails before slow work
    _nonempty(pairs, pairs_dir, splits)
    root = resolve_data_root(data_root, pairs_dir, cfg, cache_dir)
    if root is None:
        raise InputError(f"no data root: pass --data-root DIR ({pairs_dir / 'run.json'} "
                         f"records none)")
    if not root.is_dir():
        raise MissingError(f"{root}: data root is not a directory")
    if model is None:
        check_weights(cfg, progress)
    fp = {"settings": {**_settings(cfg, EMBED_SETTINGS), "splits": splits},
          "weights": "given model" if model is not None else _weights_fingerprint(cfg),
          "pairs": {f"{s}.csv": file_digest(pairs_dir / f"{s}.csv") for s in splits},
          "images": listing_digest(root, unique_pair_paths(*pairs.values()))}
    others = [s for s in SPLITS if s not in splits and (pairs_dir / f"{s}.csv").is_file()]
    all_pairs = {**pairs, **read_pair_csvs(pairs_dir, others)}
    if claim(out_dir, "embed", fp, config=cfg, force=force) == "complete":
        emb = load_embeddings(out_dir / "embeddings")
        return EmbedRun(out_dir, pd.read_csv(out_dir / "distances.csv"),
                        json.loads((out_dir / "summary.json").read_text(encoding="utf-8")),
                        emb, ImageCache.open(cache_dir), pd.DataFrame())

    cache = _image_cache(root, all_pairs, cache_dir, cfg, progress)
    if len(cache) == 0 or not any(p in cache for p in unique_pair_paths(*pairs.values())):
        raise InputError(f"{root}: none of the images of {pairs_dir} could be read under "
                         f"this data root (see {cache.cache_dir / 'failed.csv'}); is it the "
                         f"folder the pair paths are relative to?")
    kept, dropped = {}, []
    for s, df in pairs.items():
        kept[s], d = drop_failed_pairs(df, cache)
        if len(d):
            dropped.append(d.assign(split=s))
    dropped_df = pd.concat(dropped, ignore_index=True) if dropped else pd.DataFrame()
    if len(dropped_df):
        warnings.warn(f"dropped {len(dropped_df)} pairs whose image failed to decode "
                      f"(see {cache.cache_dir / 'failed.csv'})", stacklevel=2)

    weights_desc, warning = _weights_desc(cfg)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    if model is None:
        model = _core(cfg)
    paths = unique_pair_paths(*kept.values()) if any(len(k) for k in kept.values()) else []
    vectors = embed_images(model, cache.images, preprocessing=cfg.preprocessing,
                           batch_size=cfg.embed_batch_size, progress=progress,
                           rows=cache.index_of(paths), data_parallel=cfg.data_parallel)
    meta = {"weights_desc": weights_desc, "random_weights": cfg.weights is None,
            "preprocessing": cfg.preprocessing, "decoder": cfg.decoder, "splits": splits,
            "warning": warning}
    save_embeddings(out_dir / "embeddings", vectors, paths, meta=meta, config=cfg)
    emb = Embeddings(vectors, paths, meta)

    frames, summaries = [], {}
    for s, df in kept.items():
        idx = pair_indices(df, emb)
        frame, summaries[s] = distance_table(s, df, emb.vectors, idx.u_idx, idx.m_idx, idx.labels)
        frames.append(frame)
    distances = pd.concat(frames, ignore_index=True)
    write_csv(out_dir / "distances.csv", distances, float_format=DISTANCE_FLOAT_FORMAT)

    summary = {
        "weights": cfg.weights,
        "weights_desc": weights_desc,
        "random_weights": cfg.weights is None,
        "warning": warning,
        "preprocessing": cfg.preprocessing,
        "decoder": cfg.decoder,
        "metric_thesis": "sum_squared",
        "splits": summaries,
        "thesis_table_5_1_pretrained": report.thesis_row("pre-trained"),
        "n_images_embedded": len(paths),
        "n_images_failed": len(cache.failed),
        "n_pairs_dropped": len(dropped_df),
    }
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "summary.md", report.baseline_markdown(summary))
    complete(out_dir, "embed", fp, config=cfg,
             outputs=["distances.csv", "summary.json", "summary.md", "embeddings"],
             data_root=str(root.resolve()), pairs_dir=str(pairs_dir.resolve()), splits=splits,
             cache_dir=str(cache.cache_dir), weights_desc=weights_desc,
             random_weights=cfg.weights is None, warning=warning, decoder=cfg.decoder,
             n_images_embedded=len(paths), n_images_failed=len(cache.failed),
             n_pairs_dropped=len(dropped_df), failed_images=cache.failed.to_dict("records"),
             data_parallel=cfg.data_parallel, devices=devices)
    return EmbedRun(out_dir, distances, summary, emb, cache, dropped_df)


# --------------------------------------------------------------------------- fine-tuning


def _fine_tuned_distances(config: StudyConfig, n: int, result, kept: dict[str, pd.DataFrame],
                          cache: ImageCache, out: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Save the fine-tuned embeddings of the val + test images (``out/embeddings``, as `mfr
    embed`'s) and return the val and test pairs' distance table and summaries."""
    from mfr.embeddings import Embeddings, save_embeddings

    if result.embeddings is None:  # no val and no test pairs
        return pd.DataFrame(columns=["split", *kept["test"].columns]), {}
    paths = [cache.paths[r] for r in result.embedding_rows]
    weights_desc, warning = _weights_desc(config)
    meta = {"weights_desc": weights_desc, "random_weights": config.weights is None,
            "preprocessing": config.preprocessing, "decoder": config.decoder,
            "splits": ["val", "test"], "trainable_layers": n, "warning": warning}
    save_embeddings(out / "embeddings", result.embeddings, paths, meta=meta, config=config)
    emb = Embeddings(result.embeddings, paths, meta)
    frames, summaries = [], {}
    for s in ("val", "test"):
        if len(kept[s]):
            pi = pair_indices(kept[s], emb)
            frame, summaries[s] = distance_table(s, kept[s], emb.vectors, pi.u_idx, pi.m_idx,
                                                 pi.labels)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True), summaries


def default_train_dir(config: StudyConfig, n: int) -> Path:
    return Path("results") / config.profile / f"train_N{n}"


def train_step(
    config: StudyConfig,
    n: int,
    pairs_dir: str | Path,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    resume: bool = False,
    verbose: int = 0,
    progress: bool = True,
    force: bool = False,
):
    """Fine-tune the last `n` layers on a partition's pairs (`mfr train`, one N).

    The image cache (`cache_dir`, default ``pairs_dir/cache``) is reused when it was made from
    these pairs' unchanged images, else built from the data root (:func:`resolve_data_root`).
    Every check on the input (N, the CSVs, the weights, the output folder) comes before the
    model is built. A folder holding this run complete is read back, not trained again; with
    more ``epochs`` and `resume` it is continued from its last checkpoint.

    Writes into `out_dir` (default ``results/<profile>/train_N<n>``): ``history.csv``,
    ``checkpoints/``, ``final_trainable.h5`` (:func:`mfr.training.train_siamese`),
    ``embeddings/`` (the fine-tuned embeddings of the val and test images, as `mfr embed`'s),
    ``distances.csv`` and ``summary.json`` of the val and test pairs under the fine-tuned
    model, ``run.json``. Returns the :class:`mfr.training.TrainResult`.
    """
    from mfr import checkpoints, siamese
    from mfr.training import TrainResult, train_siamese

    n = siamese.validate_trainable_layers(n)
    _devices(config)  # --data-parallel under TensorFlow: an error before any work
    pairs_dir = Path(pairs_dir)
    _require_complete(pairs_dir, "partition")
    frames = read_pair_csvs(pairs_dir)
    _nonempty(frames, pairs_dir, ("train", "test"))
    if len(frames["val"]) == 0:
        warnings.warn(f"{pairs_dir / 'val.csv'}: no validation pairs; history.csv will have "
                      f"no val_loss", stacklevel=2)
    out = Path(out_dir) if out_dir is not None else default_train_dir(config, n)
    check_weights(config, progress)
    cache_dir = Path(cache_dir) if cache_dir is not None else pairs_dir / "cache"
    root = resolve_data_root(data_root, pairs_dir, config, cache_dir)
    if root is None:
        raise MissingError(f"{cache_dir}: no image cache, and no data root to build it "
                           f"(pass --cache-dir or --data-root)")
    fp = {"settings": {**_settings(config, TRAIN_SETTINGS), "trainable_layers": n},
          "weights": _weights_fingerprint(config),
          "pairs": {f"{s}.csv": file_digest(pairs_dir / f"{s}.csv") for s in SPLITS},
          "images": listing_digest(root, unique_pair_paths(*frames.values()))}
    run = read_run(out) or {}
    done = run.get("epochs_trained", 0)
    reopen = False
    if state(out, "train", fp) == "complete" and not force and config.epochs != done:
        if config.epochs < done:
            raise InputError(f"{out}: trained for {done} epochs already; epochs {config.epochs} "
                             f"asks for fewer (choose another output folder, or --force)")
        if not resume:
            raise InputError(f"{out}: complete at {done} epochs; to train on to "
                             f"{config.epochs}, add --resume")
        reopen = True
    _check_cache_source(root, frames, cache_dir, config)
    claimed = claim(out, "train", fp, config=config, force=force, reopen=reopen)
    if claimed == "complete":
        return TrainResult(pd.read_csv(out / "history.csv"), run["trainable_layer_names"],
                           run["trainable_params"], run["path"], engine=run["engine"],
                           resumed_from=len(pd.read_csv(out / "history.csv")), out_dir=out)
    if checkpoints.latest_checkpoint(out) is not None and not resume:
        raise InputError(f"{out}: holds checkpoints of an earlier run; resume it (--resume) or "
                         f"choose another output directory")
    cache = _image_cache(root, frames, cache_dir, config, progress)
    kept = {s: drop_failed_pairs(df, cache)[0] for s, df in frames.items()}
    n_dropped = sum(len(frames[s]) - len(kept[s]) for s in frames)
    if n_dropped:
        warnings.warn(f"dropped {n_dropped} pairs whose image failed to decode "
                      f"(see {cache.cache_dir / 'failed.csv'})", stacklevel=2)
    for s in ("train", "test"):
        if len(kept[s]) == 0:
            raise InputError(f"{pairs_dir / f'{s}.csv'}: no pair left: every one has an image "
                             f"that failed to decode (see {cache.cache_dir / 'failed.csv'})")
    idx = {s: pair_indices(df, cache) for s, df in kept.items()}

    result = train_siamese(_core(config), n, cache.images, idx["train"], idx["val"], idx["test"],
                           config=config, out_dir=out, resume=resume, verbose=verbose,
                           progress=progress, fingerprint=fp)
    dist, metrics = _fine_tuned_distances(config, n, result, kept, cache, out)
    write_csv(out / "distances.csv", dist, float_format=DISTANCE_FLOAT_FORMAT)
    # Same layout as `mfr embed`'s summary.json: splits -> split -> metric -> statistics.
    weights_desc, _ = _weights_desc(config)
    write_json(out / "summary.json", {"trainable_layers": n, "metric_thesis": "sum_squared",
                                      "random_weights": config.weights is None,
                                      "weights_desc": weights_desc, "splits": metrics})
    complete(out, "train", fp, config=config,
             outputs=["history.csv", "final_trainable.h5", "distances.csv", "summary.json",
                      "embeddings"],
             trainable_layers=n, trainable_layer_names=result.trainable_layers,
             trainable_params=result.trainable_params, path=result.path,
             epochs_trained=len(result.history), resumed_from_epoch=result.resumed_from,
             engine=result.engine, data_parallel=config.data_parallel, devices=result.devices,
             pairs_dir=str(pairs_dir), cache_dir=str(cache.cache_dir),
             final_weights="final_trainable.h5 (trained layers only, keras-vggface legacy HDF5)",
             epoch_order="np.random.default_rng([seed, epoch]).permutation(n_train)")
    return result


# --------------------------------------------------------------------------- Grad-CAM (issue 10)


def gradcam_step(out_dir: str | Path, study_dir: str | Path | None = None,
                 model_dir: str | Path | None = None, config: StudyConfig | None = None,
                 pairs_dir: str | Path | None = None, force: bool = False, **options: Any):
    """Grad-CAM maps, attention shares above the mask line and the deletion test (`mfr
    gradcam`, notebook 05) for one of: every setting of a study folder (`study_dir`: its
    ``baseline/`` and ``train_N<N>/``), one run folder (`model_dir`), or the bare core of
    `config` (its weights; ``None`` = seeded random init). `pairs_dir` defaults to
    ``study_dir/partition`` or the run's recorded pairs folder. `options` go to
    :func:`mfr.gradcam_study.run_gradcam` (n_images, seed, data_root, deletion_fraction,
    random_draws, n_boot, layer, progress). Returns its :class:`~mfr.gradcam_study.GradcamRun`.

    The fingerprint is the explained models' own run fingerprints and trained weights, the test
    pairs and the options; maps are always computed when called (the study runner skips a
    complete, unchanged folder without calling this).
    """
    from mfr import gradcam_study as gs
    from mfr.gradcam import require_tensorflow

    if sum(x is not None for x in (study_dir, model_dir, config)) != 1:
        raise InputError("give exactly one of a study folder, a run folder or a config")
    require_tensorflow()  # before any slow work
    if study_dir is not None:
        settings = gs.find_settings(study_dir)
        pairs_dir = pairs_dir or Path(study_dir) / "partition"
    elif model_dir is not None:
        settings = [gs.read_setting(model_dir)]
        pairs_dir = pairs_dir or (read_run(model_dir) or {}).get("pairs_dir")
    else:
        settings = [gs.Setting("core", gs.setting_label(config.weights), config)]
    if pairs_dir is None:
        raise InputError("no pairs folder: pass --pairs DIR (the output folder of "
                         "`mfr partition`)")
    pairs_dir = Path(pairs_dir)
    _require_complete(pairs_dir, "partition")
    for s in settings:  # the weights can be had, before any slow work
        check_weights(s.config, options.get("progress", True))
        if s.run_dir is not None:
            _require_complete(Path(s.run_dir), "run")
    if options.get("seed") is None:
        options["seed"] = settings[0].config.seed
    options["data_root"] = resolve_data_root(options.get("data_root"), pairs_dir,
                                             settings[0].config)
    models = []
    for s in settings:
        run = read_run(s.run_dir) if s.run_dir is not None else None
        models.append({"name": s.name, "run": run.get("fingerprint") if run else None,
                       "trained": (run or {}).get("outputs", {}).get("final_trainable.h5"),
                       "weights": None if run else _weights_fingerprint(s.config)})
    fp = {"models": models, "pairs": file_digest(pairs_dir / "test.csv"),
          "options": {k: v for k, v in sorted(options.items())
                      if k not in ("progress", "data_root")}}
    claim(out_dir, "gradcam", fp, config=settings[0].config, force=force, reopen=True)
    result = gs.run_gradcam(settings, pairs_dir, out_dir, **options)
    complete(out_dir, "gradcam", fp, config=settings[0].config,
             outputs=["attention.csv", "deletion.csv", "attention_summary.csv",
                      "attention_summary.md", *(p.name for p in result.figures)],
             **result.record)
    return result


# --------------------------------------------------------------------------- evaluation


def _save_figures(figs: dict[str, Any], out: Path) -> list[str]:
    import matplotlib.pyplot as plt

    written = []
    for stem, fig in figs.items():
        written += [p.name for p in report.save_figure(fig, out / stem)]
        plt.close(fig)
    return written


def evaluate_step(study_dir: str | Path, out_dir: str | Path | None = None,
                  config: StudyConfig | None = None, progress: bool = True, force: bool = False):
    """Chapter 5 for a study folder (`mfr evaluate --study DIR`), from its stored distances
    and embeddings (no forward pass).

    Reads ``DIR/partition``, the baseline (`mfr embed` run folder) and every ``mfr train``
    run folder (found by their run.json, :func:`mfr.evaluation.discover_study`); lists what is
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
        The :class:`mfr.evaluation.StudyEvaluation`.
    """
    from mfr import evaluation as E

    cfg = config or StudyConfig()
    study = E.discover_study(study_dir)
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
    ev = E.evaluate_study(study, cfg.threshold_rule, cfg.bootstrap_resamples, cfg.seed,
                          progress=progress)
    write_json(out / "metrics.json", ev.metrics)
    write_json(out / "thresholds.json", ev.thresholds)
    md = ["# Evaluation of " + str(study.root), ""]
    for name, table in ev.tables.items():
        write_csv(out / f"{name}.csv", table, float_format="%.6f")
        text = (table.to_markdown(index=False, floatfmt=".6f") + "\n" if name == "table_5_1"
                else E.table_markdown(table, name))
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
    figures = _save_figures(E.study_figures(ev), out)
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
    run = read_run(out) or {}
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
        run = read_run(d)
        if run is not None and run.get("command") in ("partition", "embed", "train"):
            runs[d.name] = {"fingerprint": run.get("fingerprint"),
                            "status": run.get("status"), "outputs": run.get("outputs")}
    return {"settings": _settings(config, EVALUATE_SETTINGS), "runs": runs}


@dataclass
class DatasetEvaluation:
    """What :func:`evaluate_dataset_step` made (also on disk under `out_dir`)."""

    out_dir: Path
    metrics: dict[str, Any]  # metrics.json
    distances: pd.DataFrame  # a row per pair: split (the pair set), paths, label, distances
    embeddings: Any  # mfr.embeddings.Embeddings


LAYOUTS = ("mfr2", "rmfrd")


def _dataset_images(config: StudyConfig, data_root: Path, layout: str):
    """(dataset, unmasked, masked): the tree's images, each side a frame of path, subject
    (at most ``config.max_per_subject`` per subject and side, as the partition picks them)."""
    from mfr.datasets import load_mfr2, load_rmfrd
    from mfr.partition import select_images

    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    ds = load_mfr2(data_root) if layout == "mfr2" else load_rmfrd(data_root, config.protocol)
    unmasked, masked, _, _ = select_images(ds, config.max_per_subject, verify=False)

    def frame(side):
        rows = [(im.path, im.subject) for s in ds.subjects for im in side[s]]
        return pd.DataFrame(rows, columns=["path", "subject"]).sort_values("path").reset_index(
            drop=True)
    return ds, frame(unmasked), frame(masked)


def evaluate_dataset_step(
    config: StudyConfig,
    data_root: str | Path,
    layout: str,
    out_dir: str | Path,
    embedder: str = "senet50",
    run_dir: str | Path | None = None,
    progress: bool = True,
    **embedder_options: Any,
) -> DatasetEvaluation:
    """A dataset evaluated directly, without a study (`mfr evaluate --data-root DIR --layout
    mfr2|rmfrd --embedder senet50|dlib`).

    Pair sets: ``mfr2_pairs`` (MFR2's own pairs.txt, its masked-vs-unmasked pairs:
    :func:`mfr.datasets.mfr2_pairs`; MFR2 layout only), ``masked_vs_unmasked`` (every
    unmasked x masked image pair; at most ``config.max_per_subject`` images per subject and
    side) and, for MFR2, ``mfr2_pairs_all`` (every pair of pairs.txt, masked-masked and
    unmasked-unmasked ones included). Each unique image is decoded once into an image cache of the embedder's size and
    embedded once; pairs of images that failed to load are dropped and counted.

    Writes into `out_dir`: ``cache/``, ``embeddings/``, ``distances.csv``, ``metrics.json``
    (one entry per pair set with ``auc``, ``eer``, ``fnmr_at_fmr_1pct``, ``fnmr_at_fmr_0_1pct``,
    ``gmean``, ``imean``, ``median_genuine``, ``median_impostor``, ``n_genuine``,
    ``n_impostor``, ... for the embedder's own distance (``default_distance``: sum_squared
    for senet50, euclidean_raw for dlib), ``ci`` (95% subject bootstrap),
    ``by_distance`` (sum_squared, cosine, l1, and for dlib ``euclidean_raw``: Euclidean on the
    unnormalised descriptors, face_recognition's own distance), ``accuracy_cv``; plus
    ``identification``, ``embedder``, ``dataset``),
    ``metrics.md``, ``thresholds.json``, ROC / DET / CMC figures, ``run.json``.

    Args:
        config: seed, bootstrap_resamples, max_per_subject, protocol (RMFRD file patterns),
            decoder; for senet50 also weights, preprocessing, pooling, image_size,
            embed_batch_size.
        embedder: a name in :data:`mfr.embedders.EMBEDDERS`.
        run_dir: senet50 only: a `mfr train` run folder (its fine-tuned network).
        embedder_options: passed on to the embedder (e.g. dlib's ``landmarks``).
    """
    from mfr import evaluation as E
    from mfr.datasets import mfr2_pairs
    from mfr.distances import all_pair_distances, pair_distances
    from mfr.embedders import get_embedder
    from mfr.embeddings import Embeddings, save_embeddings

    cfg = config
    out = Path(out_dir)
    root = Path(data_root)
    ds, unmasked, masked = _dataset_images(cfg, root, layout)
    fp = {"data_root": str(ds.root.resolve()), "data": listing_digest(ds.root),
          "layout": layout, "embedder": embedder, "options": {k: str(v) for k, v in
                                                              sorted(embedder_options.items())},
          "run": (read_run(run_dir) or {}).get("fingerprint") if run_dir else None,
          "settings": _settings(cfg, ("bootstrap_resamples", "seed", "max_per_subject",
                                      "protocol", "decoder", "weights", "preprocessing",
                                      "pooling", "image_size"))}
    pair_sets: dict[str, pd.DataFrame] = {}
    if layout == "mfr2":
        pair_sets["mfr2_pairs"] = mfr2_pairs(ds.root)
    pair_sets["masked_vs_unmasked"] = E.masked_vs_unmasked_pairs(unmasked, masked)
    if layout == "mfr2":
        pair_sets["mfr2_pairs_all"] = mfr2_pairs(ds.root, mixed="keep")
    if embedder == "senet50":
        embedder_options = {"weights": cfg.weights, "preprocessing": cfg.preprocessing,
                            "pooling": cfg.pooling, "image_size": cfg.image_size,
                            "batch_size": cfg.embed_batch_size, "seed": cfg.seed,
                            "run_dir": run_dir, **embedder_options}
        if run_dir is None:
            check_weights(cfg, progress)
    elif run_dir is not None:
        raise InputError(f"--run-dir is a senet50 option (a `mfr train` run), not {embedder}'s")
    emb_model = get_embedder(embedder, **embedder_options)  # bad options fail before slow work
    claim(out, "evaluate", fp, config=cfg, reopen=True)
    paths = sorted(set(unmasked["path"]) | set(masked["path"])
                   | set(unique_pair_paths(*pair_sets.values())))
    cache = build_image_cache(ds.root, paths, out / "cache", size=emb_model.image_size,
                              progress=progress, decoder=cfg.decoder, config=cfg)
    vectors = emb_model.embed(cache.images, progress=progress)
    desc = emb_model.describe()
    if desc.get("random_init"):
        print(f"WARNING: {RANDOM_WEIGHTS_WARNING.format(seed=cfg.seed)}", file=sys.stderr)
    flags = {k: [cache.paths[i] for i in np.flatnonzero(v)] for k, v in emb_model.flags.items()}
    failed = sorted(set(cache.failed["path"]) | set(flags.get("failed", [])))
    save_embeddings(out / "embeddings", vectors, cache.paths, config=cfg,
                    meta={"embedder": desc, "flags": flags})
    dist_names = list(E.EVAL_DISTANCES)
    raw = None
    if emb_model.norms is not None:  # the model's own distance: Euclidean on raw vectors
        raw = vectors.astype(np.float64) * emb_model.norms[:, None]
        dist_names.append(E.RAW_EUCLIDEAN)
    emb = Embeddings(vectors, cache.paths, {"embedder": desc})
    emb.failed_paths = frozenset(failed)

    frames, entries, notes = [], {}, []
    for name, df in pair_sets.items():
        kept, dropped = drop_failed_pairs(df, emb)
        if len(dropped):
            notes.append(f"{name}: {len(dropped)} of {len(df)} pairs dropped: an image failed "
                         f"to load or embed (see images_failed)")
        idx = pair_indices(kept, emb)
        dists = all_pair_distances(emb.vectors, idx.u_idx, idx.m_idx, E.EVAL_DISTANCES)
        if raw is not None:
            dists[E.RAW_EUCLIDEAN] = pair_distances(raw, idx.u_idx, idx.m_idx, "l2")
        frame = pd.DataFrame({"split": name, **{c: kept[c].to_numpy() for c in kept.columns},
                              **dists})
        frames.append(frame)
        entries[name] = E.pair_set_entry(frame, dist_names, cfg.bootstrap_resamples, cfg.seed,
                                         default=emb_model.default_distance)
        entries[name]["n_pairs_dropped"] = int(len(dropped))
        if entries[name]["null_reason"]:
            warnings.warn(f"{name}: {entries[name]['null_reason']}", stacklevel=2)
    if "mfr2_pairs" in entries:
        entries["mfr2_pairs"]["pairs_txt_kinds"] = pair_sets["mfr2_pairs"].attrs.get("kinds")
        entries["mfr2_pairs"]["pairs_txt_left_out"] = (
            "pairs.txt's masked-masked and unmasked-unmasked pairs (not masked vs unmasked); "
            "mfr2_pairs_all has every pair of pairs.txt")
        entries["mfr2_pairs_all"]["pairs_txt_kinds"] = entries["mfr2_pairs"]["pairs_txt_kinds"]
    ok_u = unmasked[~unmasked["path"].isin(failed)]
    ok_m = masked[~masked["path"].isin(failed)]
    identification = E.identification_metrics(emb, ok_m, ok_u, E.EVAL_DISTANCES,
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
        dist_names else E.DEFAULT_DISTANCE,
        "embedder": desc,
        "dataset": {"root": str(ds.root), "layout": layout, "n_subjects": len(ds.subjects),
                    "n_unmasked_images": len(unmasked), "n_masked_images": len(masked),
                    "max_per_subject": cfg.max_per_subject},
        "bootstrap": {"unit": "subject", "n_resamples": cfg.bootstrap_resamples,
                      "seed": cfg.seed, "confidence": 0.95, "method": "percentile",
                      "definition": E.BOOTSTRAP_DEFINITION},
        "images_failed": failed,
        "no_face_detected": flags.get("no_face_detected", []),
        "notes": notes,
    }
    distances = pd.concat(frames, ignore_index=True)
    write_csv(out / "distances.csv", distances, float_format=DISTANCE_FLOAT_FORMAT)
    write_json(out / "metrics.json", metrics)
    write_text(out / "metrics.md", E.dataset_markdown(metrics, list(entries)))
    write_json(out / "thresholds.json", {
        "rule": "eer", "accept": "distance <= threshold", "embedder": desc,
        "chosen_on": "each pair set itself (in-sample: a dataset has no validation split)",
        "pair_sets": {name: {d: e["by_distance"][d]["eer_threshold"] for d in dist_names}
                      for name, e in entries.items()}})
    figures = _save_figures(E.pair_set_figures(distances, list(entries), identification,
                                               title=f"{desc['name']} on {layout}"
                                               + E.init_note([bool(desc.get("random_init"))])),
                          out)
    complete(out, "evaluate", fp, config=cfg,
             outputs=["distances.csv", "metrics.json", "metrics.md", "thresholds.json",
                      "embeddings", *figures],
             data_root=str(ds.root.resolve()), layout=layout, embedder=desc,
             pair_sets=list(entries), figures=figures, n_images=len(cache.paths),
             n_images_failed=len(failed))
    return DatasetEvaluation(out, metrics, distances, emb)


# --------------------------------------------------------------------------- verification (issue 10)


def verify_embedder(embedder: str = "senet50", model: str | Path | None = None,
                    weights: str | None = "vggface2", preprocessing: str | None = None,
                    seed: int = 2021, progress: bool = True):
    """The embedder `mfr verify` and notebook 06 compare with: ``senet50`` from a run folder
    (`model`: an `mfr embed` or `mfr train` run, its network as the run left it) or from
    `weights` (vggface2, a .h5 path, None = seeded random init) with `preprocessing`; or
    ``dlib``. The weights are made sure of (found or downloaded) before any slow work."""
    from mfr.embedders import get_embedder

    if embedder != "senet50":
        if model is not None:
            raise InputError(f"--model is a senet50 option (an `mfr embed` or `mfr train` run "
                             f"folder), not {embedder}'s")
        return get_embedder(embedder)
    if model is not None:
        _require_complete(Path(model), "run")
        emb = get_embedder("senet50", run_dir=model)
    else:
        emb = get_embedder("senet50", weights=weights, preprocessing=preprocessing or "thesis",
                           seed=seed)
    try:
        check_weights(StudyConfig(weights=emb.weights), progress)
    except MissingError as e:
        raise MissingError(f"{e}; or verify with --embedder dlib, which needs no VGGFace2 "
                           f"weights") from None
    return emb


def verify_step(image_a: str | Path, image_b: str | Path, embedder: str = "senet50",
                model: str | Path | None = None, weights: str | None = "vggface2",
                preprocessing: str | None = None, seed: int = 2021,
                threshold: float | str | Path | None = None, detect: bool = True,
                progress: bool = True):
    """Are two photos of the same person (`mfr verify IMG_A IMG_B`)? The faces found and cropped
    (MTCNN; `detect` False: the whole images), embedded with :func:`verify_embedder`'s model,
    compared with its own distance and decided at `threshold` (a number, a thresholds.json,
    or None: the model's study calibration, dlib's documented tolerance, else no decision).
    Reads run folders, writes nothing. Returns a :class:`mfr.verify.Verification`."""
    from mfr.thresholds import parse_threshold
    from mfr.verify import read_photo, verify_pair

    spec = parse_threshold(threshold) if isinstance(threshold, str) else threshold
    for image in (image_a, image_b):  # a wrong path fails before any model is loaded
        read_photo(image)
    emb = verify_embedder(embedder, model, weights, preprocessing, seed, progress)
    return verify_pair(image_a, image_b, emb, spec, detect)


def verify_pairs_step(pairs_csv: str | Path, out_dir: str | Path, embedder: str = "dlib",
                      model: str | Path | None = None, weights: str | None = "vggface2",
                      preprocessing: str | None = None, seed: int = 2021,
                      threshold: float | str | Path | None = None, detect: bool = True,
                      title: str | None = None, force: bool = False, progress: bool = True):
    """Table 5.2 for a CSV of photo pairs (notebook 06): each pair's distance and decision as
    :func:`verify_step` makes them, each unique image prepared and embedded once.

    Writes into `out_dir`: ``table_5_2.csv`` (a row per pair: paths, label, distance, threshold,
    decision, correct, note), ``table_5_2.md`` (with the model, distance, threshold source and
    the thesis's Table 5.2 for reference), ``table_5_2.png`` (the faces side by side),
    ``run.json``. Returns the :class:`mfr.verify_pairs.PairsVerification`.
    """
    from mfr.outputs import atomic_path
    from mfr.thresholds import parse_threshold
    from mfr.verify import CROP_SCALE
    from mfr.verify_figures import pairs_figure
    from mfr.verify_pairs import pairs_markdown, read_pairs_csv, verify_pairs

    csv = Path(pairs_csv)
    pairs = read_pairs_csv(csv)
    spec = parse_threshold(threshold) if isinstance(threshold, str) else threshold
    emb = verify_embedder(embedder, model, weights, preprocessing, seed, progress)
    images = sorted(set(pairs["image_a"]) | set(pairs["image_b"]))
    run = read_run(model) if model is not None else None
    fp = {"pairs": file_digest(csv), "images": listing_digest(Path.cwd(), images),
          "embedder": embedder, "detect": detect, "crop_scale": CROP_SCALE,
          "model": {"run": (run or {}).get("fingerprint"),
                    "trained": (run or {}).get("outputs", {}).get("final_trainable.h5")}
          if model is not None else None,
          "weights": _weights_fingerprint(StudyConfig(weights=emb.weights))
          if embedder == "senet50" else None,
          "preprocessing": getattr(emb, "preprocessing", None),
          "threshold": (f"file sha256:{file_digest(spec)}" if isinstance(spec, Path)
                        and spec.is_file() else spec)}
    out = Path(out_dir)
    claim(out, "verify", fp, force=force, reopen=True)
    result = verify_pairs(pairs, emb, spec, detect)
    write_csv(out / "table_5_2.csv", result.table, float_format="%.6f")
    write_text(out / "table_5_2.md", pairs_markdown(result, relative_to=csv.parent.resolve()))
    fig = pairs_figure(result, title or f"Verified pairs: {csv.name}")
    with atomic_path(out / "table_5_2.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    complete(out, "verify", fp, outputs=["table_5_2.csv", "table_5_2.md", "table_5_2.png"],
             pairs_csv=str(csv.resolve()), embedder=result.embedder,
             threshold={"value": result.threshold.value, "source": result.threshold.source},
             distance=result.distance_name, preprocessing=result.preprocessing,
             n_pairs=len(result.table),
             n_pairs_without_distance=int(result.table["distance"].isna().sum()))
    return result
