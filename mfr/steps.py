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
                                                               layers, distances, summary
==================  =========================================  ===============================

Below this layer everything is arrays in, arrays out: :mod:`mfr.partition` (pairs),
:mod:`mfr.image_cache`, :mod:`mfr.embeddings`, :mod:`mfr.distances`, :mod:`mfr.training`.

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
    "EmbedRun",
    "Sample",
    "check_weights",
    "embed_step",
    "partition_step",
    "prepare_sample",
    "resolve_data_root",
    "train_step",
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


def prepare_sample(out_dir: str | Path, config: StudyConfig | None = None, n_subjects: int = 12,
                   image_size: int = 224) -> Sample:
    """A small synthetic RMFRD-layout tree (``out_dir/synthetic``) and its partition under
    `config` (``out_dir/partition``): offline data for the demo, the notebooks and the tests.

    Clearly drawn faces (:mod:`mfr.synthetic`), not photographs. Both are reused when present.
    """
    from mfr.synthetic import make_demo_tree

    cfg = config or StudyConfig()
    out = Path(out_dir)
    tree = out / "synthetic"
    if not (tree / "AFDB_face_dataset").is_dir():
        make_demo_tree(tree, n_subjects=n_subjects, image_size=image_size, seed=cfg.seed)
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
                           rows=cache.index_of(paths))
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
             n_pairs_dropped=len(dropped_df), failed_images=cache.failed.to_dict("records"))
    return EmbedRun(out_dir, distances, summary, emb, cache, dropped_df)


# --------------------------------------------------------------------------- fine-tuning


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
    ``distances.csv`` and ``summary.json`` of the test pairs under the fine-tuned model,
    ``run.json``. Returns the :class:`mfr.training.TrainResult`.
    """
    from mfr import checkpoints, siamese
    from mfr.training import TrainResult, train_siamese

    n = siamese.validate_trainable_layers(n)
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
    test_df, nt = kept["test"], len(kept["test"])
    dist, metrics = distance_table("test", test_df, result.test_embeddings,
                                   result.test_pair_rows[:nt], result.test_pair_rows[nt:],
                                   idx["test"].labels)
    write_csv(out / "distances.csv", dist, float_format=DISTANCE_FLOAT_FORMAT)
    # Same layout as `mfr embed`'s summary.json: splits -> split -> metric -> statistics.
    write_json(out / "summary.json", {"trainable_layers": n, "metric_thesis": "sum_squared",
                                      "splits": {"test": metrics}})
    complete(out, "train", fp, config=config,
             outputs=["history.csv", "final_trainable.h5", "distances.csv", "summary.json"],
             trainable_layers=n, trainable_layer_names=result.trainable_layers,
             trainable_params=result.trainable_params, path=result.path,
             epochs_trained=len(result.history), resumed_from_epoch=result.resumed_from,
             engine=result.engine, pairs_dir=str(pairs_dir), cache_dir=str(cache.cache_dir),
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
