"""What several steps share: the data root a pairs folder came from, the weights and their
fingerprint, the settings a step's results depend on, input checks, the image cache of a
set of pair tables, and saving figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError, MissingError
from mfr.core.provenance import (
    file_digest,
    read_run,
)
from mfr.data.image_cache import ImageCache, build_image_cache, reusable
from mfr.data.pairs import (
    unique_pair_paths,
)
from mfr.report import thesis as report
from mfr.training.losses import loss_settings

RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS (weights=None, seed {seed}): this is NOT the pre-trained SENet50; the "
    "distances only exercise the pipeline (offline demo) and mean nothing about faces."
)


# --------------------------------------------------------------------------- shared checks


def recorded_pairs_dir(run_dir: str | Path) -> Path | None:
    """The partition folder run `run_dir` records it was made from (its run.json's
    ``pairs_dir``), or None when it records none. A relative one (relative to wherever the
    run was made) is looked for from here, then from the run folder and each folder above it,
    and taken where its ``test.csv`` is the one the run's fingerprint names: never a
    partition of the same name that the run was not made from. MissingError when none is."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    recorded = run.get("pairs_dir") if isinstance(run, dict) else None
    if not recorded:
        return None
    path = Path(recorded)
    if path.is_absolute():
        return path
    pairs = ((run.get("fingerprint") or {}).get("pairs") or {})
    wanted = pairs.get("test.csv") if isinstance(pairs, dict) else None
    for base in (Path.cwd(), run_dir, *run_dir.resolve().parents):
        candidate = base / path
        test = candidate / "test.csv"
        if test.is_file() and (wanted is None or file_digest(test) == wanted):
            return candidate
    raise MissingError(f"{run_dir / 'run.json'}: its partition folder {recorded} (relative to "
                       f"where the run was made) is not found from here or from the run "
                       f"folder; pass --pairs DIR (the partition the run was made from)")


def resolve_data_root(data_root: str | Path | None, pairs_dir: Path, config: StudyConfig,
                      cache_dir: Path | None = None) -> Path | None:
    """`data_root` if given (the dataset folder the partition found under it, as `mfr
    partition` finds one under a folder above), else the data root that `mfr partition`
    recorded in the pairs folder's run.json, else the config's if it is a folder, else the one the image cache in
    `cache_dir` was made from, else the config's (missing: the caller says so); None when
    none is known."""
    recorded = _recorded_root(Path(pairs_dir) / "run.json")
    if data_root is not None:
        given = Path(data_root)
        if recorded is not None and given.is_dir() and recorded.resolve().is_relative_to(
                given.resolve()):
            return recorded  # the folder the partition found under the one given
        return _dataset_folder(given)
    if recorded:
        return recorded
    configured = Path(config.data_root) if config.data_root else None
    if configured is not None and configured.is_dir():
        return configured
    # a profile's data root that is not there (the thesis's RMFRD, not downloaded) does not
    # hide the one the image cache was made from
    cached = _recorded_root(Path(cache_dir) / "cache.json") if cache_dir is not None else None
    return cached or configured


def _dataset_folder(root: Path) -> Path:
    """The dataset folder `mfr partition` finds under `root` (an RMFRD tree or an MFR2 folder
    a level or two below: the same --data-root works for every step), else `root` as given
    (a folder the pair paths are relative to)."""
    from mfr.data.datasets import dataset_root

    if not root.is_dir():
        return root
    try:
        return dataset_root(root)[0]
    except (OSError, InputError):
        return root


def _recorded_root(record: Path) -> Path | None:
    if not record.is_file():
        return None
    root = json.loads(record.read_text(encoding="utf-8")).get("data_root")
    return Path(root) if root else None


def check_weights(config: StudyConfig, progress: bool = True) -> None:
    """Make sure the config's weights can be had before any slow work: a file that exists and
    is the backbone's kind, or its released file found (downloaded, for SENet50's VGGFace2).
    One-line errors say what is missing."""
    from mfr.backbones import backbone_module

    backbone_module(config.backbone).check_weights(config.weights, progress)


