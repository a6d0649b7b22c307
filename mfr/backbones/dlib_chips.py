"""Aligned 150x150 face chips for dlib's face ResNet, the same for dlib and the Keras port.

Per image: a face box -- MTCNN's largest face (:mod:`mfr.data.faces`; the whole image when it finds
none, flagged ``no_face_detected``) or the whole crop (``box="crop"``, for photos that are
already face crops, and under backends where MTCNN cannot run) -- then dlib's 5-point shape
predictor (``shape_predictor_5_face_landmarks.dat`` of face_recognition_models) in that box,
then ``dlib.get_face_chip(image, landmarks, size, padding)``: the chip dlib's own
``compute_face_descriptor(image, landmarks)`` makes internally. An image dlib or MTCNN rejects
gets a zero chip, flagged ``failed``; it never stops the batch.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MissingError

__all__ = ["BOXES", "face_box", "face_chips", "shape_predictor"]

PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"


@functools.cache
def shape_predictor() -> Any:
    """dlib's 5-point shape predictor (loaded once per process)."""
    try:
        import dlib
    except ImportError as e:
        raise InputError(f"face chips need the package dlib-bin (pip install dlib-bin): {e}") from None
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingError(f"{PREDICTOR_FILE}: the package face_recognition_models is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_FILE
    if not path.is_file():
        raise MissingError(f"{path}: file missing from face_recognition_models")
    return dlib.shape_predictor(str(path))


BOXES = ("crop", "mtcnn", "hog")


@functools.cache
def _hog_detector() -> Any:
    import dlib

    return dlib.get_frontal_face_detector()


def face_box(img: np.ndarray, box: str, upsample: int = 1):
    """(dlib rectangle, face found) for one RGB image: ``crop`` the image itself, ``mtcnn``
    MTCNN's largest face, ``hog`` dlib's frontal detector's highest-scoring face (upsampled
    once, as mfr's dlib embedder and face_recognition); no face found: the whole image."""
    import dlib

    h, w = img.shape[:2]
    if box == "mtcnn":
        from mfr.data.faces import detect_largest_face

        face = detect_largest_face(img)
        if face is not None:
            x, y, bw, bh = face.box
            return dlib.rectangle(int(x), int(y), int(x + bw - 1), int(y + bh - 1)), True
        return dlib.rectangle(0, 0, w - 1, h - 1), False
    if box == "hog":
        boxes, scores, _ = _hog_detector().run(img, upsample, 0.0)
        if len(boxes):
            return boxes[int(np.argmax(scores))], True
        return dlib.rectangle(0, 0, w, h), False  # as mfr's dlib embedder has always done
    return dlib.rectangle(0, 0, w - 1, h - 1), True


def face_chips(images: np.ndarray | Sequence[np.ndarray], box: str = "mtcnn", size: int = 150,
               padding: float = 0.25) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """uint8 RGB images (an (N, H, W, 3) array or a list of (H, W, 3) arrays of any size) ->
    (chips uint8 (N, size, size, 3), flags {"no_face_detected", "failed"}: bool (N,))."""
    if box not in BOXES:
        raise InputError(f"face box must be one of {', '.join(BOXES)}, got {box!r}")
    import dlib

    from mfr.data.faces import as_rgb

    predictor = shape_predictor()
    if box == "mtcnn":
        from mfr.data.faces import detector

        detector()  # a backend that cannot run MTCNN fails here, once, not per image
    n = len(images)
    chips = np.zeros((n, size, size, 3), np.uint8)
    no_face, failed = np.zeros(n, bool), np.zeros(n, bool)
    for i in range(n):
        try:
            img = as_rgb(images[i])
            rect, found = face_box(img, box)
            shape = predictor(img, rect)
            chips[i] = np.asarray(dlib.get_face_chip(img, shape, size=size, padding=padding))
            no_face[i] = not found
        except (RuntimeError, ValueError):  # dlib / MTCNN rejected this image: flag it
            failed[i] = True
    return chips, {"no_face_detected": no_face, "failed": failed}
