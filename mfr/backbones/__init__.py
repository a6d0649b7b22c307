"""The face networks a study can fine-tune, behind one registry (in the manner of timm's
``_registry.py`` + ``default_cfgs``).

A backbone is a module of this package holding one :class:`~mfr.backbones.base.Backbone`
object, ``BACKBONE``: its facts in one typed record (:class:`~mfr.backbones.base.BackboneFacts`:
input size, channel order, mean and scale or "inside the graph", embedding size, the layers
"the last N" counts, the Grad-CAM layer, its face alignment, its released weights with their
source, sha256 and licence) and its behaviour as methods (build, preprocess, align,
check_weights, pretrained_file, save and load trained layers, embedder).
:data:`BACKBONES` maps a name to that module: a new network is one module and one line here
(plus a reader in :mod:`mfr.backbones.formats` where its weights come in a new format).

:func:`get_backbone` resolves a name once; the steps take the object from there on. Backbone
modules import Keras only inside their methods, so the config checks and ``mfr --help`` read
the facts without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from mfr.backbones.base import Backbone, BackboneFacts, validate_trainable_layers
from mfr.core.errors import InputError

if TYPE_CHECKING:
    import keras

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "Backbone", "BackboneFacts", "aligned_cache",
           "backbone_names", "get_backbone", "load_run_model", "validate_trainable_layers"]

#: name -> module of this package holding ``BACKBONE``
BACKBONES: dict[str, str] = {
    "senet50": "mfr.backbones.senet50",
    "dlib_resnet": "mfr.backbones.dlib_resnet",
    "mobilefacenet": "mfr.backbones.mobilefacenet",
}

#: the thesis's network: a run record without a ``backbone`` (made before there were others)
#: is one of its runs
DEFAULT_BACKBONE = "senet50"

_RESOLVED: dict[str, Backbone] = {}


def backbone_names() -> list[str]:
    """The registered backbones, in registry order (the CLI's choices)."""
    return list(BACKBONES)


def get_backbone(name: str | Backbone) -> Backbone:
    """The backbone registered as `name` (a Backbone is returned as it is); one InputError
    line lists the known names."""
    if isinstance(name, Backbone):
        return name
    if not isinstance(name, str) or name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")
    if name not in _RESOLVED:
        backbone = importlib.import_module(BACKBONES[name]).BACKBONE
        if backbone.name != name:
            raise InputError(f"{BACKBONES[name]}: its BACKBONE is named {backbone.name!r}, "
                             f"registered as {name!r}")
        _RESOLVED[name] = backbone
    return _RESOLVED[name]


def load_run_model(run_dir: Any) -> keras.Model:
    """The network of an `mfr embed` or `mfr train` run folder, whatever its backbone, as the
    run left it (:meth:`~mfr.backbones.base.Backbone.load_run`)."""
    from mfr.core.runs import read_run

    record = read_run(run_dir, "a run folder of `mfr embed` or `mfr train`")
    return get_backbone(record.backbone).load_run(run_dir)


def aligned_cache(backbone: Backbone, cache: Any, face_box: str | None = None,
                  progress: bool = False) -> np.ndarray:
    """Every image of an image cache (:class:`mfr.data.image_cache.ImageCache`) aligned for
    `backbone`, made once and kept beside the cache (``aligned_<backbone>_<face_box>.npy``,
    its ``.json`` naming the cache it was made from; its per-image flags in
    ``aligned_<backbone>_<face_box>_flags.csv``): a study's steps share one face detection and
    landmark pass per image. Rebuilt when the cache was rebuilt."""
    import json

    import pandas as pd

    from mfr.core.outputs import atomic_path, write_csv, write_json
    from mfr.core.provenance import file_digest

    face_box = face_box or (backbone.facts.face_boxes or ("crop",))[0]
    path = cache.cache_dir / f"aligned_{backbone.name}_{face_box}.npy"
    record = path.with_suffix(".json")
    key = {"image_cache": file_digest(cache.cache_dir / "cache.json"), "backbone": backbone.name,
           "face_box": face_box, "shape": list(cache.images.shape)}
    try:
        if json.loads(record.read_text(encoding="utf-8")) == key and path.is_file():
            return np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        pass  # none yet, or damaged: made again
    aligned, flags = backbone.align_faces(cache.images, progress=progress, face_box=face_box)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, aligned)
    if flags:
        write_csv(path.with_name(path.stem + "_flags.csv"),
                  pd.DataFrame({"path": list(cache.paths), **{k: np.asarray(v) for k, v in
                                                              flags.items()}}))
    write_json(record, key)
    return aligned
