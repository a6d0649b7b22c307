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
from mfr.data.datasets import Dataset, FaceImage, check_image, get_dataset, load_dataset
from mfr.data.pairs import COLUMNS, SPLITS

PROTOCOLS = ("thesis", "balanced")
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
    cap = None if max_per_subject is None or max_per_subject <= 0 else int(max_per_subject)
    sides = {False: dataset.by_subject(False), True: dataset.by_subject(True)}
    chosen: dict[bool, dict[str, list[FaceImage]]] = {False: {}, True: {}}
    bad: list[dict[str, Any]] = []
    beyond = {"unmasked": 0, "masked": 0}
    for masked in (False, True):
        for s in subjects:
            picked: list[FaceImage] = []
            cands = sorted(sides[masked].get(s, []), key=lambda im: im.path)
            for k, im in enumerate(cands):
                if cap is not None and len(picked) >= cap:
                    beyond["masked" if masked else "unmasked"] += len(cands) - k
                    break
                why = check_image(dataset.abspath(im)) if verify else None
                if why is None or on_corrupt == "keep":
                    picked.append(im)
                if why is not None:
                    bad.append({"path": im.path, "subject": s, "reason": why, "action": (
                        "kept: selected by file name, as the thesis's glob did; the image cache "
                        "skips it and drops its pairs" if on_corrupt == "keep" else
                        "skipped; the next file in sorted order takes its place")})
            chosen[masked][s] = picked
    return chosen[False], chosen[True], bad, beyond


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


def _train_val_subjects(ds: Dataset, train_val_fraction: float) -> Dataset:
    """The dataset restricted to the subjects its partition trains and validates on."""
    keep = set(ds.subjects[:int(train_val_fraction * len(ds.subjects))])
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
) -> Partition:
    """The thesis's train / validation / test pairs of a dataset (or of the tree at a path).

    `inner`: the partition of this partition's train+validation subjects alone, split again
    the same way (its test pairs are of training subjects held out of its training; the
    dataset's own test subjects are not in it): what :mod:`mfr.study.search` scores settings on.

    `verify` reads the header of each selected file and lists unreadable or corrupt ones in
    `excluded["files"]`. Protocol `thesis` keeps them, since the thesis selected files by name
    (its glob; the image cache later skips them and drops their pairs), so the pair counts are
    the thesis's; `balanced` skips them and lets the next file take the place.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if not 0.0 < train_val_fraction <= 1.0 or not 0.0 < val_size < 1.0:
        raise InputError("train_val_fraction must be in (0, 1] and val_size in (0, 1)")
    ds = dataset_or_root if isinstance(dataset_or_root, Dataset) else load_dataset(
        dataset_or_root, patterns=protocol)
    if inner:
        ds = _train_val_subjects(ds, train_val_fraction)
    unmasked, masked, bad, beyond = select_images(
        ds, max_per_subject, verify=verify, on_corrupt="keep" if protocol == "thesis" else "skip")

    excluded: dict[str, Any] = {
        "subjects": list(ds.excluded.get("subjects", [])),
        "files": list(ds.excluded.get("files", [])) + bad,
        "beyond_cap": {"max_per_subject": max_per_subject, "unmasked_files": beyond["unmasked"],
                       "masked_files": beyond["masked"]},
    }
    listed = {(e["subject"], e["side"]) for e in excluded["subjects"]}
    for side, chosen in (("unmasked", unmasked), ("masked", masked)):
        for s in ds.subjects:
            if not chosen[s] and (s, side) not in listed:
                excluded["subjects"].append({
                    "subject": s, "side": side, "reason": f"no readable {side} image",
                    "action": (f"kept: counts as a subject of its split; no {side} images, "
                               "so no genuine pairs; its other side's images still pair"),
                    "files": 0,
                })
    excluded["subjects"].sort(key=lambda e: (e["subject"], e["side"]))
    excluded["files"].sort(key=lambda e: e["path"])

    n_tv = int(train_val_fraction * len(ds.subjects))
    tv = _Split(ds.subjects[:n_tv], unmasked, masked)
    te = _Split(ds.subjects[n_tv:], unmasked, masked)

    # train / validation
    gen_tr, gen_va = _split(tv.genuine, val_size, seed)
    imp_tr, imp_va = _split(tv.impostors(), val_size, seed)
    k_tr = _shuffle(np.concatenate([gen_tr, imp_tr[: len(gen_tr)]]), seed)
    k_va = _shuffle(np.concatenate([gen_va, imp_va[: len(gen_va)]]), seed)
    del imp_tr, imp_va
    # test
    n_gen = len(te.genuine)
    if protocol == "thesis":
        imp_te = te.impostors(limit=n_gen)
    else:
        all_imp = te.impostors()
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(all_imp), size=min(n_gen, len(all_imp)), replace=False))
        imp_te = all_imp[pick]
    train, val = tv.frame(k_tr), tv.frame(k_va)
    test = te.frame(np.concatenate([te.genuine, imp_te]))

    stats = {
        "train_val": tv.stats(), "test": te.stats(),
        "train": _pair_stats(train), "val": _pair_stats(val), "test_pairs": _pair_stats(test),
        "excluded": excluded,
    }
    params = {"protocol": protocol, "max_per_subject": max_per_subject, "seed": seed,
              "train_val_fraction": train_val_fraction, "val_size": val_size,
              "layout": ds.layout, "verify": verify, "patterns": list(ds.patterns),
              "ignore_case": ds.ignore_case, **({"inner": True} if inner else {})}
    spec = get_dataset(ds.layout)
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
                     own_pairs=own_pairs,
                     train_val_unmasked={s: unmasked[s] for s in tv.subjects})


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
