"""Pair tables: the pair CSV format, its readers, and pairs as rows of a path-indexed array.

A pair CSV (written by `mfr partition`) has the columns :data:`COLUMNS`; label 1 = genuine (same
subject), 0 = impostor; paths are POSIX and relative to the data root. Everything downstream
works on index arrays: :func:`pair_indices` turns a pair table into a :class:`PairSet` of rows
of a :class:`PathIndex` (an image cache, or a set of embeddings), so a path that appears in many
pairs is decoded and embedded once.

Pairs whose image could not be decoded are dropped in one place, :func:`drop_failed_pairs`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from mfr.core.errors import InputError, MissingError
from mfr.core.readers.text import excerpt

__all__ = [
    "COLUMNS",
    "SPLITS",
    "PairSet",
    "PathIndex",
    "drop_failed_pairs",
    "own_pair_sets",
    "pair_indices",
    "parse_splits",
    "read_pair_csvs",
    "read_pairs",
    "select_pairs",
    "unique_pair_paths",
]

COLUMNS = ["unmasked_path", "masked_path", "label", "unmasked_subject", "masked_subject"]
#: The partition's splits, in order; "all" means these.
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- files


def read_pairs(csv_path: str | Path) -> pd.DataFrame:
    """A pairs CSV written by `mfr partition` (paths and subjects kept as strings).

    Read by :func:`mfr.core.readers.tables.read_table` (UTF-8, a size bound, the header
    :data:`COLUMNS`, exactly five fields on every row) and checked row by row: InputError names
    the file and the line of a label other than 0 or 1, a path that is absolute or climbs out
    of the data root with ``..`` (pair paths are relative to the data root), a subject other
    than the folder its image is in (every layout mfr reads keeps a subject's images in a
    folder of its name: ``<side>/<subject>/<file>``, ``<Name>/<Name>_000i.png``,
    ``synthetic/<subject>/<file>``), a label that disagrees with the subjects (genuine on two
    subjects, impostor on one), or a pair already on an earlier line (refused like any bad row,
    not dropped: it would count twice).
    """
    from mfr.core.readers.paths import relative_inside
    from mfr.core.readers.tables import line_of, read_table

    path = Path(csv_path)
    expected = f"a pairs CSV of `mfr partition`, columns {','.join(COLUMNS)}"
    if not path.exists():
        raise MissingError(f"{path}: no such pairs file (expected a CSV with columns "
                           f"{', '.join(COLUMNS)})")
    df = read_table(path, COLUMNS, expected)
    bad = ~df["label"].isin(["0", "1"]).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: line {line_of(df, i)}: label must be 0 or 1, got "
                         f"{excerpt(df['label'].iloc[i], 20)}")
    for col in ("unmasked_path", "masked_path"):
        bad = df[col].map(_outside_root).to_numpy(dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            relative_inside(df[col].iloc[i], f"{path}: line {line_of(df, i)}", col)
    for side in ("unmasked", "masked"):
        folder = df[f"{side}_path"].map(_subject_folder)
        bad = (folder != df[f"{side}_subject"]).to_numpy(dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{path}: line {line_of(df, i)}: {side}_subject "
                             f"{excerpt(df[f'{side}_subject'].iloc[i], 40)}, but its image "
                             f"{excerpt(df[f'{side}_path'].iloc[i], 60)} is in folder "
                             f"{excerpt(folder.iloc[i], 40)} (a subject's images are in a "
                             f"folder of its name)")
    same = (df["unmasked_subject"] == df["masked_subject"]).to_numpy(dtype=bool)
    wrong = (df["label"] == "1").to_numpy(dtype=bool) != same
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        kind = ("genuine (1) on two subjects" if df["label"].iloc[i] == "1"
                else "impostor (0) on one subject")
        raise InputError(f"{path}: line {line_of(df, i)}: label {kind}, "
                         f"{excerpt(df['unmasked_subject'].iloc[i], 40)} and "
                         f"{excerpt(df['masked_subject'].iloc[i], 40)} (a pair is genuine "
                         f"exactly when its subjects agree)")
    twice = df.duplicated(["unmasked_path", "masked_path"], keep="first")
    if twice.any():  # a pair counted twice would weigh double in every metric
        i = int(np.flatnonzero(twice.to_numpy())[0])
        first = int(np.flatnonzero(((df["unmasked_path"] == df["unmasked_path"].iloc[i])
                                    & (df["masked_path"] == df["masked_path"].iloc[i]))
                                   .to_numpy())[0])
        raise InputError(f"{path}: line {line_of(df, i)}: the pair "
                         f"{excerpt(df['unmasked_path'].iloc[i])}, "
                         f"{excerpt(df['masked_path'].iloc[i])} again (first on line "
                         f"{line_of(df, first)}; {int(twice.sum())} repeated row(s)): each "
                         f"pair once")
    df["label"] = df["label"].astype(np.int64)
    df.attrs.clear()
    return df


def _outside_root(p: str) -> bool:
    """Whether a pair path is empty, holds a NUL byte or leaves the data root
    (:func:`mfr.core.readers.paths.relative_inside`'s refusals)."""
    from mfr.core.readers.paths import leaves_tree

    return not p.strip() or "\0" in p or leaves_tree(p)


def _subject_folder(p: str) -> str:
    """The folder an image path is in (its subject, in every layout mfr reads)."""
    parts = [x for x in p.replace("\\", "/").split("/") if x not in ("", ".")]
    return parts[-2] if len(parts) >= 2 else ""


def read_pair_csvs(pairs_dir: str | Path, splits: Sequence[str] = SPLITS) -> dict[str, pd.DataFrame]:
    """Read ``<pairs_dir>/<split>.csv`` for each split (FileNotFoundError naming a missing one;
    InputError naming one changed since its partition recorded it,
    :func:`mfr.core.integrity.check_recorded`)."""
    from mfr.core.integrity import check_recorded

    pairs_dir = Path(pairs_dir)
    if not pairs_dir.is_dir():
        raise MissingError(f"{pairs_dir}: pairs directory not found (expected the output "
                                f"directory of `mfr partition`, with train/val/test.csv)")
    return {split: read_pairs(check_recorded(pairs_dir / f"{split}.csv")) for split in splits}


def own_pair_sets(pairs_dir: str | Path) -> list[str]:
    """The names of the dataset's own pair sets a partition folder holds (``<name>.csv``
    beside train/val/test: MFR2's pairs.txt as ``mfr2_pairs``), as its run.json records them
    (``own_pair_sets``; for a partition written before that record, the CSV files among its
    outputs other than the splits); [] when there is no run.json."""
    from mfr.core.run_record import read_run

    run = read_run(Path(pairs_dir), lenient=True)
    if run is None:
        return []
    if isinstance(run.get("own_pair_sets"), list):
        from mfr.core.readers.paths import name_part

        where = str(Path(pairs_dir) / "run.json")
        return [name_part(str(n), where, "own pair set") for n in run["own_pair_sets"]]
    names = [n[:-4] for n in (run.get("outputs") or {}) if isinstance(n, str)
             and n.endswith(".csv") and "/" not in n]
    return [n for n in names if n not in SPLITS]


def parse_splits(split: str | Sequence[str], own: Sequence[str] = ()) -> list[str]:
    """``"test"``, ``"val,test"``, ``"all"`` or a list -> a list of split names; `own`: the
    partition's own pair sets (:func:`own_pair_sets`), which may be named too."""
    names = split.split(",") if isinstance(split, str) else list(split)
    names = [s.strip() for s in names if s.strip()]
    if names == ["all"]:
        return list(SPLITS)
    known = SPLITS + tuple(own)
    bad = [s for s in names if s not in known]
    if bad or not names:
        raise InputError(f"split must be one of {known}, 'all' or a comma-separated list; "
                         f"got {split!r}")
    return list(dict.fromkeys(names))


def unique_pair_paths(*pair_frames: pd.DataFrame) -> list[str]:
    """Sorted unique image paths of one or more pair tables."""
    paths: set[str] = set()
    for df in pair_frames:
        _check_columns(df)
        paths.update(df["unmasked_path"].astype(str))
        paths.update(df["masked_path"].astype(str))
    return sorted(paths)


def _check_columns(pairs: pd.DataFrame, what: str = "pairs") -> None:
    missing = [c for c in ("unmasked_path", "masked_path", "label") if c not in pairs.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {missing}; expected {COLUMNS}")


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class PairSet:
    """Pairs as rows of an array of per-image items: ``u_idx[k]``, ``m_idx[k]`` are pair k's
    unmasked and masked image, ``labels[k]`` is 1 (genuine) or 0 (impostor).

    ``u_subject[k]``, ``m_subject[k]``: the subjects of the two images (strings, as the pair
    table's ``unmasked_subject`` / ``masked_subject``), where the pairs came from a table that
    has them (:func:`pair_indices`), else None: a loss that trains on images with their
    subject ids (:mod:`mfr.training.losses`) reads them.

    Unpacks as ``u, m, y = pairs``; ``len(pairs)`` is the number of pairs.
    """

    u_idx: np.ndarray
    m_idx: np.ndarray
    labels: np.ndarray
    u_subject: np.ndarray | None = None
    m_subject: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.u_idx)
        for name in ("u_subject", "m_subject"):
            ids = getattr(self, name)
            if ids is not None and len(ids) != n:
                raise InputError(f"pairs: {name} has {len(ids)} entries for {n} pairs")

    def __len__(self) -> int:
        return len(self.u_idx)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.u_idx, self.m_idx, self.labels))

    def take(self, k: np.ndarray | slice) -> PairSet:
        """The pairs at positions `k`, in that order (their subjects too)."""
        return self.with_rows(self.u_idx[k], self.m_idx[k], self.labels[k], k)

    def with_rows(self, u_idx: np.ndarray, m_idx: np.ndarray, labels: np.ndarray,
                  k: np.ndarray | slice = slice(None)) -> PairSet:
        """These pairs' subjects at positions `k` with new index rows and labels (the pairs
        re-indexed into another array, or checked and cast)."""
        return PairSet(u_idx, m_idx, labels,
                       None if self.u_subject is None else self.u_subject[k],
                       None if self.m_subject is None else self.m_subject[k])


