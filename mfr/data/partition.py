"""The thesis's train / validation / test pair sets (Chapter 4.2, Table 4.2), deterministically.

Protocol `thesis`, exactly as the thesis's code:

1. Subjects (folders on both sides), sorted; the first `int(0.8 * n)` for train+validation,
   the rest for test.
2. Per subject and side: files matching `*.jpg`, sorted, the first 20 (`max_per_subject`).
3. Pairs: every unmasked x every masked image inside a split, enumerated with the unmasked
   image in the outer loop; label 1 when the subjects agree (genuine), else 0 (impostor).
4. Train/val: the genuine and the impostor pairs (each in enumeration order) are each split by
   `train_test_split(test_size=0.2, random_state=2021)`; each split's impostors are cut to its
   genuine count (their first rows); genuine then impostor rows are concatenated and
   `shuffle(random_state=2021)`d.
5. Test: all genuine pairs, then the first n_genuine impostor pairs in enumeration order (so
   they involve only the test set's first few unmasked images), not shuffled.

The thesis also shuffled its train/val image lists with an unseeded `random.shuffle`, which
no one can reproduce; here the lists stay sorted. Protocol `balanced` is the same except that
every common image format counts (jpg/jpeg/png/bmp/webp, any case) and the test impostors are
a uniform sample (seeded) of all test impostor pairs, kept in enumeration order.

Protocol `all_pairs` is `balanced` with **every** unmasked x masked pair of the test subjects
(of their selected images: `max_per_subject` per side) as its test pairs, in enumeration order:
no impostor sampling, so the impostors outnumber the genuine pairs. It is the pair set a direct
evaluation calls ``masked_vs_unmasked``, on the test subjects of a split.

Protocol `identity` pairs images by identity whatever their mask (:mod:`mfr.data.identity_pairs`:
genuine = two images of one identity, impostor = images of two, balanced, seeded, at most
`pairs_per_subject` genuine pairs per identity), in three subject-disjoint splits: a
dataset's own (MLFW's train/val/test folders, :attr:`DatasetSpec.own_splits`), else the
train+validation subjects of the subject split cut again, `val_size` of them (seeded) for
validation. It is the protocol of a dataset without mask flags (MLFW), which the three above
refuse; at most `max_per_subject` images per identity and mask flag (unmasked, masked,
unknown). Train and validation rows are shuffled as the thesis's; test rows are not. Its
pair tables keep the columns, but ``unmasked_path`` / ``masked_path`` are a first and a second
image there, not mask sides (run.json's ``partition.mask_sides`` is False): what reads them as
masked and unmasked (a study's identification, Grad-CAM's masked image) must not.

The subject split (:mod:`mfr.data.subject_splits`): the thesis's by default; `split_seed` and
`folds`/`fold` make repeated subject splits (a seeded order, k folds), so that a study can
report the spread across splits. These options, and `pairs_per_subject`, are recorded and
fingerprinted only where given, so a partition of before keeps its fingerprint and bytes.

A dataset's own pair sets (:attr:`DatasetSpec.partition_pair_sets`, e.g. MFR2's pairs.txt)
are written beside the splits, each as ``<name>.csv``, and named in run.json
(``own_pair_sets``).

Pairs are held as index arrays (position k = i * n_masked + j in the enumeration), never as
Python lists of path tuples: train/val at RMFRD scale has 7034 x 1343 = 9.4 million pairs.
`train_test_split` and `shuffle` permute row positions whatever the container, so applying
them to these arrays gives exactly the rows the thesis's DataFrames got.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core import provenance
from mfr.core.errors import InputError
from mfr.core.outputs import write_csv, write_json, write_text
from mfr.core.provenance import listing_digest
from mfr.data.datasets import (
    Dataset,
    FaceImage,
    check_image,
    get_dataset,
    load_dataset,
    require_mask_flags,
)
from mfr.data.pairs import COLUMNS, SPLITS
from mfr.data.subject_splits import check_split_options, split_params, train_val_test, val_subjects

PROTOCOLS = ("thesis", "balanced", "all_pairs", "identity")
#: the protocols that pair unmasked with masked images (a dataset with no mask flag is refused)
MASKED_VS_UNMASKED = ("thesis", "balanced", "all_pairs")
#: A partition's settings of synthetic masked partners (:mod:`mfr.data.synthetic_partners`),
#: part of its fingerprint when synthetic_masks is not "none"
SYNTHETIC_KEYS = ("synthetic_masks", "synthetic_kinds", "synthetic_detector")
#: what a partition with synthetic partners lists among its outputs besides the pair tables
SYNTHETIC_OUTPUTS = ("synthetic_masks/masks.csv", "synthetic_masks/failed.csv")

THESIS_TABLE_4_2: dict[str, dict[str, int]] = {
    "train_val": {"subjects": 353, "unmasked_images": 7034, "masked_images": 1343},
    "test": {"subjects": 89, "unmasked_images": 1766, "masked_images": 455},
    "train": {"pairs": 42904, "genuine": 21452, "impostor": 21452},
    "val": {"pairs": 10726, "genuine": 5363, "impostor": 5363},
    "test_pairs": {"pairs": 18190, "genuine": 9095, "impostor": 9095},
}
TABLE_KEYS = ("train_val", "test", "train", "val", "test_pairs")


@dataclass
class Partition:
    """Train, validation and test pair frames (columns `COLUMNS`) and what made them."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    stats: dict[str, Any]
    excluded: dict[str, Any]
    root: Path
    layout: str
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    #: the dataset's own pair sets, by name (:attr:`DatasetSpec.partition_pair_sets`: MFR2's
    #: pairs.txt as ``mfr2_pairs``); none for most datasets
    own_pairs: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: set by :func:`mfr.study.steps.partition_step`: the output folder already held this partition
    up_to_date: bool = False
    #: the train+validation subjects' selected unmasked images (subject -> images, in order):
    #: what :mod:`mfr.data.synthetic_partners` masks
    train_val_unmasked: dict[str, list[FaceImage]] = field(default_factory=dict, repr=False)
    #: the folder the pair paths are relative to, where not `root` (a partition with synthetic
    #: masked partners: :mod:`mfr.data.synthetic_partners`)
    data_root: Path | None = None

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        """The pair tables to write: train, val, test, then the dataset's own pair sets."""
        return {"train": self.train, "val": self.val, "test": self.test, **self.own_pairs}

    def table(self) -> pd.DataFrame:
        return table_4_2(self.stats)

    def matches_thesis(self) -> bool:
        return matches_thesis(self.stats)


