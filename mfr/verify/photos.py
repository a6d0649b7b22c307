"""Are two photos of the same person? Face found, cropped, embedded, compared, decided.

The thesis tried its model on five scraped masked/unmasked pairs (Table 5.2); this is that, for
any photos (`mfr verify IMG_A IMG_B`, notebook 06).

Per photo (:func:`prepare_face`): decoded with PIL (any format PIL reads; upright by its EXIF
orientation tag; grayscale, RGBA, palette or 16-bit images converted to RGB, and said so); the
largest face MTCNN finds (:mod:`mfr.data.faces`, on a copy at most :data:`DETECT_MAX_SIDE` px on a
side; several faces: the largest, said so; none: an error suggesting ``detect=False``), cropped to a square around its box, :data:`CROP_SCALE`
times the box's larger side (clipped to the image): on the real MFR2 photos MTCNN's box is a
median 0.73 of the crop's height, so this frames a face as the MFR2 crops the project is
evaluated on are framed. ``detect=False`` takes the whole image (an already-cropped face).
Then resized as the study resizes (:func:`mfr.data.images.load_image`: TensorFlow's bilinear resize
in numpy, rounded to uint8) to the embedder's ``image_size``.

Both faces are embedded in one call and compared with the embedder's own distance
(``default_distance``: the thesis's ``sum_squared`` of unit vectors for SENet50;
``euclidean_raw``, face_recognition's Euclidean distance on dlib's raw descriptors, for
dlib); the pair is the same person when the distance is <= the threshold
(:mod:`mfr.evaluation.thresholds`, which says where the threshold came from).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["CROP_SCALE", "DISTANCE_WORDS", "FaceImage", "NoFaceError", "Verification",
           "embed_faces", "face_distances", "prepare_face", "read_photo", "verify_pair"]

#: faces are looked for on a copy of the photo at most this many px on its longer side (faces
#: down to about 20 px there are found: MTCNN's smallest)
DETECT_MAX_SIDE = 1024
#: side of the square crop / the larger side of MTCNN's face box (1 / 0.73, the median box
#: height in the 160 px MFR2 crops, measured on 34 of them with mfr.data.faces)
CROP_SCALE = 1.37

RANDOM_INIT_WARNING = "random init: this distance says nothing about faces"

DISTANCE_WORDS = {
    "sum_squared": "the thesis's sum of squared differences of the L2-normalised embeddings, "
                   "in [0, 4]",
    "euclidean_raw": "Euclidean distance of dlib's raw 128-d descriptors (face_recognition's "
                     "face_distance)",
}

_MODE_NOTES = {
    "L": "grayscale image: converted to RGB (grey repeated in R, G, B)",
    "LA": "grayscale image with alpha: alpha dropped, converted to RGB",
    "La": "grayscale image with alpha: alpha dropped, converted to RGB",
    "RGBA": "RGBA image: alpha channel dropped, RGB kept",
    "RGBa": "RGBA image: alpha channel dropped, RGB kept",
    "P": "palette image: converted to RGB",
    "PA": "palette image with alpha: alpha dropped, converted to RGB",
    "1": "1-bit image: converted to RGB",
    "CMYK": "CMYK image: converted to RGB",
    "I;16": "16-bit grayscale image: scaled to 8 bits, converted to RGB",
    "I": "32-bit grayscale image: scaled to 8 bits, converted to RGB",
    "F": "floating-point grayscale image: scaled to 8 bits, converted to RGB",
}


class NoFaceError(InputError):
    """MTCNN found no face in a photo."""


@dataclass(frozen=True)
class FaceImage:
    """One photo, ready to embed: what was read, which face, and the image the model sees."""

    name: str  # the path, or "image A" for an array
    width: int
    height: int
    mode: str  # PIL's mode of the file ("RGB", "L", "RGBA", ...), or "array"
    detected: bool  # whether MTCNN was run (False: the whole image is the face)
    face_box: tuple[int, int, int, int] | None  # MTCNN's box (x, y, w, h), original pixels
    confidence: float | None
    n_faces: int | None  # faces MTCNN found; None when it was not run
    crop_box: tuple[int, int, int, int]  # the region embedded (x, y, w, h), original pixels
    image: np.ndarray = field(repr=False)  # uint8 (S, S, 3): what the embedder sees
    notes: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON-ready, without the pixels."""
        return {"path": self.name, "width": self.width, "height": self.height,
                "mode": self.mode, "face_detection": "MTCNN" if self.detected else
                "off (--no-detect: the whole image)", "face_box": _box(self.face_box),
                "confidence": self.confidence, "n_faces": self.n_faces,
                "crop_box": _box(self.crop_box), "input_size": int(self.image.shape[0]),
                "notes": list(self.notes)}


