"""Pairs by identity, whatever the mask (the partition's ``identity`` protocol): for training and
validation on a dataset of many identities, such as MLFW, whose images carry no mask flag.

In one split (its subjects, each with its selected images in path order):

- **genuine**: two photos of one identity, every unordered pair of its images but two
  versions of one photo (``photo_of``: MLFW's ``<Name>_<i>_<k>`` are versions k of LFW photo i,
  the same photo with another mask: left out, counted); where ``pairs_per_subject`` is set and
  an identity has more pairs than that, ``pairs_per_subject`` of them: first pairs that cover
  its images (disjoint pairs along a permutation of its images, an odd one out paired with the
  first; those of one photo dropped), then a sample of the others; drawn by
  ``default_rng([seed, <digest of the identity's name>])``, so an identity's pairs do not change
  when other identities come or go;
- **impostor**: as many as genuine (balanced): images of two identities. The anchors go round
  the split's images in a permutation (``default_rng([seed, 1])``) that puts the images in no
  genuine pair first (an identity's only photo), so every image is an anchor about equally
  often, and each is in some pair once there are as many impostor pairs as such images; each
  anchor's partner is an image of another identity drawn by the same generator, uniformly
  among those it is not yet paired with. Fewer when the split holds fewer distinct impostor
  pairs.

Within a pair, the unmasked image comes first (``unmasked_path``) where the two flags are known
and differ; else the two are in path order, so the columns ``unmasked_path`` / ``masked_path``
read "first image" / "second image" here. Each pair once, either order. Every image of an
identity with two or more photos is in a genuine pair (all pairs, or the covering ones first
within the cap), and the others are the first impostor anchors: the image-batch losses (:mod:`mfr.training.image_batches`), which take a split's images
and subjects from its pairs, see them.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mfr.data.datasets import FaceImage
from mfr.data.pairs import COLUMNS

__all__ = ["identity_pairs"]

#: tries of a random partner before an anchor's free partners are listed (the exact fallback)
_TRIES = 16


def _name_key(name: str) -> int:
    """A stable 64-bit number of a subject's name (seeds its own generator)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()[:8],
                          "little")


def _genuine(photos: list[str], cap: int | None, rng: np.random.Generator
             ) -> list[tuple[int, int]]:
    """Positions (i < j) of the genuine pairs of an identity whose images are of `photos`
    (two of one photo never pair), sorted."""
    n = len(photos)
    every = [(i, j) for i, j in itertools.combinations(range(n), 2) if photos[i] != photos[j]]
    if cap is None or len(every) <= cap:
        return every
    perm = rng.permutation(n).tolist()
    cover = [(perm[t], perm[t + 1]) for t in range(0, n - 1, 2)]
    if n % 2:
        cover.append((perm[-1], perm[0]))
    cover = [(min(a, b), max(a, b)) for a, b in cover if photos[a] != photos[b]]
    taken = set(cover)
    rest = [p for p in every if p not in taken]
    rest = [rest[k] for k in rng.permutation(len(rest))]
    return sorted((cover + rest)[:cap])


def _oriented(a: FaceImage, b: FaceImage) -> tuple[FaceImage, FaceImage]:
    """The unmasked image first where both flags are known and differ; else path order."""
    if a.masked is not None and b.masked is not None and bool(a.masked) != bool(b.masked):
        return (b, a) if a.masked else (a, b)
    return (a, b) if a.path <= b.path else (b, a)


def identity_pairs(chosen: dict[str, list[FaceImage]], subjects: Sequence[str], seed: int,
                   pairs_per_subject: int | None = None,
                   photo_of: Callable[[str], str] | None = None) -> pd.DataFrame:
    """The genuine then the impostor pairs of one split (module docstring): columns
    :data:`mfr.data.pairs.COLUMNS`. `chosen`: each subject's selected images; `subjects`: the
    split's, in order; `pairs_per_subject`: None or 0 for every genuine pair; `photo_of`: the
    photo an image path is a version of (None: each image its own photo). ``attrs``:
    ``genuine_before_cap`` and ``same_photo_left_out`` (pairs of two versions of one photo)."""
    cap = pairs_per_subject or None
    photo = photo_of or (lambda path: path)
    same_photo = 0
    before_cap = 0
    images: list[FaceImage] = [im for s in subjects for im in chosen.get(s, [])]
    code = {s: c for c, s in enumerate(subjects)}
    subj = np.array([code[im.subject] for im in images], dtype=np.int64)
    rows: list[tuple[FaceImage, FaceImage, int]] = []
    where = {id(im): k for k, im in enumerate(images)}
    for s in subjects:
        mine = chosen.get(s, [])
        rng = np.random.default_rng([seed, _name_key(s)])
        photos = [photo(im.path) for im in mine]
        n_pairs = len(mine) * (len(mine) - 1) // 2
        n_diff = sum(a != b for a, b in itertools.combinations(photos, 2))
        same_photo += n_pairs - n_diff
        before_cap += n_diff
        rows += [(mine[i], mine[j], 1) for i, j in _genuine(photos, cap, rng)]
    n_gen = len(rows)
    n_img = len(images)
    sizes = np.bincount(subj, minlength=len(subjects)) if n_img else np.zeros(0, np.int64)
    space = (n_img * n_img - int((sizes * sizes).sum())) // 2
    target = min(n_gen, space)
    used: set[tuple[int, int]] = set()
    rng = np.random.default_rng([seed, 1])
    paired = {where[id(im)] for x, y, _ in rows for im in (x, y)}
    perm = rng.permutation(n_img).tolist() if n_img else []
    anchors = [k for k in perm if k not in paired] + [k for k in perm if k in paired]
    t, idle = 0, 0
    while len(used) < target:
        a = anchors[t % n_img]
        t += 1
        partner = None
        for _ in range(_TRIES):
            b = int(rng.integers(n_img))
            if subj[b] != subj[a] and (min(a, b), max(a, b)) not in used:
                partner = b
                break
        if partner is None:  # few free partners left: list them
            free = [b for b in np.flatnonzero(subj != subj[a]).tolist()
                    if (min(a, b), max(a, b)) not in used]
            if free:
                partner = free[int(rng.integers(len(free)))]
        if partner is None:
            idle += 1
            if idle >= n_img:  # a full round without a free pair (cannot happen below `space`)
                break
            continue
        idle = 0
        used.add((min(a, partner), max(a, partner)))
        rows.append((images[a], images[partner], 0))
    out = [(*_oriented(x, y), label) for x, y, label in rows]
    df = pd.DataFrame({
        "unmasked_path": [x.path for x, _, _ in out],
        "masked_path": [y.path for _, y, _ in out],
        "label": np.array([label for _, _, label in out], dtype=np.int64),
        "unmasked_subject": [x.subject for x, _, _ in out],
        "masked_subject": [y.subject for _, y, _ in out],
    }, columns=COLUMNS)
    df.attrs["genuine_before_cap"] = before_cap
    df.attrs["same_photo_left_out"] = same_photo
    return df