def select_images(
    dataset: Dataset,
    max_per_subject: int | None = 20,
    verify: bool = True,
    subjects: Iterable[str] | None = None,
    on_corrupt: str = "skip",
) -> tuple[dict[str, list[FaceImage]], dict[str, list[FaceImage]], list[dict[str, Any]], dict]:
    """Per subject and side, the first `max_per_subject` images in sorted order.

    With `verify`, each candidate's header is read and unreadable or corrupt files are listed.
    `on_corrupt="skip"` leaves them out (the next file in order takes the place);
    `on_corrupt="keep"` keeps them, as the thesis's glob did (it selected by file name: the image
    cache later skips such a file and drops its pairs). Returns (unmasked, masked, excluded
    file entries, counts of files left beyond the cap).
    """
    if on_corrupt not in ("skip", "keep"):
        raise InputError(f"on_corrupt must be 'skip' or 'keep', got {on_corrupt!r}")
    subjects = list(dataset.subjects if subjects is None else subjects)
    chosen: dict[bool, dict[str, list[FaceImage]]] = {}
    bad: list[dict[str, Any]] = []
    beyond = {}
    for masked in (False, True):
        chosen[masked], beyond["masked" if masked else "unmasked"] = _select_side(
            dataset, masked, subjects, max_per_subject, verify, on_corrupt, bad)
    return chosen[False], chosen[True], bad, beyond


#: the name of each mask flag in counts (None: unknown)
_SIDE_NAMES = {False: "unmasked", True: "masked", None: "unknown_mask"}


