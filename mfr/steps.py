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
from mfr.image_cache import ImageCache, build_image_cache
from mfr.outputs import run_metadata, write_csv, write_json, write_text
from mfr.pairs import (
    SPLITS,
    drop_failed_pairs,
    pair_indices,
    parse_splits,
    read_pair_csvs,
    unique_pair_paths,
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


def resolve_data_root(data_root: str | Path | None, pairs_dir: Path,
                      config: StudyConfig) -> Path | None:
    """`data_root` if given, else the data root that `mfr partition` recorded in the pairs
    folder's run.json, else the config's; None when none is known."""
    if data_root is not None:
        return Path(data_root)
    run = Path(pairs_dir) / "run.json"
    if run.is_file():
        root = json.loads(run.read_text(encoding="utf-8")).get("data_root")
        if root:
            return Path(root)
    return Path(config.data_root) if config.data_root else None


def check_weights(config: StudyConfig, progress: bool = True) -> None:
    """Make sure the config's weights can be had before any slow work: a file that exists, or
    the VGGFace2 file found or downloaded. FileNotFoundError says what is missing."""
    if config.weights not in (None, "vggface2") and not Path(config.weights).is_file():
        raise FileNotFoundError(f"{config.weights}: weights file not found (expected vggface2, "
                                f"none, or a legacy keras-vggface .h5 file)")
    if config.weights == "vggface2":
        from mfr.models.pretrained import WeightsDownloadError, get_weights_file

        try:
            get_weights_file(progress=progress)
        except WeightsDownloadError as e:
            raise FileNotFoundError(f"VGGFace2 SENet50 weights unavailable: {e}") from e


def _weights_desc(config: StudyConfig) -> tuple[str, str | None]:
    """A run's weights in words, and the warning random weights carry into every output."""
    if config.weights is None:
        return f"random init, seed {config.seed}", RANDOM_WEIGHTS_WARNING.format(seed=config.seed)
    return str(config.weights), None


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


def partition_step(config: StudyConfig, out_dir: str | Path, verify: bool = True):
    """The config's partition of the tree at ``config.data_root``, written to `out_dir`
    (train/val/test.csv, stats.json, table_4_2.md, run.json; an MFR2 tree also gets
    ``mfr2_pairs.csv``, its own pairs.txt). Returns the :class:`mfr.partition.Partition`."""
    from mfr.partition import partition, write_partition

    if config.data_root is None:
        raise ValueError("no data root: pass --data-root DIR (an RMFRD or MFR2 tree)")
    part = partition(config.data_root, protocol=config.protocol,
                     max_per_subject=config.max_per_subject, seed=config.seed,
                     train_val_fraction=config.train_val_fraction, val_size=config.val_size,
                     verify=verify)
    write_partition(part, out_dir, config=config)
    return part


def _partition_cache(data_root: Path, frames: dict[str, pd.DataFrame], cache_dir: Path,
                     config: StudyConfig, progress: bool) -> ImageCache:
    """One image cache for the union of the pair tables (reused when it covers them)."""
    return build_image_cache(data_root, unique_pair_paths(*frames.values()), cache_dir,
                             size=config.image_size, progress=progress, decoder=config.decoder,
                             config=config)


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
) -> EmbedRun:
    """The baseline (Table 5.1, first row) for the pairs of a partition (`mfr embed`).

    pairs CSVs -> one image cache for the union of the partition's splits (each unique image
    decoded once; reused if present) -> embeddings of the unique images of `split` (each
    embedded once) -> distances of every pair for each metric -> summary.

    Writes into `out_dir`: ``cache/`` (unless `cache_dir`), ``embeddings/`` (npy, index,
    run.json), ``distances.csv``, ``summary.json``, ``summary.md``, ``run.json``.

    Args:
        config: its weights (``None`` = random initialisation with
            ``keras.utils.set_random_seed(config.seed)``, for the offline demo only, flagged
            loudly in every output), preprocessing, embed_batch_size, image_size, pooling and
            decoder.
        data_root: the folder the pair paths are relative to (default:
            :func:`resolve_data_root`).
        split: ``"test"`` (default), ``"train"``, ``"val"``, ``"all"`` or a comma list.
        model: a ready model to use instead of building ``senet50(config.weights)``.
    """
    from mfr.embeddings import Embeddings, embed_images, save_embeddings

    cfg = config
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    splits = parse_splits(split)
    pairs = read_pair_csvs(pairs_dir, splits)  # bad input fails before slow work
    root = resolve_data_root(data_root, pairs_dir, cfg)
    if root is None:
        raise ValueError(f"no data root: pass --data-root DIR ({pairs_dir / 'run.json'} "
                         f"records none)")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data root is not a directory")
    if model is None:
        check_weights(cfg, progress)
    others = [s for s in SPLITS if s not in splits and (pairs_dir / f"{s}.csv").is_file()]
    all_pairs = {**pairs, **read_pair_csvs(pairs_dir, others)}
    cache = _partition_cache(root, all_pairs, Path(cache_dir) if cache_dir is not None
                             else out_dir / "cache", cfg, progress)
    if len(cache) == 0 or not any(p in cache for p in unique_pair_paths(*pairs.values())):
        raise ValueError(f"{root}: none of the images of {pairs_dir} could be read under "
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
    write_json(out_dir / "run.json", run_metadata(
        cfg, command="embed", data_root=str(root.resolve()),
        pairs_dir=str(pairs_dir.resolve()), splits=splits, cache_dir=str(cache.cache_dir),
        weights_desc=weights_desc, random_weights=cfg.weights is None, warning=warning,
        decoder=cfg.decoder, n_images_embedded=len(paths), n_images_failed=len(cache.failed),
        n_pairs_dropped=len(dropped_df), failed_images=cache.failed.to_dict("records"),
    ))
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
):
    """Fine-tune the last `n` layers on a partition's pairs (`mfr train`, one N).

    The image cache (`cache_dir`, default ``pairs_dir/cache``) is built from the data root
    (:func:`resolve_data_root`) when absent. Every check on the input (N, the CSVs, the weights,
    that every pair's images are in the cache) comes before the model is built.

    Writes into `out_dir` (default ``results/<profile>/train_N<n>``): ``history.csv``,
    ``checkpoints/``, ``final_trainable.h5`` (:func:`mfr.training.train_siamese`),
    ``distances.csv`` and ``summary.json`` of the test pairs under the fine-tuned model,
    ``run.json``. Returns the :class:`mfr.training.TrainResult`.
    """
    from mfr import checkpoints, siamese
    from mfr.training import train_siamese

    n = siamese.validate_trainable_layers(n)
    pairs_dir = Path(pairs_dir)
    frames = read_pair_csvs(pairs_dir)
    out = Path(out_dir) if out_dir is not None else default_train_dir(config, n)
    if checkpoints.latest_checkpoint(out) is not None and not resume:
        raise ValueError(f"{out}: holds checkpoints of an earlier run; resume it (--resume) or "
                         f"choose another output directory")
    check_weights(config, progress)
    cache_dir = Path(cache_dir) if cache_dir is not None else pairs_dir / "cache"
    if (cache_dir / "cache.json").is_file():
        cache = ImageCache.open(cache_dir)
    else:
        root = resolve_data_root(data_root, pairs_dir, config)
        if root is None:
            raise FileNotFoundError(f"{cache_dir}: no image cache, and no data root to build it "
                                    f"(pass --cache-dir or --data-root)")
        cache = _partition_cache(root, frames, cache_dir, config, progress)
    if cache.size != config.image_size:
        raise ValueError(f"{cache_dir}: images are {cache.size}px, the model takes "
                         f"{config.image_size}px")
    kept = {s: drop_failed_pairs(df, cache)[0] for s, df in frames.items()}
    n_dropped = sum(len(frames[s]) - len(kept[s]) for s in frames)
    if n_dropped:
        warnings.warn(f"dropped {n_dropped} pairs whose image failed to decode "
                      f"(see {cache.cache_dir / 'failed.csv'})", stacklevel=2)
    try:
        idx = {s: pair_indices(df, cache) for s, df in kept.items()}
    except ValueError as e:
        raise ValueError(f"the partition {pairs_dir} does not match the image cache "
                         f"{cache_dir}: {e}") from None

    result = train_siamese(_core(config), n, cache.images, idx["train"], idx["val"], idx["test"],
                           config=config, out_dir=out, resume=resume, verbose=verbose,
                           progress=progress)
    test_df, nt = kept["test"], len(kept["test"])
    dist, metrics = distance_table("test", test_df, result.test_embeddings,
                                   result.test_pair_rows[:nt], result.test_pair_rows[nt:],
                                   idx["test"].labels)
    write_csv(out / "distances.csv", dist, float_format=DISTANCE_FLOAT_FORMAT)
    # Same layout as `mfr embed`'s summary.json: splits -> split -> metric -> statistics.
    write_json(out / "summary.json", {"trainable_layers": n, "metric_thesis": "sum_squared",
                                      "splits": {"test": metrics}})
    write_json(out / "run.json", run_metadata(
        config, trainable_layers=n, trainable_layer_names=result.trainable_layers,
        trainable_params=result.trainable_params, path=result.path,
        resumed_from_epoch=result.resumed_from, engine=result.engine,
        pairs_dir=str(pairs_dir), cache_dir=str(cache_dir),
        final_weights="final_trainable.h5 (trained layers only, keras-vggface legacy HDF5)",
        epoch_order="np.random.default_rng([seed, epoch]).permutation(n_train)"))
    return result


