"""Faces in a photo (MTCNN) and the line above a face mask.

Detection is MTCNN (package ``mtcnn`` 1.0, Zhang et al. 2016; its weights ship in the wheel, so
it works offline). It needs TensorFlow, and Keras on the TensorFlow backend, so it is imported
only when a face is first looked for; its three networks are built once per process
(:func:`detector`).

:func:`mask_line` is where the attention share of :mod:`mfr.explain.attention` splits a face: the row
halfway between the eyes' mean height and the nose tip's height (MTCNN's landmarks), i.e. below
the eyes and above the nose tip. A surgical or cloth mask covers the nose and everything under
it, so the rows above the line are the unoccluded part. When no face is found (or the landmarks
are implausible: eyes not above the nose) the line is at :data:`FIXED_FRACTION` of the image
height: 0.55, the median landmark line of the faces MTCNN found in the 134 real MFR2 photos of
``../shared/data/mfr2-dev`` at 224x224 (0.546 on the 80 masked faces, 0.559 on the 48 unmasked).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MfrError

__all__ = [
    "FIXED_FRACTION",
    "Face",
    "FaceDetectorBackendError",
    "as_rgb",
    "crop_face",
    "detect_faces",
    "detect_largest_face",
    "detector",
    "mask_line",
]

#: Where the mask line goes when no face is found: this fraction of the image height.
FIXED_FRACTION = 0.55
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[int, int, int, int]  # x, y, width, height (MTCNN's "xywh")
    confidence: float
    landmarks: dict[str, tuple[float, float]]  # LANDMARKS -> (x, y)

    @property
    def area(self) -> int:
        return int(self.box[2]) * int(self.box[3])


class FaceDetectorBackendError(MfrError):
    """MTCNN was asked for under a Keras backend other than TensorFlow."""


@functools.cache
def detector() -> Any:
    """MTCNN's detector, built once per process (three small networks, about 1 s).

    mtcnn 1.0 builds its networks with ``tf.keras``, i.e. Keras 3 on the process's backend, and
    then calls TensorFlow-only methods on their outputs: it works only when Keras runs on
    TensorFlow (FaceDetectorBackendError, one line, otherwise).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise FaceDetectorBackendError(
            f"face detection (mtcnn 1.0) needs the TensorFlow backend; Keras runs on "
            f"{keras.backend.backend()}: run with KERAS_BACKEND=tensorflow")
    from mtcnn import MTCNN

    return MTCNN()


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) from a grayscale (H, W) / (H, W, 1), RGB or RGBA (alpha dropped) image;
    ValueError for any other shape."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise InputError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got "
                         f"shape {img.shape}")
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    elif img.shape[-1] == 4:
        img = img[..., :3]
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def detect_faces(image: np.ndarray) -> list[Face]:
    """Every face MTCNN finds in an RGB image (any of :func:`as_rgb`'s shapes), largest box
    first (ties: higher confidence first). An empty list when there is none (a blank or tiny
    image included)."""
    rgb = as_rgb(image)
    if min(rgb.shape[:2]) < 12:  # smaller than PNet's window: MTCNN cannot find anything
        return []
    found = detector().detect_faces(rgb)
    faces = [Face(box=tuple(int(v) for v in f["box"]), confidence=float(f["confidence"]),
                  landmarks={k: (float(f["keypoints"][k][0]), float(f["keypoints"][k][1]))
                             for k in LANDMARKS})
             for f in found]
    return sorted(faces, key=lambda f: (-f.area, -f.confidence))


def detect_largest_face(image: np.ndarray) -> Face | None:
    """The face with the largest box, or None when MTCNN finds no face."""
    faces = detect_faces(image)
    return faces[0] if faces else None


def crop_face(image: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.0) -> np.ndarray:
    """The box (x, y, w, h) grown by `margin` x its size on every side, clipped to the image.

    ValueError when the box lies outside the image or is empty.
    """
    img = np.asarray(image)
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise InputError(f"empty face box {box} (expected width and height > 0)")
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    dx, dy = int(round(w * margin)), int(round(h * margin))
    x0, y0 = max(x - dx, 0), max(y - dy, 0)
    x1, y1 = min(x + w + dx, img.shape[1]), min(y + h + dy, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"face box {box} lies outside the {img.shape[1]}x{img.shape[0]} image")
    return np.ascontiguousarray(img[y0:y1, x0:x1])


def line_from_landmarks(face: Face) -> float | None:
    """Halfway between the eyes' mean y and the nose tip's y; None when the eyes are not above
    the nose (implausible landmarks)."""
    eye_y = (face.landmarks["left_eye"][1] + face.landmarks["right_eye"][1]) / 2.0
    nose_y = face.landmarks["nose"][1]
    if not eye_y < nose_y:
        return None
    return (eye_y + nose_y) / 2.0


def mask_line(image: np.ndarray, fixed_fraction: float = FIXED_FRACTION,
              face: Face | None = None) -> tuple[int, str]:
    """(row, how): rows ``0 .. row-1`` of `image` are above the mask.

    ``how = "landmarks"``: the largest face's :func:`line_from_landmarks`, rounded to the
    nearest row and kept inside ``1 .. H-1``; ``how = "fixed fraction"``: no face found (or
    implausible landmarks), ``round(fixed_fraction * H)``. Pass `face` to reuse a detection.
    """
    h = as_rgb(image).shape[0]
    if not 0.0 < fixed_fraction < 1.0:
        raise InputError(f"fixed_fraction must be in (0, 1), got {fixed_fraction}")
    face = face if face is not None else detect_largest_face(image)
    y = line_from_landmarks(face) if face is not None else None
    if y is None:
        return int(round(fixed_fraction * h)), "fixed fraction"
    return int(min(max(round(y), 1), h - 1)), "landmarks"