def _select_side(dataset: Dataset, masked: bool | None, subjects: list[str],
                 max_per_subject: int | None, verify: bool, on_corrupt: str,
                 bad: list[dict[str, Any]]) -> tuple[dict[str, list[FaceImage]], int]:
    """Per subject, the first `max_per_subject` images of one mask flag in sorted order (the
    unreadable ones listed in `bad`), and how many files were left beyond the cap."""
    cap = None if max_per_subject is None or max_per_subject <= 0 else int(max_per_subject)
    side = dataset.by_subject(masked)
    chosen: dict[str, list[FaceImage]] = {}
    beyond = 0
    for s in subjects:
        picked: list[FaceImage] = []
        cands = sorted(side.get(s, []), key=lambda im: im.path)
        for k, im in enumerate(cands):
            if cap is not None and len(picked) >= cap:
                beyond += len(cands) - k
                break
            why = check_image(dataset.abspath(im)) if verify else None
            if why is None or on_corrupt == "keep":
                picked.append(im)
            if why is not None:
                bad.append({"path": im.path, "subject": s, "reason": why, "action": (
                    "kept: selected by file name, as the thesis's glob did; the image cache "
                    "skips it and drops its pairs" if on_corrupt == "keep" else
                    "skipped; the next file in sorted order takes its place")})
        chosen[s] = picked
    return chosen, beyond


def select_any(dataset: Dataset, max_per_subject: int | None = 20, verify: bool = True,
               ) -> tuple[dict[str, list[FaceImage]], list[dict[str, Any]], dict[str, int]]:
    """Per subject, its images of every mask flag (unmasked, masked, unknown), at most
    `max_per_subject` of each flag, the first in sorted order; unreadable files are skipped
    (the next takes the place) and listed. Returns (subject -> images in path order, excluded
    file entries, counts of files left beyond the cap per flag)."""
    bad: list[dict[str, Any]] = []
    per: dict[str, list[FaceImage]] = {s: [] for s in dataset.subjects}
    beyond = {}
    for masked, name in _SIDE_NAMES.items():
        side, beyond[f"{name}_files"] = _select_side(dataset, masked, dataset.subjects,
                                                     max_per_subject, verify, "skip", bad)
        for s, ims in side.items():
            per[s] += ims
    return {s: sorted(v, key=lambda im: im.path) for s, v in per.items()}, bad, beyond


class _Split:
    """The selected images of one subject split, as arrays, and its pair enumeration."""

    def __init__(self, subjects: list[str], unmasked: dict[str, list[FaceImage]],
                 masked: dict[str, list[FaceImage]]):
        self.subjects = subjects
        u = [im for s in subjects for im in unmasked[s]]
        m = [im for s in subjects for im in masked[s]]
        code = {s: c for c, s in enumerate(subjects)}
        self.u_path = np.array([im.path for im in u], dtype=object)
        self.m_path = np.array([im.path for im in m], dtype=object)
        self.u_subj = np.array([code[im.subject] for im in u], dtype=np.int64)
        self.m_subj = np.array([code[im.subject] for im in m], dtype=np.int64)
        self.names = np.array(subjects, dtype=object)
        self.n_u, self.n_m = len(u), len(m)
        # genuine positions, ascending (subjects are contiguous and in order on both sides)
        parts = []
        u_start = np.searchsorted(self.u_subj, np.arange(len(subjects) + 1))
        m_start = np.searchsorted(self.m_subj, np.arange(len(subjects) + 1))
        for c in range(len(subjects)):
            ui = np.arange(u_start[c], u_start[c + 1], dtype=np.int64)
            mj = np.arange(m_start[c], m_start[c + 1], dtype=np.int64)
            if len(ui) and len(mj):
                parts.append((ui[:, None] * self.n_m + mj[None, :]).ravel())
        self.genuine = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def impostors(self, limit: int | None = None) -> np.ndarray:
        """Impostor positions in enumeration order (the first `limit` of them if given)."""
        total = self.n_u * self.n_m
        if limit is not None:
            # enough leading rows to hold `limit` impostors: at most `limit` + genuine before them
            total = min(total, int(limit) + len(self.genuine))
            gen = self.genuine[self.genuine < total]
        else:
            gen = self.genuine
        keep = np.ones(total, dtype=bool)
        keep[gen] = False
        imp = np.flatnonzero(keep)
        return imp if limit is None else imp[:limit]

    def stats(self) -> dict[str, int]:
        return {"subjects": len(self.subjects), "unmasked_images": self.n_u,
                "masked_images": self.n_m}

    def frame(self, k: np.ndarray) -> pd.DataFrame:
        k = np.asarray(k, dtype=np.int64)
        i, j = np.divmod(k, self.n_m) if self.n_m else (k, k)
        us, ms = self.u_subj[i], self.m_subj[j]
        return pd.DataFrame({
            "unmasked_path": self.u_path[i],
            "masked_path": self.m_path[j],
            "label": (us == ms).astype(np.int64),
            "unmasked_subject": self.names[us],
            "masked_subject": self.names[ms],
        }, columns=COLUMNS)