class PathIndex:
    """Rows of a per-image array, looked up by image path (the image cache, embeddings).

    Subclasses set :attr:`paths` (row order) and may set :attr:`failed_paths` (images that
    could not be decoded: they have no row).
    """

    paths: list[str]
    failed_paths: frozenset[str] = frozenset()
    what: str = "index"

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}

    def __contains__(self, path: str) -> bool:
        return path in self._rows

    def __len__(self) -> int:
        return len(self.paths)

    def index_of(self, paths: Iterable[str]) -> np.ndarray:
        """Rows of `paths` (int64); ValueError naming any path that has no row."""
        rows = self._rows
        paths = [str(p) for p in paths]
        out = np.empty(len(paths), dtype=np.int64)
        missing = []
        for i, p in enumerate(paths):
            r = rows.get(p)
            if r is None:
                missing.append(p)
            else:
                out[i] = r
        if missing:
            uniq = sorted(set(missing))
            bad = [p for p in uniq if p in self.failed_paths]
            absent = [p for p in uniq if p not in self.failed_paths]
            parts = []
            if absent:
                parts.append(f"{len(absent)} path(s) not in it, e.g. {absent[:5]}")
            if bad:
                parts.append(f"{len(bad)} path(s) that failed to decode, e.g. {bad[:5]}")
            raise InputError(f"{self.what}: " + "; ".join(parts))
        return out


