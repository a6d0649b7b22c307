"""Where a step's inputs are and whether they can be read: the data root a pairs folder
came from, a run's recorded pairs folder, finished input folders, non-empty pair tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError, MissingError
from mfr.core.provenance import (
    file_digest,
)
from mfr.core.run_record import read_json_record, read_run


def recorded_pairs_dir(run_dir: str | Path) -> Path | None:
    """The partition folder run `run_dir` records it was made from (its run.json's
    ``pairs_dir``), or None when it records none. A relative one (relative to wherever the
    run was made) is looked for from here, then from the run folder and each folder above it,
    and taken where its ``test.csv`` is the one the run's fingerprint names: never a
    partition of the same name that the run was not made from. MissingError when none is."""
    run_dir = Path(run_dir)
    run = read_run(run_dir, lenient=True)
    recorded = run.get("pairs_dir") if run is not None else None
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
        # a partition with synthetic masks records the dataset's root too (its pairs are
        # relative to a folder of links beside them: mfr.data.synthetic_partners)
        dataset = _recorded_root(Path(pairs_dir) / "run.json", "dataset_root")
        if recorded is not None and given.is_dir() and any(
                r.resolve().is_relative_to(given.resolve())
                for r in (recorded, dataset) if r is not None):
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


def _recorded_root(record: Path, key: str = "data_root") -> Path | None:
    if not record.is_file():
        return None
    root = read_json_record(record, "the run.json of `mfr partition`").get(key)
    return Path(root) if root else None


def require_complete(folder: Path, what: str) -> None:
    """An input folder written by mfr must hold a finished run (a hand-made one is taken as
    it is): a partition killed halfway is not read."""
    run = read_run(folder, lenient=True)
    if run is not None and run.get("status") in ("running", "failed"):
        raise InputError(f"{folder}: the {what} there did not finish (its run.json says "
                         f"status {run['status']}); run it again")


def require_pairs(frames: dict[str, pd.DataFrame], pairs_dir: Path, splits: Sequence[str]) -> None:
    for s in splits:
        if len(frames[s]) == 0:
            raise InputError(f"{pairs_dir / f'{s}.csv'}: no pairs (expected at least one "
                             f"{s} pair)")