def _split(a: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`train_test_split(a, test_size, random_state=seed)`; all to train when too few rows."""
    from sklearn.model_selection import train_test_split

    n = len(a)
    if n == 0 or n - math.ceil(test_size * n) <= 0:
        return a, a[:0]
    tr, te = train_test_split(a, test_size=test_size, random_state=seed)
    return np.asarray(tr), np.asarray(te)


def _shuffle(a: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.utils import shuffle

    return np.asarray(shuffle(a, random_state=seed)) if len(a) else a


def _pair_stats(df: pd.DataFrame) -> dict[str, int]:
    g = int(df["label"].sum())
    return {"pairs": len(df), "genuine": g, "impostor": len(df) - g}


def _train_val_subjects(ds: Dataset, train_val_fraction: float,
                        own: dict[str, Any] | None = None, **split: Any) -> Dataset:
    """The dataset restricted to the subjects its partition trains and validates on (its own
    train and val subjects where it has own splits)."""
    if own is not None:
        keep = set(own.get("train", [])) | set(own.get("val", []))
    else:
        keep = set(train_val_test(ds.subjects, train_val_fraction, **split)[0])
    if len(keep) < 4:
        raise InputError(f"{ds.root}: {len(keep)} train+validation subjects; an inner partition "
                         f"needs at least 4 (to hold some out)")
    return replace(ds, subjects=[s for s in ds.subjects if s in keep],
                   images=[im for im in ds.images if im.subject in keep],
                   excluded={k: [e for e in v if e.get("subject") in keep]
                             for k, v in ds.excluded.items()})


def partition(
    dataset_or_root: Dataset | str | Path,
    protocol: str = "thesis",
    max_per_subject: int | None = 20,
    seed: int = 2021,
    train_val_fraction: float = 0.8,
    val_size: float = 0.2,
    verify: bool = True,
    inner: bool = False,
    split_seed: int | None = None,
    folds: int = 0,
    fold: int = 0,
    pairs_per_subject: int | None = None,
) -> Partition:
    """The train / validation / test pairs of a dataset (or of the tree at a path) under
    `protocol` (module docstring): the thesis's, by default.

    `inner`: the partition of this partition's train+validation subjects alone, split again
    the same way (its test pairs are of training subjects held out of its training; the
    dataset's own test subjects are not in it): what :mod:`mfr.study.search` scores settings on.

    `split_seed`, `folds`, `fold`: repeated subject splits (:mod:`mfr.data.subject_splits`);
    `pairs_per_subject`: protocol identity's cap of genuine pairs per identity (None: all).

    `verify` reads the header of each selected file and lists unreadable or corrupt ones in
    `excluded["files"]`. Protocol `thesis` keeps them, since the thesis selected files by name
    (its glob; the image cache later skips them and drops their pairs), so the pair counts are
    the thesis's; the others skip them and let the next file take the place.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if not 0.0 < train_val_fraction <= 1.0 or not 0.0 < val_size < 1.0:
        raise InputError("train_val_fraction must be in (0, 1] and val_size in (0, 1)")
    check_split_options(split_seed, folds, fold)
    if pairs_per_subject is not None and (isinstance(pairs_per_subject, bool) or not isinstance(
            pairs_per_subject, int) or pairs_per_subject < 0):
        raise InputError(f"pairs_per_subject must be None or an integer >= 0 (0: all), got "
                         f"{pairs_per_subject!r}")
    if pairs_per_subject and protocol != "identity":
        raise InputError(f"pairs_per_subject caps the genuine pairs of protocol identity, not "
                         f"of {protocol}")
    split = split_params(split_seed, folds, fold)
    ds = dataset_or_root if isinstance(dataset_or_root, Dataset) else load_dataset(
        dataset_or_root, patterns=protocol)
    spec = get_dataset(ds.layout)
    own = spec.own_splits(ds) if spec.own_splits is not None else None
    if own is not None and split:
        raise InputError(f"{ds.root}: {ds.layout} has its own subject splits (its "
                         f"{', '.join(own)} folders); split_seed and folds do not apply to it")
    unknown: list[dict[str, Any]] = []
    if protocol in MASKED_VS_UNMASKED:
        unknown = require_mask_flags(ds, f"protocol {protocol}")
        if own is not None:
            raise InputError(f"{ds.root}: {ds.layout}'s own subject splits are read by protocol "
                             f"identity; protocol {protocol} splits subjects itself")
    if inner:
        ds = _train_val_subjects(ds, train_val_fraction, own, **split)
        own = None
    params = {"protocol": protocol, "max_per_subject": max_per_subject, "seed": seed,
              "train_val_fraction": train_val_fraction, "val_size": val_size,
              "layout": ds.layout, "verify": verify, "patterns": list(ds.patterns),
              "ignore_case": ds.ignore_case, **({"inner": True} if inner else {}), **split}
    if protocol == "identity":
        # its pair tables' unmasked_path / masked_path hold a first and a second image (path
        # order; the unmasked first where both flags are known and differ): not mask sides
        params.update(pairs_per_subject=pairs_per_subject, mask_sides=False)
        if own is not None:
            params["subject_split"] = "own"
        train, val, test, stats, excluded, tv_unmasked = _identity(
            ds, own, max_per_subject, seed, train_val_fraction, val_size, verify, split,
            pairs_per_subject)
    else:
        train, val, test, stats, excluded, tv_unmasked = _masked_vs_unmasked(
            ds, protocol, max_per_subject, seed, train_val_fraction, val_size, verify, split,
            unknown)
    own_pairs = {}
    for name in spec.partition_pair_sets:  # the tree's own pair sets (MFR2's pairs.txt)
        if name in SPLITS:
            raise InputError(f"dataset {spec.name}: its own pair set may not be named {name!r} "
                             f"(a split's name)")
        own_pairs[name] = theirs = spec.own_pairs(name, ds.root)
        stats[name] = {**_pair_stats(theirs), **theirs.attrs.get("stats", {})}
    problems = class_warnings({"train": train, "val": val, "test": test, **own_pairs})
    for w in problems:
        warnings.warn(w, stacklevel=2)
    if problems:
        stats["warnings"] = problems
    return Partition(train, val, test, stats, excluded, ds.root, ds.layout, protocol, params,
                     own_pairs=own_pairs, train_val_unmasked=tv_unmasked)


def _excluded(ds: Dataset, bad: list[dict[str, Any]], beyond: dict[str, Any],
              chosen: dict[str, dict[str, list[FaceImage]]]) -> dict[str, Any]:
    """What the partition left out: the dataset's exclusions, the unreadable files, the files
    beyond the cap, and an entry per subject and side with no image (`chosen`: side ->
    subject -> images)."""
    excluded: dict[str, Any] = {
        "subjects": list(ds.excluded.get("subjects", [])),
        "files": list(ds.excluded.get("files", [])) + bad,
        "beyond_cap": beyond,
    }
    listed = {(e["subject"], e["side"]) for e in excluded["subjects"]}
    for side, picked in chosen.items():
        for s in ds.subjects:
            if not picked[s] and (s, side) not in listed:
                excluded["subjects"].append({
                    "subject": s, "side": side,
                    "reason": f"no readable {side} image" if side != "all" else
                    "no readable image",
                    "action": (f"kept: counts as a subject of its split; no {side} images, "
                               "so no genuine pairs; its other side's images still pair"
                               if side != "all" else "kept: counts as a subject of its "
                               "split; no pairs"),
                    "files": 0,
                })
    excluded["subjects"].sort(key=lambda e: (e["subject"], e["side"]))
    excluded["files"].sort(key=lambda e: e["path"])
    return excluded


def _masked_vs_unmasked(ds: Dataset, protocol: str, max_per_subject: int | None, seed: int,
                        train_val_fraction: float, val_size: float, verify: bool,
                        split: dict[str, Any], unknown: list[dict[str, Any]]) -> tuple:
    """Protocols thesis, balanced and all_pairs: every unmasked x masked pair in a split."""
    unmasked, masked, bad, beyond = select_images(
        ds, max_per_subject, verify=verify, on_corrupt="keep" if protocol == "thesis" else "skip")
    excluded = _excluded(ds, bad + unknown, {"max_per_subject": max_per_subject,
                                             "unmasked_files": beyond["unmasked"],
                                             "masked_files": beyond["masked"]},
                         {"unmasked": unmasked, "masked": masked})
    tv_subjects, te_subjects = train_val_test(ds.subjects, train_val_fraction, **split)
    tv = _Split(tv_subjects, unmasked, masked)
    te = _Split(te_subjects, unmasked, masked)

    # train / validation
    gen_tr, gen_va = _split(tv.genuine, val_size, seed)
    imp_tr, imp_va = _split(tv.impostors(), val_size, seed)
    k_tr = _shuffle(np.concatenate([gen_tr, imp_tr[: len(gen_tr)]]), seed)
    k_va = _shuffle(np.concatenate([gen_va, imp_va[: len(gen_va)]]), seed)
    del imp_tr, imp_va
    # test
    n_gen = len(te.genuine)
    if protocol == "thesis":
        k_te = np.concatenate([te.genuine, te.impostors(limit=n_gen)])
    elif protocol == "balanced":
        all_imp = te.impostors()
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(all_imp), size=min(n_gen, len(all_imp)), replace=False))
        k_te = np.concatenate([te.genuine, all_imp[pick]])
    else:  # all_pairs: every unmasked x masked pair, in enumeration order
        k_te = np.arange(te.n_u * te.n_m, dtype=np.int64)
    train, val = tv.frame(k_tr), tv.frame(k_va)
    test = te.frame(k_te)

    stats = {
        "train_val": tv.stats(), "test": te.stats(),
        "train": _pair_stats(train), "val": _pair_stats(val), "test_pairs": _pair_stats(test),
        "excluded": excluded,
    }
    if split or protocol == "all_pairs":
        stats["split_subjects"] = {"train_val": tv_subjects, "test": te_subjects}
    return (train, val, test, stats, excluded,
            {s: unmasked[s] for s in tv.subjects})


