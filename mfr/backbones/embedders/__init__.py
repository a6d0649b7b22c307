"""Face embedders behind one small interface: uint8 images in, unit-length embeddings out.

An :class:`Embedder` has a ``name``, the ``image_size`` it takes (the side of the square uint8
RGB images: the size of the image cache to build for it), ``embed(images, progress=False)``
((N, S, S, 3) uint8 -> (N, D) float32, L2-normalised rows, so every embedder shares
:mod:`mfr.evaluation.distances` and :mod:`mfr.evaluation.metrics`) and ``describe()`` (what it is, for run.json and
metrics.json). ``flags`` holds per-image notes of the last ``embed`` call (e.g. dlib's
``no_face_detected``), as boolean arrays over its rows; ``norms`` the rows' lengths before
normalisation where the model's own distance is on raw vectors (dlib's).

Every backbone of :data:`mfr.backbones.BACKBONES` is an embedder under its own name, through
one generic Keras embedder (:class:`~mfr.backbones.embedders.keras_embedder.BackboneEmbedder`,
``get_backbone(name).embedder(...)``): ``get_embedder("senet50", weights=...)``,
``get_embedder("dlib_resnet", run_dir=RUN)``. Beside them, :data:`REFERENCE_EMBEDDERS` are
independent implementations of the same released networks, which the ports are checked against
and which a study can report beside them: ``dlib_reference`` (dlib's own C++, the model of the
face_recognition library) and ``mobilefacenet_ncnn`` (InsightFace's MobileFaceNet run by ncnn
on its ncnn conversion). The registry maps such a name to ``"module:Class"``, imported only
when asked for.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["REFERENCE_EMBEDDERS", "Embedder", "check_images", "documented_threshold",
           "embedder_names", "get_embedder"]

#: name -> "module:Class" (imported lazily): independent implementations of released networks
REFERENCE_EMBEDDERS: dict[str, str] = {
    "dlib_reference": "mfr.backbones.embedders.dlib_reference:DlibEmbedder",
    "mobilefacenet_ncnn": "mfr.backbones.embedders.ncnn_mobilefacenet:NcnnMobileFaceNetEmbedder",
}
#: names embedders had before, and what they are called now (a one-line error says so)
_RENAMED = {"dlib": "dlib_reference"}


class Embedder(ABC):
    """Images in, L2-normalised embeddings out (see the module docstring)."""

    name: str = ""
    image_size: int = 0
    #: the distance its own users compare with, the one a dataset evaluation reports first:
    #: the thesis's ``sum_squared`` of unit vectors, or ``euclidean_raw`` (dlib's own: Euclidean
    #: on the unnormalised descriptors, as face_recognition's ``face_distance``)
    default_distance: str = "sum_squared"
    #: (distance, value, source) of the threshold its network's publisher documents, or None
    documented_threshold: tuple[str, float, str] | None = None

    def __init__(self) -> None:
        self.flags: dict[str, np.ndarray] = {}
        #: the rows' lengths before normalisation (last ``embed`` call), for an embedder whose
        #: own distance uses unnormalised vectors (dlib / face_recognition); else None
        self.norms: np.ndarray | None = None
        #: images embedded so far, and among them those with no face found / that failed
        self.n_images = self.n_no_face = self.n_failed = 0

    def _finish(self, out: np.ndarray, no_face: np.ndarray, failed: np.ndarray) -> np.ndarray:
        """A batch's raw rows done: its flags, the running counts and the raw lengths
        recorded (:attr:`flags`, :attr:`norms`); the rows L2-normalised."""
        from mfr.evaluation.distances import l2_normalize

        self.flags = {"no_face_detected": no_face, "failed": failed}
        self.n_images += len(out)
        self.n_no_face += int(no_face.sum())
        self.n_failed += int(failed.sum())
        self.norms = np.linalg.norm(out.astype(np.float64), axis=1)
        return l2_normalize(out)

    @abstractmethod
    def embed(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB images -> (N, D) float32 embeddings with unit-length rows."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: name, weights, preprocessing, image size, dimension..."""


def check_images(images: np.ndarray, size: int, who: str) -> None:
    """ValueError unless `images` is (N, size, size, 3) uint8."""
    shape = tuple(getattr(images, "shape", ()))
    if len(shape) != 4 or shape[1:] != (size, size, 3) or images.dtype != np.uint8:
        raise InputError(f"{who}: expected (N, {size}, {size}, 3) uint8 RGB images, got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {shape}")


def documented_threshold(name: str) -> tuple[str, float, str] | None:
    """(distance, value, source) of the threshold the publisher of embedder `name`'s network
    documents (dlib's: face_recognition's tolerance 0.6 on its raw Euclidean distance), or
    None: a backbone's facts say it, a reference embedder's class does."""
    from mfr.backbones import BACKBONES, get_backbone

    if name in BACKBONES:
        return get_backbone(name).facts.documented_threshold
    if name in REFERENCE_EMBEDDERS:
        module, cls = REFERENCE_EMBEDDERS[name].split(":")
        return getattr(getattr(importlib.import_module(module), cls), "documented_threshold",
                       None)
    return None


def embedder_names() -> list[str]:
    """Every embedder: the backbones' (registry order), then the reference implementations."""
    from mfr.backbones import backbone_names

    return [*backbone_names(), *REFERENCE_EMBEDDERS]


def get_embedder(name: str, **options: Any) -> Embedder:
    """The embedder registered as `name`, built with `options`: a backbone's (its
    :meth:`~mfr.backbones.base.Backbone.embedder`), or a reference implementation's
    constructor arguments."""
    from mfr.backbones import BACKBONES, get_backbone

    if name in BACKBONES:
        return get_backbone(name).embedder(**options)
    if name not in REFERENCE_EMBEDDERS:
        renamed = f" (the embedder {name!r} is now {_RENAMED[name]!r})" if name in _RENAMED else ""
        raise InputError(f"unknown embedder {name!r}; expected one of "
                         f"{', '.join(embedder_names())}{renamed}")
    import inspect

    module, cls = REFERENCE_EMBEDDERS[name].split(":")
    klass = getattr(importlib.import_module(module), cls)
    takes = inspect.signature(klass).parameters
    unknown = sorted(k for k in options if k not in takes)
    if unknown:
        raise InputError(f"{unknown[0]} is not an option of the {name} embedder (it takes "
                         f"{', '.join(sorted(takes))})")
    return klass(**options)
