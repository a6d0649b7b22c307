"""What makes two embeddings comparable: an embedder's signature (network, weights' digest,
fine-tuned layers' digest, preprocessing, face alignment and its face box, input size), and the
options that build the same embedder again.

A gallery records both (:mod:`mfr.gallery.store`): the options, so that `mfr identify` needs
only the gallery; the signature, so that a gallery made by one network, weights or alignment is
never searched with embeddings of another. :func:`mismatch` names the first difference in
words.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

__all__ = ["SIGNATURE_KEYS", "embedder_mismatch", "embedder_options", "make_embedder", "mismatch",
           "signature"]

#: what must agree, in the order a difference is reported
SIGNATURE_KEYS = ("embedder", "weights", "trained_layers", "preprocessing", "pooling",
                  "face_box", "alignment", "landmarks", "upsample", "num_jitters", "padding",
                  "image_size", "dim")
#: constructor options of a reference embedder kept to build it again
_REFERENCE_OPTIONS = ("image_size", "landmarks", "upsample", "num_jitters", "padding",
                      "face_box")
_WORDS = {"embedder": "embedder", "weights": "weights", "trained_layers": "fine-tuned layers",
          "preprocessing": "preprocessing", "pooling": "pooling", "face_box": "face box",
          "alignment": "face alignment", "landmarks": "landmarks", "upsample": "upsampling",
          "num_jitters": "jitters", "padding": "chip padding", "image_size": "input size",
          "dim": "embedding size"}


def _is_backbone_embedder(embedder: Any) -> bool:
    return hasattr(embedder, "backbone") and hasattr(embedder, "config")


def _weights_digest(embedder: Any) -> str | None:
    """The weights' sha256 record: a backbone's (:meth:`~mfr.backbones.base.Backbone.
    weights_fingerprint`), a reference embedder's model files'."""
    from mfr.core.provenance import file_digest

    if _is_backbone_embedder(embedder):
        return embedder.backbone.weights_fingerprint(embedder.weights, embedder.seed)
    files = [getattr(embedder, "_files", None) or [],
             [getattr(embedder, a) for a in ("param", "bin_path") if getattr(embedder, a, None)]]
    paths = [Path(p) for group in files for p in group]
    if paths:
        return ", ".join(f"{p.name} sha256:{file_digest(p)}" for p in paths)
    return None


#: the fields that need the weights files read
_DIGESTS = ("weights", "trained_layers")


def signature(embedder: Any, digests: bool = True) -> dict[str, Any]:
    """The fields of :data:`SIGNATURE_KEYS` for `embedder` (None where it has no such
    setting). Reads the weights files' digests (cached per process; not with `digests`
    False), never builds a model."""
    from mfr.core.provenance import file_digest

    d = embedder.describe()
    trained = weights = None
    run_dir = getattr(embedder, "run_dir", None)
    if digests:
        weights = _weights_digest(embedder)
        if run_dir is not None and getattr(embedder, "fine_tuned", False):
            trained = (f"final_trainable.h5 sha256:"
                       f"{file_digest(Path(run_dir) / 'final_trainable.h5')}")
    out = {"embedder": embedder.name, "weights": weights,
           "trained_layers": trained, "alignment": d.get("alignment"),
           "image_size": int(embedder.image_size), "dim": d.get("dim")}
    for k in ("preprocessing", "pooling", "face_box", "landmarks", "upsample", "num_jitters",
              "padding"):
        out[k] = d.get(k)
    return out


def embedder_options(embedder: Any) -> dict[str, Any]:
    """The options that build `embedder` again with :func:`make_embedder` (its name, weights or
    run folder, settings, input size)."""
    if _is_backbone_embedder(embedder):
        cfg = embedder.config
        out: dict[str, Any] = {"image_size": int(embedder.image_size), "seed": int(embedder.seed)}
        if embedder.run_dir is not None:
            out["run_dir"] = str(Path(embedder.run_dir).resolve())
        else:
            w = embedder.weights
            # a weights file by its absolute path: the gallery is searched from anywhere
            out["weights"] = str(Path(w).resolve()) if w and Path(w).is_file() else w
            out["preprocessing"] = embedder.preprocessing
            out.update({k: getattr(cfg, k) for k in embedder.backbone.facts.settings})
        return out
    takes = inspect.signature(type(embedder)).parameters
    return {k: getattr(embedder, k) for k in _REFERENCE_OPTIONS
            if k in takes and hasattr(embedder, k)}


def make_embedder(name: str, options: dict[str, Any]) -> Any:
    """The embedder `name` built with `options` (:func:`embedder_options`'s)."""
    from mfr.backbones.embedders import get_embedder

    return get_embedder(name, **options)


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def embedder_mismatch(recorded: dict[str, Any], embedder: Any) -> str | None:
    """:func:`mismatch` of a recorded signature and `embedder`'s: the settings compared
    first, the weights' digests (files read) only when those agree."""
    why = mismatch(recorded, signature(embedder, digests=False), skip=_DIGESTS)
    return why if why is not None else mismatch(recorded, signature(embedder))


def mismatch(recorded: dict[str, Any], now: dict[str, Any],
             skip: tuple[str, ...] = ()) -> str | None:
    """The first field of :data:`SIGNATURE_KEYS` (but `skip`) where two signatures differ, in
    words (``weights ms1m sha256:..., asked for file sha256:...``), or None when they agree."""
    for k in SIGNATURE_KEYS:
        if k in skip:
            continue
        if recorded.get(k) != now.get(k):
            return (f"{_WORDS[k]} {_shown(recorded.get(k))}, asked for "
                    f"{_shown(now.get(k))}")
    return None