def _image_stats(chosen: dict[str, list[FaceImage]], subjects: list[str]) -> dict[str, int]:
    ims = [im for s in subjects for im in chosen[s]]
    return {"subjects": len(subjects),
            "unmasked_images": sum(im.masked is not None and not im.masked for im in ims),
            "masked_images": sum(im.masked is not None and bool(im.masked) for im in ims),
            "unknown_mask_images": sum(im.masked is None for im in ims)}


def _identity(ds: Dataset, own: dict[str, Any] | None, max_per_subject: int | None, seed: int,
              train_val_fraction: float, val_size: float, verify: bool, split: dict[str, Any],
              pairs_per_subject: int | None) -> tuple:
    """Protocol identity (:mod:`mfr.data.identity_pairs`) in three subject-disjoint splits."""
    from mfr.data.identity_pairs import identity_pairs

    if own is not None:
        train_s, val_s, test_s = (list(own.get(k, [])) for k in ("train", "val", "test"))
    else:
        tv_s, test_s = train_val_test(ds.subjects, train_val_fraction, **split)
        train_s, val_s = val_subjects(tv_s, val_size, seed)
    chosen, bad, beyond = select_any(ds, max_per_subject, verify)
    excluded = _excluded(ds, bad, {"max_per_subject": max_per_subject, **beyond},
                         {"all": chosen})
    photo_of = get_dataset(ds.layout).photo_of
    frames = {}
    for name, subjects in (("train", train_s), ("val", val_s), ("test", test_s)):
        df = identity_pairs(chosen, subjects, seed, pairs_per_subject, photo_of)
        if name != "test":  # shuffled rows, as the thesis's train and validation pairs
            df = df.iloc[_shuffle(np.arange(len(df)), seed)].reset_index(drop=True)
        frames[name] = df
    stats: dict[str, Any] = {
        "train_val": _image_stats(chosen, train_s + val_s), "test": _image_stats(chosen, test_s),
        "excluded": excluded,
        "split_subjects": {"train": train_s, "val": val_s, "test": test_s},
    }
    for name, subjects in (("train", train_s), ("val", val_s), ("test", test_s)):
        df = frames[name]
        key = "test_pairs" if name == "test" else name
        stats[key] = {**_pair_stats(df), "subjects": len(subjects),
                      "images": sum(len(chosen[s]) for s in subjects),
                      "same_photo_left_out": df.attrs["same_photo_left_out"]}
        if pairs_per_subject:
            stats[key]["genuine_before_cap"] = df.attrs["genuine_before_cap"]
    return frames["train"], frames["val"], frames["test"], stats, excluded, {}


