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
from typing import Any

from mfr.backbones.embedders.embedder import Embedder, check_images
from mfr.core.errors import InputError

__all__ = ["REFERENCE_EMBEDDERS", "Embedder", "check_images", "documented_threshold",
           "embedder_arg", "embedder_names", "get_embedder"]

#: name -> "module:Class" (imported lazily): independent implementations of released networks
REFERENCE_EMBEDDERS: dict[str, str] = {
    "dlib_reference": "mfr.backbones.embedders.dlib_reference:DlibEmbedder",
    "mobilefacenet_ncnn": "mfr.backbones.embedders.ncnn_mobilefacenet:NcnnMobileFaceNetEmbedder",
}
#: names embedders had before, and what they are called now (a one-line error says so)
_RENAMED = {"dlib": "dlib_reference"}


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


def embedder_arg(name: str) -> str:
    """`name` as a command line gives it (argparse's ``type``): an embedder's old name is
    refused with its new one, not with the list alone."""
    if name in _RENAMED:
        import argparse

        raise argparse.ArgumentTypeError(f"the embedder {name!r} is now {_RENAMED[name]!r}")
    return name


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