def _weights_desc(config: StudyConfig) -> tuple[str, str | None]:
    """A run's weights in words, and the warning random weights carry into every output."""
    if config.weights is None:
        return f"random init, seed {config.seed}", RANDOM_WEIGHTS_WARNING.format(seed=config.seed)
    return str(config.weights), None


def _weights_fingerprint(config: StudyConfig) -> str:
    """The initial weights as a fingerprint: the file's sha256, or the random init's seed."""
    if config.weights is None:
        return f"random init, seed {config.seed}"
    from mfr.backbones import backbone_cfg, backbone_module

    pretrained = backbone_cfg(config.backbone)["pretrained"]
    if config.weights == pretrained:
        path = backbone_module(config.backbone).pretrained_file()
        return f"{pretrained} sha256:{file_digest(path)}"
    return f"file sha256:{file_digest(config.weights)}"


def _settings(config: StudyConfig, names: Sequence[str]) -> dict[str, Any]:
    return {k: config.to_dict()[k] for k in names}


#: The config fields each step's results depend on (the rest: speed, storage, names), beside
#: the backbone's own (its CFG's ``settings``: SENet50's preprocessing and pooling) and, for
#: training, the loss's (:func:`mfr.training.losses.loss_settings`: contrastive's margin).
EMBED_SETTINGS = ("backbone", "image_size", "decoder")
TRAIN_SETTINGS = ("optimizer", "learning_rate", "momentum", "batch_size", "seed")


def embed_settings(config: StudyConfig) -> dict[str, Any]:
    """The settings a network's embeddings depend on: the backbone, the image cache's, the
    backbone's own."""
    from mfr.backbones import backbone_cfg

    return _settings(config, EMBED_SETTINGS + tuple(backbone_cfg(config.backbone)["settings"]))


def train_settings(config: StudyConfig) -> dict[str, Any]:
    """What a fine-tuning run's results depend on: :func:`embed_settings`, the loss's and the
    SGD's."""
    return {**embed_settings(config), **loss_settings(config), **_settings(config, TRAIN_SETTINGS)}


def _devices(config: StudyConfig) -> int:
    """The devices a step's forward and SGD steps run on: every device with
    ``data_parallel`` (JAX only: InputError otherwise, before any work), else 1. Recorded in
    run.json; not in the fingerprint (data parallelism does not change results)."""
    if not config.data_parallel:
        return 1
    from mfr.training.data_parallel import device_count, distribution

    return device_count(distribution())


def _require_complete(folder: Path, what: str) -> None:
    """An input folder written by mfr must hold a finished run (a hand-made one is taken as
    it is): a partition killed halfway is not read."""
    run = read_run(folder)
    if run is not None and run.get("status") in ("running", "failed"):
        raise InputError(f"{folder}: the {what} there did not finish (its run.json says "
                         f"status {run['status']}); run it again")


def _nonempty(frames: dict[str, pd.DataFrame], pairs_dir: Path, splits: Sequence[str]) -> None:
    for s in splits:
        if len(frames[s]) == 0:
            raise InputError(f"{pairs_dir / f'{s}.csv'}: no pairs (expected at least one "
                             f"{s} pair)")


def _core(config: StudyConfig):
    """The config's backbone with its weights (random init: seeded), :func:`mfr.backbones.build_core`."""
    from mfr.backbones import build_core

    return build_core(config)


def _image_cache(data_root: Path, frames: dict[str, pd.DataFrame], cache_dir: Path,
                 config: StudyConfig, progress: bool) -> ImageCache:
    """One image cache for the union of the pair tables: the one in `cache_dir` when it was
    made the same way from the same, unchanged images (:func:`mfr.data.image_cache.reusable`, the
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



def _save_figures(figs: dict[str, Any], out: Path) -> list[str]:
    import matplotlib.pyplot as plt

    written = []
    for stem, fig in figs.items():
        written += [p.name for p in report.save_figure(fig, out / stem)]
        plt.close(fig)
    return written
