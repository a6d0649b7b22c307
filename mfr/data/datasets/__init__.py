"""The face datasets mfr reads, behind one registry (in the manner of timm's ``_registry.py``).

Each dataset is a module of this package holding its :class:`~mfr.data.datasets.common.DatasetSpec`
(``SPEC``): its name and label, the layout of its tree and how that is detected, how its
subjects and images are loaded (with a mask flag per image, or none: MLFW), its own pair sets
(MFR2's pairs.txt; RMFRD's come from the partition), its own subject splits (MLFW's
train/val/test folders), and where it comes from (a download's facts, how to get it by hand,
or a generator). :data:`DATASETS` maps a name to that module: a new dataset is one module and
one line here (a dataset in another's layout, e.g. a generated tree in RMFRD's, names that
layout and reuses its loader).
:func:`register_dataset` adds an entry at run time. The CLI's dataset choices and ``mfr data``
are read from here (:func:`dataset_names`).

:func:`detect_dataset` finds the tree under a folder: each layout looks at the folder itself,
then one level down, then two, and the closest tree wins (at one level, the first layout in
registry order).

The dataset modules are imported when first used: by :func:`get_dataset`, or by a name this
package re-exports from one of them (``from mfr.data.datasets import load_mfr2``, through the
module's ``__getattr__``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from mfr.core.errors import InputError, MissingError, NotADirError
from mfr.data.datasets.common import (
    BALANCED_PATTERNS,
    EVERY_PAIR,
    IMAGE_EXTENSIONS,
    PROTOCOL_PATTERNS,
    THESIS_PATTERNS,
    Dataset,
    DatasetSpec,
    FaceImage,
    check_image,
    protocol_patterns,
    require_mask_flags,
    shown,
)

#: names this package re-exports from its dataset modules, imported when first used (the
#: registry loads a dataset's module only when it is asked for: PEP 562's ``__getattr__``)
_LAZY = {
    **dict.fromkeys(("MFR2_LABELS", "MFR2_LAYOUT_HINT", "MFR2_PAIRS", "is_mfr2_root", "load_mfr2",
                     "mfr2_image_path", "mfr2_pairs", "read_mfr2_labels"),
                    "mfr.data.datasets.mfr2"),
    **dict.fromkeys(("MASKED_DIR", "RMFRD_DIRNAME", "RMFRD_LAYOUT_HINT", "SIDES", "UNMASKED_DIR",
                     "find_rmfrd_root", "load_rmfrd"), "mfr.data.datasets.rmfrd"),
    **dict.fromkeys(("MLFW_SPLITS", "load_mlfw"), "mfr.data.datasets.mlfw"),
    **dict.fromkeys(("load_m2fred",), "mfr.data.datasets.m2fred"),
}

__all__ = [
    "BALANCED_PATTERNS", "DATASETS", "EVERY_PAIR", "IMAGE_EXTENSIONS", "MASKED_DIR", "MFR2_LABELS",
    "MFR2_LAYOUT_HINT", "MFR2_PAIRS", "MLFW_SPLITS", "PROTOCOL_PATTERNS", "RMFRD_DIRNAME",
    "RMFRD_LAYOUT_HINT", "SIDES", "THESIS_PATTERNS", "UNMASKED_DIR", "Dataset", "DatasetSpec",
    "FaceImage", "check_image", "dataset_names", "dataset_root", "detect_dataset",
    "find_rmfrd_root", "get_dataset", "is_mfr2_root", "load_dataset", "load_m2fred", "load_mfr2",
    "load_mlfw", "load_rmfrd", "mfr2_image_path", "mfr2_pairs", "protocol_patterns",
    "read_mfr2_labels", "register_dataset", "require_mask_flags", "shown",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


#: name -> the module of this package holding its ``SPEC`` (or the spec itself, once loaded or
#: registered at run time); the order is the CLI's and detection's
DATASETS: dict[str, str | DatasetSpec] = {
    "rmfrd": "mfr.data.datasets.rmfrd",
    "mfr2": "mfr.data.datasets.mfr2",
    "mlfw": "mfr.data.datasets.mlfw",
    "m2fred": "mfr.data.datasets.m2fred",
    "synthetic": "mfr.data.datasets.synthetic",
}

#: how many folders below the one given detection looks for a tree
MAX_DEPTH = 2


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add (or replace) the entry ``spec.name``; its `layout` must be registered (or its own)."""
    if spec.layout != spec.name and spec.layout not in DATASETS:
        raise InputError(f"dataset {spec.name!r}: unknown layout {spec.layout!r}; expected its "
                         f"own name or one of {dataset_names()}")
    DATASETS[spec.name] = spec
    return spec


def dataset_names(fetchable: bool = False) -> list[str]:
    """The registered datasets, in registry order; `fetchable`: those `mfr data fetch` can get
    (a download source or a generator in their entry)."""
    if not fetchable:
        return list(DATASETS)
    return [n for n in DATASETS if (s := get_dataset(n)).source is not None or s.make is not None]


def get_dataset(name: str) -> DatasetSpec:
    """The entry of dataset `name`; InputError (one line) lists the known names."""
    entry = DATASETS.get(name) if isinstance(name, str) else None
    if entry is None:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if isinstance(entry, str):
        entry = DATASETS[name] = importlib.import_module(entry).SPEC
    return entry


def _layouts() -> list[DatasetSpec]:
    """The entries that bring a layout of their own (the ones detection can name)."""
    return [s for s in map(get_dataset, DATASETS) if s.detect is not None and s.layout == s.name]


def _hints() -> str:
    return "; or ".join(s.layout_hint for s in _layouts() if s.layout_hint)


def detect_dataset(root: str | Path) -> tuple[DatasetSpec, Path]:
    """The dataset under `root` and its folder, without reading the tree: the closest tree of
    any registered layout in `root` or up to :data:`MAX_DEPTH` folders below it (at one level,
    the first in registry order). MissingError names the places looked at and the layouts."""
    root = Path(root).expanduser()
    if not root.exists():
        raise MissingError(f"{root}: no such directory ({_hints()})")
    if not root.is_dir():
        raise NotADirError(f"{root}: not a directory ({_hints()})")
    layouts = _layouts()
    for depth in range(MAX_DEPTH + 1):
        for spec in layouts:
            if (found := spec.detect(root, depth)) is not None:
                return spec, found
    raise MissingError(f"{root}: no dataset tree found (looked in {root}, {root}/*, "
                       f"{root}/*/*; {_hints()})")


def dataset_root(root: str | Path) -> tuple[Path, str]:
    """The dataset folder under `root` and its layout's name (:func:`detect_dataset`)."""
    spec, found = detect_dataset(root)
    return found, spec.layout


def load_dataset(root: str | Path, patterns: str | Sequence[str] = "thesis") -> Dataset:
    """Detect the layout under `root` (:func:`detect_dataset`) and load it."""
    spec, found = detect_dataset(root)
    return spec.load(found, patterns)