def class_warnings(frames: dict[str, pd.DataFrame]) -> list[str]:
    """One line per pair table with no genuine or no impostor pairs (verification metrics of
    such a split are undefined; the split is then too small or the tree too uneven)."""
    out = []
    for name, df in frames.items():
        n_gen = int((df["label"] == 1).sum())
        n_imp = len(df) - n_gen
        if n_gen == 0 or n_imp == 0:
            out.append(f"{name} split has {n_gen} genuine and {n_imp} impostor pairs: metrics "
                       f"that compare the two (ROC, EER, thresholds) are undefined on it")
    return out


# --------------------------------------------------------------------------------------------
# Table 4.2


_ROWS = (("subjects", "subjects"), ("unmasked images", "unmasked_images"),
         ("masked images", "masked_images"), ("pairs", "pairs"), ("genuine", "genuine"),
         ("impostor", "impostor"))


def _cells(stats: dict[str, Any]) -> dict[str, dict[str, int | None]]:
    """Table 4.2's cells: row -> {Train, Validation, Test}; images are train+val in Train."""
    out = {}
    for label, key in _ROWS:
        if key in ("subjects", "unmasked_images", "masked_images"):
            out[label] = {"Train": stats["train_val"][key], "Validation": None,
                          "Test": stats["test"][key]}
        else:
            out[label] = {"Train": stats["train"][key], "Validation": stats["val"][key],
                          "Test": stats["test_pairs"][key]}
    return out


