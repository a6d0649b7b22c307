"""mfr for notebooks and other programs: a few verbs, in the manner of face_recognition's
``api.py``.

Verification, one to one::

    from mfr import api

    m = api.verify("me_masked.jpg", "me.jpg", embedder="mobilefacenet", threshold=1.2)
    m.distance, m.same_person, m.threshold_source

    emb = api.load_embedder("dlib_resnet", face_box="mtcnn")   # built once, reused
    a, b = api.embed(["a.png", "b.png"], emb, detect=False).descriptors  # to store
    api.verify(a, b, embedder=emb)      # stored embeddings: no photo read; dlib's tolerance 0.6

    api.verify_pairs("pairs.csv", "out/", embedder=emb)   # many pairs, each image embedded once

Identification, one to many::

    g = api.Gallery(api.load_embedder("mobilefacenet"), detect=False)  # face crops
    g.enrol("people/")                  # people/<identity>/<photos>
    g.add("newcomer/")                  # one identity folder; or g.add("Ann", ["ann1.jpg"])
    g.remove("someone")
    g.save("my_gallery")                # a folder; `mfr identify --gallery my_gallery` reads it
    g = api.Gallery.load("my_gallery")  # its own network, built when first needed
    r = g.identify(["probe.jpg"], k=5, fpir=0.01)
    r.table()                           # probe, rank, identity, distance, photo, decision
    r[0].decision                       # "Ann", or "not in the gallery"

A :class:`Gallery` refuses an embedder other than the one that made it (another network,
weights or alignment), lists photos where no face is found instead of embedding them as
something else, and says where every threshold comes from (:mod:`mfr.gallery.decide`). Thresholds:
a number; a ``thresholds.json`` of `mfr evaluate`; ``fpir=`` / ``fmr=`` calibrated on the
gallery; or the network's documented default (dlib's 0.6 on its raw Euclidean distance;
MobileFaceNet and SENet50 have none published: pass one, or the decision is "undecided").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError
from mfr.gallery.store import Gallery

__all__ = ["Gallery", "Match", "embed", "load_embedder", "load_gallery", "verify",
           "verify_pairs"]

_EMBEDDERS: dict[tuple, Any] = {}


def load_embedder(name: str = "dlib_reference", **options: Any) -> Any:
    """An embedder (:func:`mfr.backbones.embedders.get_embedder`: a backbone with
    ``weights=`` / ``run_dir=`` / ``face_box=``..., or a reference implementation), built once
    per process for the same name and options. A backbone's released weights are made sure of
    (found, or downloaded) here, in one line if they cannot be."""
    from mfr.backbones import BACKBONES, get_backbone
    from mfr.backbones.embedders import get_embedder
    from mfr.backbones.facts import RELEASED

    key = (name, tuple(sorted((k, str(v)) for k, v in options.items())))
    if key not in _EMBEDDERS:
        if name in BACKBONES and "run_dir" not in options:
            options = {"weights": RELEASED, **options}
        emb = get_embedder(name, **options)
        if name in BACKBONES and emb.run_dir is None:
            get_backbone(name).check_weights(emb.weights, progress=False)
        _EMBEDDERS[key] = emb
    return _EMBEDDERS[key]


def _embedder(embedder: Any) -> Any:
    return load_embedder(embedder) if isinstance(embedder, str) else embedder


def embed(photos: Sequence[str | Path | np.ndarray], embedder: Any = "dlib_reference",
          detect: bool = True, no_face: str = "skip") -> Any:
    """Embed photos (paths or uint8 arrays): :class:`mfr.gallery.photos.Embedded` (unit rows,
    raw lengths, and per photo its status: ``"ok"`` or why it was not embedded)."""
    from mfr.gallery.photos import embed_photos

    return embed_photos(list(photos), _embedder(embedder), detect, no_face)


@dataclass(frozen=True)
class Match:
    """What :func:`verify` found: the distance (the embedder's own), the threshold and where
    it came from, and the decision (``same_person`` None without a threshold)."""

    distance: float
    distance_name: str
    threshold: float | None
    threshold_source: str
    same_person: bool | None

    @property
    def decision(self) -> str:
        s = self.same_person
        return "undecided" if s is None else "same person" if s else "different people"


def _one(x: Any, emb: Any, detect: bool, what: str) -> tuple[np.ndarray, float]:
    """(unit row, raw length) of a photo, an image array, or a stored embedding."""
    from mfr.gallery.photos import embed_photos

    a = x if isinstance(x, np.ndarray) else None
    if a is not None and a.ndim == 1 and np.issubdtype(a.dtype, np.floating):
        n = float(np.linalg.norm(a.astype(np.float64)))
        if not np.isfinite(n) or n == 0:
            raise InputError(f"{what}: an embedding of length {n}")
        return (a.astype(np.float64) / n).astype(np.float32), n
    e = embed_photos([x], emb, detect)
    if e.status[0] != "ok":
        raise InputError(f"{what}: {e.status[0]}")
    return e.vectors[0], float(e.norms[0])


def verify(a: Any, b: Any, embedder: Any = "dlib_reference",
           threshold: float | str | Path | None = None, detect: bool = True) -> Match:
    """Are `a` and `b` the same person? Each a photo (path), an (H, W[, C]) uint8 image, or a
    stored embedding (a 1-d float vector made by this embedder:
    :attr:`mfr.gallery.photos.Embedded.descriptors`, the raw descriptor for dlib's network,
    whose length its own distance needs, else the unit row). `threshold`: a number, a
    thresholds.json, or None for the embedder's default
    (:func:`mfr.evaluation.thresholds.resolve_threshold`)."""
    from mfr.evaluation.thresholds import resolve_threshold
    from mfr.verify.photos import face_distances

    emb = _embedder(embedder)
    distance = emb.default_distance
    thr = resolve_threshold(threshold, emb, distance)
    va, na = _one(a, emb, detect, "a")
    vb, nb = _one(b, emb, detect, "b")
    vec = np.stack([va, vb])
    raw = vec.astype(np.float64) * np.array([[na], [nb]]) if distance == "euclidean_raw" else None
    if raw is not None and not np.isfinite(raw).all():
        raise InputError(f"{emb.name}'s distance needs raw descriptors (its raw lengths)")
    d = float(face_distances(vec, raw, [0], [1], distance)[0])
    same = None if thr.value is None else bool(d <= thr.value)
    return Match(d, distance, thr.value, thr.source, same)


def verify_pairs(pairs_csv: str | Path, out_dir: str | Path, embedder: Any = "dlib_reference",
                 threshold: float | str | Path | None = None, detect: bool = True,
                 force: bool = False) -> Any:
    """Every pair of a CSV (``image_a,image_b[,label]``), each image embedded once, into
    ``out_dir/pairs.csv`` (:func:`mfr.verify.batch.verify_pairs_file`)."""
    from mfr.verify.batch import verify_pairs_file

    return verify_pairs_file(pairs_csv, out_dir, _embedder(embedder), threshold, detect,
                             force=force)


def load_gallery(path: str | Path, embedder: Any = None) -> Gallery:
    """:meth:`Gallery.load` (with `embedder`: checked to be the gallery's)."""
    return Gallery.load(path, None if embedder is None else _embedder(embedder))
