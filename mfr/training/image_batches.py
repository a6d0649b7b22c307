"""Batches of images with subject ids, for the losses that train on them (triplet, ArcFace,
CosFace, dlib_metric: ``batches="images_with_ids"`` in :mod:`mfr.training.losses`).

The images are those of a split's pairs, both sides (unmasked and masked), each once, with
its subject (:func:`labelled_images`). A batch is P subjects x K images of each
(:func:`pk_sizes`: K = 4 from a batch size of 16 up, else 2; P = batch_size // K, at least 2),
as Hermans et al. 2017 sample them. One epoch (:func:`pk_epoch`), for a seed and an epoch:

1. every subject's images in the order ``rng.permutation``, cut into groups of K; a last,
   short group is topped up with the subject's other images drawn by ``rng.choice`` (with
   replacement where the subject has fewer than K images);
2. the groups in the order ``rng.permutation``, P per batch; the last batch is filled up with
   the epoch's first groups, so every batch holds exactly P x K images (one compiled shape).

``rng = np.random.default_rng([seed, epoch])``, subjects in id order: the batches depend on
(seed, epoch) only, so a resumed run replays the batches of an uninterrupted one. Every image
is in an epoch at least once.
"""

from __future__ import annotations

import numpy as np

from mfr.core.errors import InputError
from mfr.data.pairs import PairSet

__all__ = ["labelled_images", "pk_epoch", "pk_sizes"]


def labelled_images(pairs: PairSet, what: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The unique images of `pairs` (sorted rows), their subject ids (indices into the sorted
    subject names) and the names. InputError when the pairs have no subjects or give one image
    two subjects; `what` names the pairs."""
    if pairs.u_subject is None or pairs.m_subject is None:
        raise InputError(f"{what} pairs: no subject columns (unmasked_subject, masked_subject); "
                         f"this loss trains on images with their subject ids")
    rows = np.r_[pairs.u_idx, pairs.m_idx].astype(np.int64)
    subjects = np.r_[np.asarray(pairs.u_subject, dtype=str), np.asarray(pairs.m_subject, dtype=str)]
    names, ids = np.unique(subjects, return_inverse=True)
    uniq, first = np.unique(rows, return_index=True)
    ids_of = ids[first]
    clash = np.flatnonzero(ids_of[np.searchsorted(uniq, rows)] != ids)
    if clash.size:
        raise InputError(f"{what} pairs: an image is given two subjects "
                         f"({names[ids[clash[0]]]!r} and "
                         f"{names[ids_of[np.searchsorted(uniq, rows[clash[0]])]]!r})")
    return uniq, ids_of.astype(np.int64), [str(n) for n in names]


def pk_sizes(batch_size: int) -> tuple[int, int]:
    """(P subjects, K images each) per batch of `batch_size` images (at least 4)."""
    if batch_size < 4:
        raise InputError(f"batch_size {batch_size}: a loss on images with subject ids takes "
                         f"P >= 2 subjects x K >= 2 images per batch, so at least 4")
    k = 4 if batch_size >= 16 else 2
    return batch_size // k, k


def pk_epoch(ids: np.ndarray, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Positions into `ids` (the images' subject ids) of one epoch's batches, concatenated:
    ``len // (P*K)`` batches of P subjects x K images (module docstring)."""
    ids = np.asarray(ids)
    p, k = pk_sizes(batch_size)
    if len(np.unique(ids)) < 2:
        raise InputError("a loss on images with subject ids needs images of at least 2 subjects")
    rng = np.random.default_rng([int(seed), int(epoch)])
    groups = []
    for s in np.unique(ids):
        mine = np.flatnonzero(ids == s)
        order = mine[rng.permutation(len(mine))]
        for g in range(0, len(order), k):
            group = order[g:g + k]
            if len(group) < k:
                rest = np.setdiff1d(mine, group)
                pool = rest if len(rest) else mine
                group = np.r_[group, rng.choice(pool, k - len(group),
                                                replace=len(pool) < k - len(group))]
            groups.append(group)
    groups = [groups[i] for i in rng.permutation(len(groups))]
    short = -len(groups) % p
    groups += [groups[i % len(groups)] for i in range(short)]
    return np.concatenate(groups).astype(np.int64)
