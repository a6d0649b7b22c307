"""Training with synthetic masks: masked partners drawn on the training subjects' own unmasked
images (issue 19), added to the real masked ones or replacing them; validation and test pairs
stay real.

A partition made with ``synthetic_masks: add`` or ``replace`` (:func:`add_synthetic_partners`,
called by :func:`mfr.study.steps.partition_step`) holds, besides its pair tables::

    synthetic_sources/<subject>/<file>   links to the train+validation subjects' selected
                                         unmasked images (what is masked; nothing else is)
    synthetic_masks/                     `mfr mask`'s tree of them (:func:`mfr.data.masks.mask_tree`:
                                         masks.csv, failed.csv, its own run.json, reused
                                         while its sources and settings are the same)
    data/                                the data root the pair paths are relative to: a link
                                         to each entry of the dataset's root (so every real
                                         pair path reads as before) and ``synthetic`` -> the
                                         synthetic masked images

Pair paths of synthetic images are ``synthetic/<subject>/<file>``; every other path is the
dataset's own, so val.csv and test.csv are byte for byte those of ``synthetic_masks: none``,
and everything after the partition (the image cache, embed, train, evaluate) reads ``data/``
as any data root: the partition's run.json records it as ``data_root`` (and the dataset's
own root as ``dataset_root``, so that ``--data-root DATASET`` still finds ``data/``:
:func:`mfr.study.steps.inputs.resolve_data_root`). Links keep the photos where they are
(nothing copied but what `mfr mask` copies into its own tree).

Only the train+validation subjects (the first ``train_val_fraction``, who never appear in
test) are masked, and only their selected images (``max_per_subject``). Their synthetic pairs
follow the real ones' rules: every unmasked x synthetic masked pair of the train+validation
subjects, genuine when the subjects agree, then as many impostor pairs drawn uniformly
(seeded) as there are genuine ones; all of them go to train (validation stays real). Left out:
each synthetic image paired with its own unmasked source (the same photo, masked and not), a
genuine pair real masked photos never give; how many is counted in stats.json
(``synthetic.same_source_excluded``). ``add``: the real train pairs plus these; ``replace``:
these alone. The train table is then shuffled (``random_state`` = seed).
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.errors import InputError
from mfr.data.datasets import FaceImage
from mfr.data.partition import SYNTHETIC_KEYS, Partition, _pair_stats, _shuffle, _Split

__all__ = ["SYNTHETIC_DIR", "SYNTHETIC_MODES", "add_synthetic_partners", "parse_kinds",
           "same_source_positions", "sample_impostors"]

SYNTHETIC_MODES = ("none", "add", "replace")
#: the prefix of synthetic images' pair paths, a folder of the partition's data root
SYNTHETIC_DIR = "synthetic"
#: the face box the landmarks are taken from: MTCNN's, or the whole crop where it finds none
#: (the datasets are face crops; :func:`mfr.data.masks.find_box`)
DETECTOR = "mtcnn"


def parse_kinds(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"surgical,cloth"`` -> the mask kinds, checked against :data:`mfr.data.masks.MASK_KINDS`
    (InputError naming the field and the known kinds)."""
    from mfr.data.masks import MASK_KINDS

    items = text.split(",") if isinstance(text, str) else list(text)
    kinds = tuple(dict.fromkeys(k.strip() for k in items if k.strip()))
    bad = [k for k in kinds if k not in MASK_KINDS]
    if bad or not kinds:
        raise InputError(f"config key synthetic_kinds: expected a comma-separated list of "
                         f"{', '.join(MASK_KINDS)}, got {text!r}")
    return kinds


