"""Identity hygiene: people who appear in two datasets (or two splits of one), found by name.

A study that trains on one dataset and tests on another must test on other people: MLFW holds
LFW's people, and a person of MFR2 or RMFRD who is also in LFW would be seen in training and
tested on. :func:`shared_identities` lists the identities whose names agree once normalised
(:func:`name_key`: accents dropped, case folded, everything but letters and digits dropped, so
``Ben_Affleck``, ``BenAffleck`` and ``ben affleck`` agree) or agree up to the order of their
parts (:func:`name_variants`: ``Liu_Ye``, ``Ye Liu`` and ``yeliu`` agree; parts come from
separators and from capitals, ``BenAffleck`` -> ben, affleck; a name without separators, like
RMFRD's pinyin folders, is one part and matches another's parts in any order).
`mfr data overlap ROOT ROOT ...` prints them.

Names are a first filter only. They miss a person filed under another spelling or
transliteration (RMFRD's pinyin without separators against LFW's ``Family_Given``), and a
dataset whose identities are numbers (M2FRED) cannot be checked by name at all; they flag
namesakes who are other people. What settles it is the faces: near-duplicate embeddings of a
face network across the two datasets (every cross-dataset pair of images whose distance is
below a strict threshold, reviewed by eye), which needs the network, not the names.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from mfr.data.datasets import Dataset, get_dataset

__all__ = ["dataset_identities", "name_key", "name_parts", "name_variants", "shared_identities"]

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _plain(name: str) -> str:
    """Accents dropped (NFKD, combining marks removed)."""
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


def name_key(name: str) -> str:
    """A name for comparing: accents dropped, case folded, only letters and digits kept."""
    return "".join(c for c in _plain(name).casefold() if c.isalnum())


def name_parts(name: str) -> tuple[str, ...]:
    """The parts of a name, in order: split at separators and at a capital after a small
    letter, each part as :func:`name_key`."""
    parts = re.split(r"[^0-9A-Za-z]+", _CAMEL.sub(" ", _plain(name)))
    return tuple(k for p in parts if (k := name_key(p)))


def name_variants(name: str) -> set[str]:
    """The name's parts joined in every order (up to four parts; more: as written)."""
    parts = name_parts(name)
    if len(parts) > 4:
        return {"".join(parts)}
    return {"".join(p) for p in itertools.permutations(parts)}


def dataset_identities(dataset: Dataset) -> dict[str, str | None]:
    """Identity -> its split (a dataset's own splits: MLFW's train/val/test) or None: its
    subjects and the identities its loader left out (they are in the tree all the same)."""
    spec = get_dataset(dataset.layout)
    own = spec.own_splits(dataset) if spec.own_splits is not None else None
    where = {s: split for split, subjects in (own or {}).items() for s in subjects}
    names = {*dataset.subjects, *(e["subject"] for e in dataset.excluded.get("subjects", [])
                                  if e.get("subject"))}
    return {n: where.get(n) for n in sorted(names)}


def shared_identities(datasets: Mapping[str, Dataset]) -> dict[str, Any]:
    """The identities of two or more groups (a dataset, or a split of a dataset with its own
    splits) whose names agree (:func:`name_key`: ``match`` "same name") or agree up to the order
    of their parts (:func:`name_variants`: "same name parts, other order").
    `datasets`: label -> dataset. Returns ``matches`` (each: ``match``, ``key``, ``identities``:
    [{dataset, split, name}]), ``unnamed`` (the labels whose identities are all numbers: not
    checkable by name) and ``identities`` per label."""
    entries = []  # (label, split, name)
    unnamed = []
    for label, ds in datasets.items():
        ids = dataset_identities(ds)
        if ids and all(name_key(n).isdigit() for n in ids):
            unnamed.append(label)
            continue
        entries += [(label, split, n) for n, split in ids.items()]
    matches, seen = [], set()
    for kind, keys_of in (("same name", lambda n: {name_key(n)}),
                          ("same name parts, other order", name_variants)):
        groups: dict[str, list[tuple[str, str | None, str]]] = {}
        for e in entries:
            for k in keys_of(e[2]):
                if k:
                    groups.setdefault(k, []).append(e)
        for k, members in sorted(groups.items()):
            members = sorted(set(members), key=lambda e: (e[0], e[1] or "", e[2]))
            who = frozenset(members)
            if len({(lab, split) for lab, split, _ in members}) < 2 or who in seen:
                continue  # one group only, or listed already (as the same name)
            seen.add(who)
            matches.append({"match": kind, "key": k,
                            "identities": [{"dataset": lab, "split": split, "name": n}
                                           for lab, split, n in members]})
    return {"matches": matches, "unnamed": unnamed,
            "identities": {label: len(dataset_identities(ds)) for label, ds in datasets.items()}}
