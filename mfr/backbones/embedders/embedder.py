"""The embedder interface: uint8 images in, unit-length embeddings out (:class:`Embedder`),
and the input check every embedder makes (:func:`check_images`). No registry here (that is
:mod:`mfr.backbones.embedders`), so any embedder module imports this without the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["Embedder", "check_images"]


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