def _box(box: tuple[int, int, int, int] | None) -> dict[str, int] | None:
    return None if box is None else dict(zip(("x", "y", "width", "height"),
                                             (int(v) for v in box), strict=True))


def read_photo(path: str | Path) -> tuple[np.ndarray, str, list[str]]:
    """(uint8 RGB (H, W, 3), PIL mode, notes) of an image file, read as every command reads
    images (:func:`mfr.core.readers.images.decode`: a regular file, the pixel bound, upright by
    its EXIF orientation); one-line errors naming the file (missing, a folder, a FIFO, not an
    image, truncated, too many pixels, smaller than :data:`mfr.data.images.MIN_SIZE`)."""
    from mfr.core.readers.images import decode
    from mfr.data.images import MIN_SIZE

    p = Path(path)
    rgb, header = decode(p)
    mode, orientation, frames = header.mode, header.orientation, header.frames
    notes: list[str] = []
    if orientation != 1:
        notes.append(f"rotated upright by its EXIF orientation tag ({orientation})")
    if frames > 1:
        notes.append(f"{frames} frames: the first is used")
    base = "I;16" if mode.startswith("I;16") else mode
    if base != "RGB":
        notes.append(_MODE_NOTES.get(base, f"{mode} image: converted to RGB"))
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIZE:
        raise InputError(f"{p}: image is {w}x{h} px, smaller than the minimum {MIN_SIZE} px on "
                         f"a side (expected a photo of a face)")
    return rgb, mode, notes


def _array(image: np.ndarray, name: str) -> tuple[np.ndarray, str, list[str]]:
    from mfr.data.faces import as_rgb
    from mfr.data.images import MIN_SIZE

    a = np.asarray(image)
    notes = []
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 1):
        notes.append(_MODE_NOTES["L"])
    elif a.ndim == 3 and a.shape[-1] == 4:
        notes.append(_MODE_NOTES["RGBA"])
    try:
        rgb = as_rgb(a)
    except InputError as e:
        raise InputError(f"{name}: {e}") from None
    if min(rgb.shape[:2]) < MIN_SIZE:
        raise InputError(f"{name}: image is {rgb.shape[1]}x{rgb.shape[0]} px, smaller than the "
                         f"minimum {MIN_SIZE} px on a side")
    return rgb, "array", notes


def _detect(rgb: np.ndarray) -> list:
    """MTCNN's faces (:func:`mfr.data.faces.detect_faces`), found on a copy at most
    :data:`DETECT_MAX_SIDE` px on its longer side (PIL's antialiased bilinear), boxes scaled
    back to `rgb`'s pixels: a 12-megapixel photo otherwise takes MTCNN half a minute on a CPU."""
    from dataclasses import replace

    from PIL import Image

    from mfr.data.faces import detect_faces

    h, w = rgb.shape[:2]
    scale = DETECT_MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return detect_faces(rgb)
    small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)),
                                                    max(1, round(h * scale))),
                                                   Image.Resampling.BILINEAR))
    return [replace(f, box=tuple(int(round(v / scale)) for v in f.box),
                    landmarks={k: (x / scale, y / scale) for k, (x, y) in f.landmarks.items()})
            for f in detect_faces(small)]


def square_crop_box(box: tuple[int, int, int, int], width: int, height: int,
                    scale: float = CROP_SCALE) -> tuple[int, int, int, int]:
    """A square of side ``scale * max(w, h)`` centred on the box, clipped to the image."""
    x, y, w, h = box
    side = scale * max(w, h)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = max(int(round(cx - side / 2)), 0), max(int(round(cy - side / 2)), 0)
    x1 = min(int(round(cx + side / 2)), width)
    y1 = min(int(round(cy + side / 2)), height)
    return x0, y0, x1 - x0, y1 - y0


def prepare_face(image: str | Path | np.ndarray, size: int, detect: bool = True,
                 name: str | None = None) -> FaceImage:
    """A photo (a path, or an (H, W[, C]) array) as the uint8 (size, size, 3) face an embedder
    takes (see the module docstring). NoFaceError when `detect` and MTCNN finds no face."""
    from mfr.data.faces import FaceDetectorBackendError, crop_face
    from mfr.data.images import quantise, resize_bilinear

    if isinstance(image, str | Path):
        name = name or str(image)
        rgb, mode, notes = read_photo(image)
    else:
        name = name or "image"
        rgb, mode, notes = _array(image, name)
    h, w = rgb.shape[:2]
    face_box, confidence, n_faces = None, None, None
    crop_box = (0, 0, w, h)
    if detect:
        try:
            found = _detect(rgb)
        except FaceDetectorBackendError as e:
            raise FaceDetectorBackendError(f"{e}; or use --no-detect for already-cropped "
                                           f"faces") from None
        if not found:
            raise NoFaceError(f"{name}: no face found (MTCNN); for an already-cropped face "
                              f"use --no-detect (detect=False: the whole image is the face)")
        face, n_faces = found[0], len(found)
        face_box, confidence = tuple(int(v) for v in face.box), float(face.confidence)
        crop_box = square_crop_box(face_box, w, h)
        if n_faces > 1:
            fx, fy, fw, fh = face_box
            notes.append(f"{n_faces} faces found: the largest is used ({fw}x{fh} px at "
                         f"x={fx}, y={fy}, confidence {confidence:.2f})")
    crop = crop_face(rgb, crop_box) if crop_box != (0, 0, w, h) else rgb
    face_img = (np.ascontiguousarray(crop, dtype=np.uint8) if crop.shape[:2] == (size, size)
                else quantise(resize_bilinear(crop, size)))
    return FaceImage(name, w, h, mode, detect, face_box, confidence, n_faces, crop_box,
                     face_img, tuple(notes))


