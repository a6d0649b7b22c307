"""Which subjects a partition trains and validates on, and which it tests on.

By default (the thesis's): the subjects in the dataset's order (sorted), the first
``int(train_val_fraction * n)`` for train+validation and the rest for test. Repeated subject
splits, so that a study can report the spread of its numbers across splits beside the bootstrap
interval of one split:

- ``split_seed``: the subjects in the order ``numpy.random.default_rng(split_seed).permutation``
  first (one split per seed; None: the dataset's order, the thesis's split);
- ``folds`` = k >= 2 and ``fold`` = f: k-fold over subjects: the (ordered) subjects cut into k
  contiguous folds of near-equal size (``numpy.array_split``), fold f (0-based) tested and the
  other k - 1 trained and validated on (``train_val_fraction`` then does not apply). The k
  partitions of one ``split_seed`` test every subject exactly once.

Each split keeps the dataset's subject order. :func:`val_subjects` splits train+validation
subjects again, seeded, for the protocols whose validation subjects are apart from training's
(``identity``). A dataset's own splits (MLFW's folders) take the place of all this; asking for
repeated splits of such a dataset is an error, not a silent choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["check_split_options", "split_params", "train_val_test", "val_subjects"]

#: the largest seed numpy's generators and scikit-learn's random_state take
MAX_SEED = 2**32 - 1


def check_split_options(split_seed: int | None, folds: int, fold: int) -> None:
    """InputError (one line) for options that name no split."""
    if split_seed is not None and (isinstance(split_seed, bool) or not isinstance(split_seed, int)
                                   or not 0 <= split_seed <= MAX_SEED):
        raise InputError(f"split_seed must be None or an integer in 0..{MAX_SEED}, got "
                         f"{split_seed!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 0 or folds == 1:
        raise InputError(f"folds must be 0 (no folds) or an integer >= 2, got {folds!r}")
    if isinstance(fold, bool) or not isinstance(fold, int) or fold < 0 or (
            fold >= folds and (folds or fold)):
        raise InputError(f"fold must be in 0..{max(folds - 1, 0)} (folds {folds}), got {fold!r}")


def split_params(split_seed: int | None = None, folds: int = 0, fold: int = 0) -> dict[str, Any]:
    """The split options that differ from the thesis's split, as a partition records them (and
    its fingerprint holds them): {} for the default, so that a partition of before keeps its
    fingerprint."""
    out: dict[str, Any] = {}
    if split_seed is not None:
        out["split_seed"] = split_seed
    if folds:
        out.update(folds=folds, fold=fold)
    return out


def train_val_test(subjects: Sequence[str], train_val_fraction: float,
                   split_seed: int | None = None, folds: int = 0, fold: int = 0,
                   ) -> tuple[list[str], list[str]]:
    """(train+validation subjects, test subjects), each in the order of `subjects` (module
    docstring)."""
    check_split_options(split_seed, folds, fold)
    subjects = list(subjects)
    order = subjects if split_seed is None else [
        subjects[i] for i in np.random.default_rng(split_seed).permutation(len(subjects))]
    if folds:
        if folds > len(order):
            raise InputError(f"folds {folds}: more folds than subjects ({len(order)})")
        test = set(np.array_split(np.array(order, dtype=object), folds)[fold].tolist())
        tv = [s for s in order if s not in test]
    else:
        n_tv = int(train_val_fraction * len(order))
        tv, test = order[:n_tv], set(order[n_tv:])
    keep = set(tv)
    return [s for s in subjects if s in keep], [s for s in subjects if s in test]


def val_subjects(train_val: Sequence[str], val_size: float, seed: int
                 ) -> tuple[list[str], list[str]]:
    """(train subjects, validation subjects), each in the order of `train_val`: ``ceil(val_size
    * n)`` of them (at most n - 1, so training keeps one) drawn by
    ``default_rng(seed).permutation`` for validation."""
    n = len(train_val)
    n_val = min(math.ceil(val_size * n), max(n - 1, 0))
    pick = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    return ([s for i, s in enumerate(train_val) if i not in pick],
            [s for i, s in enumerate(train_val) if i in pick])