def table_4_2(stats: dict[str, Any]) -> pd.DataFrame:
    """Table 4.2: thesis beside this run (image rows count train+validation under Train)."""
    run, thesis = _cells(stats), _cells(THESIS_TABLE_4_2)
    cols = pd.MultiIndex.from_product([["Train", "Validation", "Test"], ["thesis", "run"]])
    rows = []
    for label, _ in _ROWS:
        rows.append([v for split in ("Train", "Validation", "Test")
                     for v in (thesis[label][split], run[label][split])])
    df = pd.DataFrame(rows, index=[r for r, _ in _ROWS], columns=cols)
    return df.astype("Int64")


def matches_thesis(stats: dict[str, Any]) -> bool:
    return all(stats[k] == THESIS_TABLE_4_2[k] for k in TABLE_KEYS)


def table_4_2_markdown(stats: dict[str, Any], title: str | None = None) -> str:
    run, thesis = _cells(stats), _cells(THESIS_TABLE_4_2)

    def cell(split: str, label: str) -> str:
        r, t = run[label][split], thesis[label][split]
        if r is None:
            return ""
        return f"{r}" if r == t else f"{r} (thesis {t})"

    splits = ("Train", "Validation", "Test")
    table = pd.DataFrame([[label, *(cell(s, label) for s in splits)] for label, _ in _ROWS],
                         columns=["", *splits])
    lines = [f"# {title}", ""] if title else []
    lines.append(table.to_markdown(index=False, disable_numparse=True))
    ok = matches_thesis(stats)
    lines += ["", "Subject and image rows: Train counts train+validation together (as the "
              "thesis's table)."]
    unknown = [stats[k].get("unknown_mask_images", 0) for k in ("train_val", "test")]
    if any(unknown):
        lines += ["", f"Images with no mask flag (counted in neither image row): {unknown[0]} "
                  f"train+validation, {unknown[1]} test."]
    if stats.get("split_subjects") and "train" in stats["split_subjects"]:
        n = {k: len(v) for k, v in stats["split_subjects"].items()}
        lines += ["", f"Subjects apart in each split: {n['train']} train, {n['val']} validation, "
                  f"{n['test']} test (the pairs of a split are of its subjects alone)."]
    syn = stats.get("synthetic")
    if syn:
        lines += ["", f"Train pairs include {syn['pairs']} with a synthetic masked image "
                  f"({syn['genuine']} genuine, {syn['impostor']} impostor; synthetic_masks "
                  f"{syn['mode']}: {syn['masked_images']} synthetic masked images of "
                  f"{syn['sources']} train+validation unmasked images, {syn['failed']} not "
                  f"masked; {syn['same_source_excluded']} same-source pairs left out); "
                  f"{syn['real_pairs']} train pairs are real. Validation and test pairs are "
                  f"all real."]
    lines += ["", "Matches the thesis's Table 4.2: " + ("yes" if ok else
              "no (a cell reads `run (thesis value)` where they differ)")]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# files


