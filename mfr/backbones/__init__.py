"""The face networks a study can fine-tune, behind one registry (in the manner of timm's
``_registry.py`` + ``default_cfgs``).

Each backbone is a module of this package holding its builder and its facts in one dict
(``CFG``): where its released weights come from, input size, channel order, mean and scale,
embedding size, the number of layers "the last N" counts, the Grad-CAM layer, how a trained
run's layers are saved and the label reports use. :data:`BACKBONES` maps a name to that module;
a new network is one module and one line here. Modules are imported only when asked for, so
``mfr --help`` and the config checks need no Keras.

Everything that builds a network goes through :func:`build_core` (a config's network, as a step
trains or embeds it) and :func:`mfr.backbones.run_model.load_run_model` (a run folder's network,
as the run left it; a module of its own, since it reads a config and mfr.core.config reads this
registry).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from mfr.core.errors import InputError

if TYPE_CHECKING:
    import keras

__all__ = ["BACKBONES", "MIN_IMAGE_SIZE", "align_images", "backbone_cfg", "backbone_module", "build_core",
           "check_trainable_layers", "network_inputs", "validate_trainable_layers"]

#: name -> module of this package (with ``CFG`` and ``build(config)``)
BACKBONES: dict[str, str] = {
    "senet50": "mfr.backbones.senet50",
    "dlib_resnet": "mfr.backbones.dlib_resnet",
}

#: name -> the smallest ``image_size`` (pixels) a config may give it, here rather than in the
#: modules' ``CFG`` so the config checks need no Keras: SENet50's five stride-2 stages leave a
#: 1x1 map at 32 px (below, Keras fails inside the network); dlib's network always takes
#: 150-px chips, cut from images of the cache's size, which below 32 px hold too little face
#: for its landmarks (the same floor)
MIN_IMAGE_SIZE: dict[str, int] = {"senet50": 32, "dlib_resnet": 32}


def backbone_module(name: str) -> ModuleType:
    if name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    return importlib.import_module(BACKBONES[name])


def backbone_cfg(name: str) -> dict[str, Any]:
    """The facts of backbone `name` (its module's ``CFG``)."""
    return backbone_module(name).CFG


def validate_trainable_layers(n, n_layers: int = 287) -> int:
    """N as an int in 1..n_layers, else ValueError (checked before any work)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise InputError(f"trainable layers N must be an integer in 1..{n_layers}, got {n!r}")
    if not 1 <= int(n) <= n_layers:
        raise InputError(f"trainable layers N must be in 1..{n_layers} (the core's layers), got {n}")
    return int(n)


def check_trainable_layers(config: Any, ns: Any = None) -> list[int]:
    """Every N of `ns` (default: the config's ``trainable_layers``) as an int in
    1..the backbone's layers, else one InputError naming the backbone: the one check, made at
    the step boundary before any slow work."""
    n_layers = int(backbone_cfg(config.backbone)["n_layers"])
    values = config.trainable_layers if ns is None else ns
    values = [values] if isinstance(values, int | np.integer) else list(values)
    try:
        return [validate_trainable_layers(n, n_layers) for n in values]
    except InputError as e:
        raise InputError(f"{e} ({config.backbone})") from None


def build_core(config: Any) -> keras.Model:
    """The config's (a :class:`mfr.core.config.StudyConfig`) backbone with its weights (random init:
    seeded with ``config.seed``)."""
    import keras

    keras.utils.set_random_seed(config.seed)  # weights=None: the same random core every time
    return backbone_module(config.backbone).build(config)


def align_images(backbone: str, images: np.ndarray, progress: bool = False,
                 face_box: str = "crop") -> np.ndarray:
    """The uint8 images the network takes, from the image cache's: the backbone's own face
    alignment where it has one (dlib's 5-point face chips, landmarks found in `face_box`),
    else the images as they are."""
    align = getattr(backbone_module(backbone), "align", None)
    return images if align is None else align(images, progress=progress, box=face_box)


def aligned_cache(backbone: str, cache: Any, face_box: str = "crop",
                  progress: bool = False) -> np.ndarray:
    """Every image of an image cache (:class:`mfr.data.image_cache.ImageCache`) aligned for
    `backbone`, made once and kept beside the cache (``aligned_<backbone>_<face_box>.npy``,
    its ``.json`` naming the cache it was made from): a study's steps share one face
    detection and landmark pass per image. Rebuilt when the cache was rebuilt."""
    import json

    from mfr.core.outputs import atomic_path, write_json
    from mfr.core.provenance import file_digest

    path = cache.cache_dir / f"aligned_{backbone}_{face_box}.npy"
    record = path.with_suffix(".json")
    key = {"image_cache": file_digest(cache.cache_dir / "cache.json"), "backbone": backbone,
           "face_box": face_box, "shape": list(cache.images.shape)}
    try:
        if json.loads(record.read_text(encoding="utf-8")) == key and path.is_file():
            return np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        pass  # none yet, or damaged: made again
    aligned = align_images(backbone, cache.images, progress, face_box)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, aligned)
    write_json(record, key)
    return aligned


def network_inputs(backbone: str, images: np.ndarray, rows: Any = None,
                   progress: bool = False, face_box: str = "crop",
                   cache: Any = None) -> tuple[np.ndarray, Any]:
    """(images, rows) as the network takes them: unchanged for a backbone without alignment;
    else, given the image `cache` that `images` are, its aligned images (:func:`aligned_cache`)
    and the same `rows`; else the aligned `rows` of `images` (all, when None), with rows
    ``0..n-1`` into them."""
    if getattr(backbone_module(backbone), "align", None) is None:
        return images, rows
    if cache is not None:
        return aligned_cache(backbone, cache, face_box, progress), rows
    picked = images if rows is None else np.asarray(images)[np.asarray(rows, dtype=np.int64)]
    aligned = align_images(backbone, picked, progress, face_box)
    return aligned, None if rows is None else np.arange(len(picked))