def embed_faces(embedder: Any, faces: Sequence[FaceImage]
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(unit embeddings, raw embeddings or None, failed) of the faces, in one call of `embedder`.

    Raw embeddings (unit rows times the embedder's ``norms``) exist for an embedder whose own
    distance is on unnormalised vectors (dlib). ``failed``: per face, whether the embedder
    could not encode it (dlib's ``failed`` flag: its row is zeros)."""
    images = np.stack([f.image for f in faces])
    vectors = embedder.embed(images)
    failed = np.asarray(embedder.flags.get("failed", np.zeros(len(faces), bool)), bool)
    raw = None
    if embedder.norms is not None:
        raw = vectors.astype(np.float64) * np.asarray(embedder.norms, np.float64)[:, None]
    return vectors, raw, failed


def face_distances(vectors: np.ndarray, raw: np.ndarray | None, u_idx: Sequence[int],
                   m_idx: Sequence[int], distance: str) -> np.ndarray:
    """Distances of the pairs (u_idx[k], m_idx[k]): ``euclidean_raw`` on the raw vectors, any
    of :data:`mfr.evaluation.distances.METRICS` on the unit ones."""
    from mfr.evaluation.distances import pair_distances

    u, m = np.asarray(u_idx, np.intp), np.asarray(m_idx, np.intp)
    if distance == "euclidean_raw":
        if raw is None:
            raise InputError("euclidean_raw needs an embedder with raw vectors (dlib)")
        return pair_distances(raw, u, m, "l2")
    return pair_distances(vectors, u, m, distance)


def preprocessing_words(faces: Sequence[FaceImage], size: int) -> str:
    """How the images were made into the embedder's input, in words."""
    how = {f.detected for f in faces}
    crop = (f"MTCNN face box squared and grown to {CROP_SCALE} x its larger side (clipped to "
            f"the image)" if how == {True} else "the whole image (--no-detect)" if how == {False}
            else "MTCNN crop or whole image (see each image)")
    return (f"PIL decode (EXIF orientation applied) to RGB; {crop}; bilinear resize "
            f"(TensorFlow's, half-pixel centres, no antialias) to {size}x{size}, rounded to uint8")


@dataclass
class Verification:
    """What :func:`verify_pair` found."""

    a: FaceImage
    b: FaceImage
    distance: float
    distance_name: str
    threshold: Any  # mfr.evaluation.thresholds.Threshold
    embedder: dict[str, Any]  # the embedder's describe()
    notes: list[str]

    @property
    def same_person(self) -> bool | None:
        """distance <= threshold; None without a threshold."""
        t = self.threshold.value
        return None if t is None else bool(self.distance <= t)

    @property
    def decision(self) -> str:
        same = self.same_person
        return "undecided" if same is None else "same person" if same else "different people"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `mfr verify --json`."""
        return {"distance": self.distance, "distance_name": self.distance_name,
                "distance_meaning": DISTANCE_WORDS.get(self.distance_name, self.distance_name),
                "same_person": self.same_person, "decision": self.decision,
                "accept": "distance <= threshold", "threshold": self.threshold.value,
                "threshold_source": self.threshold.source,
                "threshold_details": self.threshold.details,
                "embedder": self.embedder,
                "preprocessing": preprocessing_words([self.a, self.b], self.a.image.shape[0]),
                "images": [self.a.describe(), self.b.describe()],
                "face_boxes": [_box(self.a.face_box), _box(self.b.face_box)],
                "warning": RANDOM_INIT_WARNING if self.embedder.get("random_init") else None,
                "notes": self.notes}

    def lines(self) -> list[str]:
        """What `mfr verify` prints: the images, the model, the distance and the decision."""
        e = self.embedder
        out = []
        for tag, f in (("A", self.a), ("B", self.b)):
            if f.face_box is not None:
                x, y, w, h = f.face_box
                face = f"face {w}x{h} px at x={x}, y={y} (MTCNN, confidence {f.confidence:.2f})"
            else:
                face = "whole image (--no-detect)"
            out.append(f"image {tag}: {f.name} ({f.width}x{f.height} {f.mode}): {face}")
        model = f"model: {e['name']}, weights {e.get('weights_desc', e.get('weights'))}"
        if e.get("run_dir"):
            model += f", run {e['run_dir']} ({_fine_tuned_words(e)})"
        prep = e.get("preprocessing_words") or e.get("preprocessing")  # the backbone's words
        out.append(model + (f"; input preprocessing {prep}" if prep else ""))
        out.append("preprocessing: " + preprocessing_words([self.a, self.b],
                                                           self.a.image.shape[0]))
        out.append(f"distance {self.distance:.6f}")
        out.append(f"distance measure: {self.distance_name}, "
                   f"{DISTANCE_WORDS.get(self.distance_name, '')}; lower = more alike")
        t = self.threshold
        if t.value is None:
            out.append(f"threshold: none ({t.source})")
            out.append("decision: undecided (no threshold)")
        else:
            out.append(f"threshold {t.value:.6g}: {t.source}")
            sign = "<=" if self.same_person else ">"
            out.append(f"decision: {self.decision} (distance {self.distance:.4f} {sign} "
                       f"threshold {t.value:.4g})")
        if e.get("random_init"):
            out.append(f"WARNING: {RANDOM_INIT_WARNING}")
        if e.get("licence") or e.get("weights_licence"):  # the released weights' terms
            out.append(f"weights licence: {e.get('licence') or e.get('weights_licence')}")
        out += [f"note: {n}" for n in self.notes]
        return out


def embedder_notes(embedder: Any, faces: Sequence[FaceImage]) -> list[str]:
    """What the embedder's last call flagged per face (its own face finding found no face in
    the image it was given: dlib's detector, or a backbone's alignment)."""
    flags = embedder.flags.get("no_face_detected")
    if flags is None:
        return []
    return [f"{f.name}: {embedder.name}'s own face finding found no face in the image it was "
            f"given; it used the whole image (as the evaluation does)"
            for f, flag in zip(faces, np.asarray(flags), strict=True) if flag]


def verify_pair(image_a: str | Path | np.ndarray, image_b: str | Path | np.ndarray,
                embedder: Any, threshold: float | str | Path | None = None,
                detect: bool = True) -> Verification:
    """Compare two photos with `embedder` (an :class:`mfr.backbones.embedders.Embedder`).

    Args:
        image_a, image_b: image files, or (H, W[, C]) uint8 arrays.
        threshold: a number, a thresholds.json, or None for the embedder's default
            (:func:`mfr.evaluation.thresholds.resolve_threshold`).
        detect: find the face with MTCNN (False: the whole image is the face).

    Returns:
        A :class:`Verification`: the distance (the embedder's ``default_distance``), the
        threshold and its source, the decision, the faces used and notes.
    """
    from mfr.evaluation.thresholds import resolve_threshold

    distance = embedder.default_distance
    thr = resolve_threshold(threshold, embedder, distance)  # a bad file fails before slow work
    size = embedder.image_size
    a = prepare_face(image_a, size, detect, None if isinstance(image_a, str | Path) else "image A")
    b = prepare_face(image_b, size, detect, None if isinstance(image_b, str | Path) else "image B")
    vectors, raw, failed = embed_faces(embedder, [a, b])
    if failed.any():
        bad = (a, b)[int(np.flatnonzero(failed)[0])].name
        raise InputError(f"{bad}: {embedder.name} could not encode this face")
    d = float(face_distances(vectors, raw, [0], [1], distance)[0])
    notes = [f"{f.name}: {n}" for f in (a, b) for n in f.notes]
    notes += embedder_notes(embedder, [a, b])
    return Verification(a, b, d, distance, thr, embedder.describe(), notes)


def _fine_tuned_words(e: dict[str, Any]) -> str:
    """What a run's network fine-tuned, with both counts: the thesis's N (the last N of the
    network's layers, weightless ones included) and the layers among them whose weights were
    trained (batch norm frozen): N = 30 of SENet50 trains 8 layers."""
    k = len(e.get("fine_tuned_layers") or [])
    n = None
    try:
        from mfr.core.runs import read_run

        n = read_run(e["run_dir"]).trainable_layers
    except (OSError, ValueError):
        pass
    if n is None:
        return f"{k} fine-tuned layers" if k else "pre-trained, nothing fine-tuned"
    return (f"N = {n}: its last {n} layers fine-tuned, counted as the thesis counts them, "
            f"weightless layers included; {k} of them hold the weights that were trained, "
            f"batch norm frozen")
