"""The preparation `mfr embed` and `mfr train` share, in the order they do it.

pairs (:func:`read_partition`) -> data root (:func:`mfr.study.steps.inputs.resolve_data_root`)
-> what the run depends on (:func:`input_fingerprint`) -> claim of the run folder -> the image
cache of the pair tables (:func:`image_cache_for`, reused when it was made the same way from
the same images, else built) -> pairs whose image failed to decode dropped and listed
(:func:`keep_readable`) -> ... -> one distance table of the pairs under the new embeddings
(:func:`pair_distances`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import MissingError
from mfr.core.provenance import file_digest, listing_digest
from mfr.data.image_cache import ImageCache, build_image_cache, reusable
from mfr.data.pairs import (
    drop_failed_pairs,
    pair_indices,
    read_pair_csvs,
    unique_pair_paths,
)
from mfr.evaluation.distances import distance_table
from mfr.study.steps.inputs import require_complete, require_pairs


def read_partition(pairs_dir: Path, splits: Sequence[str] | None = None,
                   required: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """The pair tables of a finished partition folder (`splits`, default all), checked before
    any slow work; the `required` splits must hold a pair."""
    require_complete(pairs_dir, "partition")
    frames = read_pair_csvs(pairs_dir, splits) if splits is not None else read_pair_csvs(pairs_dir)
    require_pairs(frames, pairs_dir, required)
    return frames


def input_fingerprint(pairs_dir: Path, frames: dict[str, pd.DataFrame],
                      data_root: Path) -> dict[str, Any]:
    """What a run's results depend on among its inputs: the pair CSVs it reads (their bytes)
    and the images they name (paths, sizes and times under the data root)."""
    return {"pairs": {f"{s}.csv": file_digest(pairs_dir / f"{s}.csv") for s in frames},
            "images": listing_digest(data_root, unique_pair_paths(*frames.values()))}


def keep_readable(frames: dict[str, pd.DataFrame], cache: ImageCache
                  ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The pairs whose two images are in the cache, per split, and the dropped ones (with a
    ``split`` column), said in one warning that points at the cache's ``failed.csv``."""
    kept, dropped = {}, []
    for s, df in frames.items():
        kept[s], d = drop_failed_pairs(df, cache)
        if len(d):
            dropped.append(d.assign(split=s))
    dropped_df = pd.concat(dropped, ignore_index=True) if dropped else pd.DataFrame()
    if len(dropped_df):
        warnings.warn(f"dropped {len(dropped_df)} pairs whose image failed to decode "
                      f"(see {cache.cache_dir / 'failed.csv'})", stacklevel=3)
    return kept, dropped_df


def pair_distances(kept: dict[str, pd.DataFrame], vectors: np.ndarray, index: Any,
                   splits: Sequence[str], skip_empty: bool = False
                   ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One distance table of the `splits`' pairs under `vectors` (rows looked up by image
    path in `index`, e.g. an :class:`mfr.evaluation.embeddings.Embeddings`), and each split's
    summary (:func:`mfr.evaluation.distances.distance_table`)."""
    frames, summaries = [], {}
    for s in splits:
        if skip_empty and len(kept[s]) == 0:
            continue
        idx = pair_indices(kept[s], index)
        frame, summaries[s] = distance_table(s, kept[s], vectors, idx.u_idx, idx.m_idx,
                                             idx.labels)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), summaries


def image_cache_for(data_root: Path, frames: dict[str, pd.DataFrame], cache_dir: Path,
                 config: StudyConfig, progress: bool) -> ImageCache:
    """One image cache for the union of the pair tables: the one in `cache_dir` when it was
    made the same way from the same, unchanged images (:func:`mfr.data.image_cache.reusable`, the
    one check), else built there from `data_root` (see :func:`check_cache_source` first)."""
    paths = unique_pair_paths(*frames.values())
    cache = reusable(cache_dir, paths, config.image_size, data_root, config.decoder)
    if cache is not None:
        return cache
    return build_image_cache(data_root, paths, cache_dir, size=config.image_size,
                             progress=progress, decoder=config.decoder, config=config)


def check_cache_source(data_root: Path, frames: dict[str, pd.DataFrame], cache_dir: Path,
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