def drop_failed_pairs(pairs: pd.DataFrame, index: PathIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `pairs` into (kept, dropped): dropped pairs have an image in ``index.failed_paths``.

    The only place where pairs of undecodable images are dropped.
    """
    _check_columns(pairs)
    failed = index.failed_paths
    if not failed:
        return pairs.reset_index(drop=True), pairs.iloc[:0].copy()
    bad = pairs["unmasked_path"].isin(failed) | pairs["masked_path"].isin(failed)
    return pairs[~bad].reset_index(drop=True), pairs[bad].reset_index(drop=True)


def pair_indices(pairs: pd.DataFrame, index: PathIndex) -> PairSet:
    """Rows of each pair's two images in `index` (an image cache or embeddings), the labels,
    and the two subjects (where the table has them).

    Pairs whose image failed to decode are dropped (:func:`drop_failed_pairs`), with a warning
    giving the count. A path that is neither in `index` nor failed is an error (ValueError
    naming it): the index was built for other pairs.
    """
    kept, dropped = drop_failed_pairs(pairs, index)
    if len(dropped):
        warnings.warn(f"dropped {len(dropped)} of {len(pairs)} pairs whose image failed to decode",
                      stacklevel=2)
    u = index.index_of(kept["unmasked_path"])
    m = index.index_of(kept["masked_path"])
    labels = kept["label"].to_numpy().astype(np.int64)
    if not np.isin(labels, (0, 1)).all():
        raise InputError(f"pair labels must be 0 or 1, got {sorted(set(labels.tolist()))}")
    subjects = [kept[c].astype(str).to_numpy() if c in kept.columns else None
                for c in ("unmasked_subject", "masked_subject")]
    return PairSet(u, m, labels, *subjects)


def select_pairs(pairs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The genuine pairs, one per masked image, in the order they are tried: masked images in
    a seeded permutation, one per subject first (so K images cover K subjects when they can),
    each with a seeded choice among its unmasked partners."""
    gen = pairs[pairs["label"] == 1].sort_values(["masked_path", "unmasked_path"], kind="stable")
    if gen.empty:
        raise InputError("the pairs hold no genuine pair (label 1) to explain")
    rng = np.random.default_rng(seed)
    groups = [g for _, g in gen.groupby("masked_path", sort=True)]
    chosen = [g.iloc[int(rng.integers(len(g)))] for g in groups]
    order = rng.permutation(len(chosen))
    seen, first, rest = set(), [], []
    for i in order:
        subject = chosen[i]["masked_subject"]
        (rest if subject in seen else first).append(chosen[i])
        seen.add(subject)
    return pd.DataFrame(first + rest).reset_index(drop=True)
