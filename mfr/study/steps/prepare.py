"""The preparation `mfr embed` and `mfr train` share: the image cache of a set of pair
tables (reused when it was made the same way from the same images, else built)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import MissingError
from mfr.data.image_cache import ImageCache, build_image_cache, reusable
from mfr.data.pairs import (
    unique_pair_paths,
)


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