def partition_fingerprint(root: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """What a partition's pairs depend on: the dataset folder, a listing of its files (names,
    sizes, modification times) and the protocol's settings (:mod:`mfr.core.provenance`); an inner
    partition (of the train+validation subjects alone) says so, so that neither folder is
    ever taken for the other."""
    root = Path(root).resolve()
    keys = ("protocol", "max_per_subject", "seed", "train_val_fraction", "val_size", "verify")
    settings = {k: params[k] for k in keys}
    if params.get("inner"):
        settings["inner"] = True
    # given only where they differ from the thesis's split: a partition of before keeps its
    # fingerprint
    settings.update(split_params(params.get("split_seed"), params.get("folds", 0),
                                 params.get("fold", 0)))
    if params["protocol"] == "identity":
        settings["pairs_per_subject"] = params.get("pairs_per_subject")
    if params.get("synthetic_masks", "none") != "none":  # none: the fingerprint of before
        settings.update({k: params[k] for k in SYNTHETIC_KEYS})
    return {"data_root": str(root), "data": listing_digest(root), "settings": settings}


def write_partition(part: Partition, out_dir: str | Path, config: Any = None) -> dict[str, Path]:
    """Write the pair CSVs (train/val/test, and the dataset's own pair sets), stats.json,
    table_4_2.md, each atomically, then run.json (:func:`mfr.core.provenance.complete`) last;
    run.json names the own pair sets (``own_pair_sets``) where there are some."""
    out = Path(out_dir)
    paths = {}
    for name, df in part.frames.items():
        paths[name] = write_csv(out / f"{name}.csv", df)
    paths["stats"] = write_json(out / "stats.json", part.stats)
    paths["table"] = write_text(
        out / "table_4_2.md",
        table_4_2_markdown(part.stats, title=f"Table 4.2 ({part.layout}, protocol "
                                             f"{part.protocol})"))
    outputs = [p.name for p in paths.values()]
    extra = {}
    if part.data_root is not None:  # pair paths are relative to it; the dataset is recorded too
        outputs += [p for p in SYNTHETIC_OUTPUTS if (out / p).is_file()]
        extra["dataset_root"] = str(Path(part.root).resolve())
    if part.own_pairs:  # where the pair readers find them (mfr.data.pairs.own_pair_sets)
        extra["own_pair_sets"] = list(part.own_pairs)
    data_root = Path(part.data_root if part.data_root is not None else part.root)
    paths["run"] = provenance.complete(
        out, "partition", partition_fingerprint(part.root, part.params),
        outputs=outputs, config=config,
        data_root=str(data_root.resolve()), layout=part.layout, partition=part.params, **extra)
    return paths