def sample_impostors(split: _Split, genuine: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` impostor positions of `split`'s enumeration, drawn uniformly without replacement
    (seeded), ascending; all of them when there are fewer. `genuine`: the split's genuine
    positions, ascending.

    Impostors are never listed: the r-th impostor (in enumeration order) sits at
    r + (number of genuine positions before it), found by a search over the genuine positions
    less their rank, so memory stays that of the genuine pairs."""
    total = split.n_u * split.n_m
    n_imp = total - len(genuine)
    n = min(int(n), n_imp)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    ranks = np.sort(np.random.default_rng(seed).choice(n_imp, size=n, replace=False))
    shifted = genuine - np.arange(len(genuine), dtype=np.int64)  # non-decreasing
    return (ranks + np.searchsorted(shifted, ranks, side="right")).astype(np.int64)


def same_source_positions(split: _Split, sources: dict[str, str]) -> np.ndarray:
    """Positions of the pairs (unmasked source, its synthetic masked image) in `split`'s
    enumeration, ascending. `sources`: synthetic image path -> its source's pair path."""
    u_row = {p: i for i, p in enumerate(split.u_path)}
    out = [u_row[src] * split.n_m + j for j, p in enumerate(split.m_path)
           if (src := sources.get(p)) is not None and src in u_row]
    return np.sort(np.asarray(out, dtype=np.int64))


def _sources(part: Partition) -> dict[str, str]:
    """``<subject>/<file>`` (a link's path under ``synthetic_sources``) -> the pair path of
    each selected train+validation unmasked image."""
    linked: dict[str, str] = {}
    for subject, images in part.train_val_unmasked.items():
        for im in images:
            rel = f"{subject}/{Path(im.path).name}"
            if rel in linked:
                raise InputError(f"{part.root}: two unmasked images of subject {subject!r} are "
                                 f"named {Path(im.path).name!r} ({linked[rel]}, {im.path}); "
                                 f"synthetic masks need one name per image")
            linked[rel] = im.path
    return linked


def _link_sources(dataset_root: Path, linked: dict[str, str], folder: Path) -> None:
    """`folder`/<subject>/<file>: a link to each image of `linked`."""
    if folder.exists():
        shutil.rmtree(folder)
    for rel, path in linked.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(dataset_root / path, folder / rel)


def _link_data_root(dataset_root: Path, masked_tree: Path, data: Path) -> None:
    """`data`: a link to each entry of the dataset's root and ``synthetic`` -> `masked_tree`."""
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    for entry in sorted(dataset_root.iterdir()):
        if entry.name == SYNTHETIC_DIR:
            raise InputError(f"{entry}: the dataset has an entry named {SYNTHETIC_DIR!r}, the "
                             f"folder synthetic masks are read from; rename it")
        os.symlink(entry.resolve(), data / entry.name)
    os.symlink(os.path.relpath(masked_tree, data), data / SYNTHETIC_DIR)


def add_synthetic_partners(part: Partition, out_dir: str | Path, mode: str, kinds: Sequence[str],
                           seed: int, refresh: bool = True, progress: bool = False) -> Partition:
    """`part` with synthetic masked partners in its train pairs (module docstring), their
    images made (or reused) under `out_dir`; `part` itself when `mode` is "none".

    `refresh`: (re)make the links (off for a partition folder already complete, which others
    may be reading; then only what is missing is made)."""
    from mfr.data.datasets.rmfrd import MASKED_DIR, RMFRD_DIRNAME
    from mfr.data.masks import mask_tree

    if mode not in SYNTHETIC_MODES:
        raise InputError(f"config key synthetic_masks: expected one of "
                         f"{', '.join(SYNTHETIC_MODES)}, got {mode!r}")
    if mode == "none":
        return part
    kinds = parse_kinds(kinds)
    if not part.train_val_unmasked or not any(part.train_val_unmasked.values()):
        raise InputError(f"{part.root}: no unmasked train+validation image to mask")
    out = Path(out_dir)
    dataset_root = Path(part.root).resolve()
    linked = _sources(part)
    if refresh or not (out / "synthetic_sources").is_dir():
        _link_sources(dataset_root, linked, out / "synthetic_sources")
    made = mask_tree(out / "synthetic_sources", out / "synthetic_masks", seed=seed, kinds=kinds,
                     detector=DETECTOR, crop_fallback=True, progress=progress)
    masked_tree = out / "synthetic_masks" / RMFRD_DIRNAME / MASKED_DIR
    if refresh or not (out / "data").is_dir():
        _link_data_root(dataset_root, masked_tree, out / "data")

    prefix = f"{MASKED_DIR}/"
    sources: dict[str, str] = {}
    synthetic: dict[str, list[FaceImage]] = {s: [] for s in part.train_val_unmasked}
    with open(out / "synthetic_masks" / "masks.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            path = f"{SYNTHETIC_DIR}/{row['output'].removeprefix(prefix)}"
            src = linked[row["source"]]
            subject = row["source"].split("/", 1)[0]
            synthetic[subject].append(FaceImage(path, subject, True))
            sources[path] = src
    for images in synthetic.values():
        images.sort(key=lambda im: im.path)

    split = _Split(list(part.train_val_unmasked), part.train_val_unmasked, synthetic)
    same = same_source_positions(split, sources)
    genuine = split.genuine[~np.isin(split.genuine, same)]
    impostors = sample_impostors(split, split.genuine, len(genuine), seed)
    pairs = split.frame(np.concatenate([genuine, impostors]))
    real = part.train if mode == "add" else part.train.iloc[:0]
    train = pd.concat([real, pairs], ignore_index=True)
    train = train.iloc[_shuffle(np.arange(len(train)), seed)].reset_index(drop=True)

    stats: dict[str, Any] = {
        "mode": mode, "kinds": list(kinds), "seed": int(seed),
        "detector": f"{DETECTOR}, the whole crop where it finds no face",
        "sources": len(linked), "masked_images": int(made["masked"]),
        "failed": int(made["failed"]), **_pair_stats(pairs),
        "same_source_excluded": len(same), "real_pairs": len(real),
        "real_pairs_left_out": len(part.train) - len(real),
    }
    part.train = train
    part.stats = {**part.stats, "train": _pair_stats(train), "synthetic": stats}
    part.params = {**part.params, **dict(zip(SYNTHETIC_KEYS, (mode, ",".join(kinds), DETECTOR),
                                             strict=True))}
    part.data_root = out / "data"
    return part