# --------------------------------------------------------------------------- Grad-CAM (issue 10)


def gradcam_step(out_dir: str | Path, study_dir: str | Path | None = None,
                 model_dir: str | Path | None = None, config: StudyConfig | None = None,
                 pairs_dir: str | Path | None = None, **options: Any):
    """Grad-CAM maps, attention shares above the mask line and the deletion test (`mfr
    gradcam`, notebook 05) for one of: every setting of a study folder (`study_dir`: its
    ``baseline/`` and ``train_N<N>/``), one run folder (`model_dir`), or the bare core of
    `config` (its weights; ``None`` = seeded random init). `pairs_dir` defaults to
    ``study_dir/partition`` or the run's recorded pairs folder. `options` go to
    :func:`mfr.gradcam_study.run_gradcam` (n_images, seed, data_root, deletion_fraction,
    random_draws, n_boot, layer, progress). Returns its :class:`~mfr.gradcam_study.GradcamRun`.
    """
    from mfr import gradcam_study as gs

    if sum(x is not None for x in (study_dir, model_dir, config)) != 1:
        raise ValueError("give exactly one of a study folder, a run folder or a config")
    if study_dir is not None:
        settings = gs.find_settings(study_dir)
        pairs_dir = pairs_dir or Path(study_dir) / "partition"
    elif model_dir is not None:
        settings = [gs.read_setting(model_dir)]
        recorded = json.loads((Path(model_dir) / "run.json").read_text("utf-8")).get("pairs_dir")
        pairs_dir = pairs_dir or recorded
    else:
        settings = [gs.Setting("core", gs.setting_label(config.weights), config)]
    if pairs_dir is None:
        raise ValueError("no pairs folder: pass --pairs DIR (the output folder of `mfr partition`)")
    for s in settings:  # the weights can be had, before any slow work
        check_weights(s.config, options.get("progress", True))
    if options.get("seed") is None:
        options["seed"] = settings[0].config.seed
    options["data_root"] = resolve_data_root(options.get("data_root"), Path(pairs_dir),
                                             settings[0].config)
    return gs.run_gradcam(settings, pairs_dir, out_dir, **options)
