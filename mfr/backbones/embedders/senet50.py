"""SENet50 (the thesis's network) as an :class:`mfr.backbones.embedders.Embedder`: pre-trained,
random-init or fine-tuned (a `mfr train` run folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfr.backbones.embedders import Embedder, check_images
from mfr.core.errors import MissingError
from mfr.core.runs import RUN_FILE, read_run

__all__ = ["SENet50Embedder"]


class SENet50Embedder(Embedder):
    """SENet50's 2048-d average-pooled output, L2-normalised (:func:`mfr.evaluation.embeddings.embed_images`).

    Args:
        weights: ``"vggface2"`` (the released weights, downloaded once), a legacy keras-vggface
            ``.h5`` path, or None (random init seeded with `seed`: pipeline checks only).
        preprocessing: ``"thesis"`` (RGB) or ``"vggface2"`` (BGR), :func:`mfr.backbones.vggface.preprocess`.
        pooling: ``"avg"`` or ``"max"``.
        run_dir: a `mfr train` run folder: its run.json's config gives the base weights,
            preprocessing, pooling, image size and seed (these override the arguments above),
            and its ``final_trainable.h5`` the fine-tuned layers; or an `mfr embed` run
            folder (run.json ``"command": "embed"``): its config's network, as it embedded.
        image_size: input side in pixels (224 for the released weights).
        batch_size: images per forward pass.
        seed: the random init's seed (``weights=None``).
    """

    name = "senet50"

    def __init__(self, weights: str | None = "vggface2", preprocessing: str = "thesis",
                 pooling: str = "avg", run_dir: str | Path | None = None, image_size: int = 224,
                 batch_size: int = 64, seed: int = 2021) -> None:
        super().__init__()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.trained_layers: list[str] = []
        self.fine_tuned = False
        if self.run_dir is not None:
            run = self.run_dir / RUN_FILE
            final = self.run_dir / "final_trainable.h5"
            meta = (read_run(self.run_dir, "an `mfr train` or `mfr embed` run").data
                    if run.is_file() else {})
            # an `mfr embed` run: its config's network, nothing fine-tuned
            self.fine_tuned = meta.get("command") != "embed"
            if not run.is_file() or (self.fine_tuned and not final.is_file()):
                raise MissingError(f"{self.run_dir}: not a finished `mfr train` run folder "
                                   f"(expected run.json and final_trainable.h5) nor an `mfr "
                                   f"embed` one (run.json)")
            from mfr.backbones.run_model import check_run_weights

            check_run_weights(self.run_dir, meta)  # the files the run recorded, or one line
            cfg = meta.get("config", {})
            self.trained_layers = list(meta.get("trainable_layer_names", []))
            weights = cfg.get("weights", weights)
            preprocessing = cfg.get("preprocessing", preprocessing)
            pooling = cfg.get("pooling", pooling)
            image_size = int(cfg.get("image_size", image_size))
            seed = int(cfg.get("seed", seed))
        if weights is not None and weights != "vggface2" and not Path(weights).is_file():
            raise MissingError(f"{weights}: weights file not found (expected vggface2, none, "
                                    f"or a legacy keras-vggface .h5 file)")
        self.weights, self.preprocessing, self.pooling = weights, preprocessing, pooling
        self.image_size, self.batch_size, self.seed = int(image_size), int(batch_size), int(seed)
        self._model = None

    @property
    def model(self):
        """The Keras model, built on first use."""
        if self._model is None:
            import keras

            from mfr.backbones.vggface import senet50
            from mfr.backbones.vggface.legacy_h5 import load_legacy_h5
            from mfr.backbones.vggface.pretrained import WeightsDownloadError

            keras.utils.set_random_seed(self.seed)  # weights=None: as `mfr embed` / `mfr train`
            try:
                core = senet50(weights=self.weights, pooling=self.pooling,
                               input_shape=(self.image_size, self.image_size, 3))
            except WeightsDownloadError as e:
                raise MissingError(f"VGGFace2 SENet50 weights unavailable: {e}") from e
            if self.fine_tuned:
                self.trained_layers = load_legacy_h5(core, self.run_dir / "final_trainable.h5",
                                                     strict=False)
            self._model = core
        return self._model

    def embed(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from mfr.evaluation.embeddings import embed_images

        check_images(images, self.image_size, "senet50 embedder")
        self.flags = {}
        return embed_images(self.model, images, preprocessing=self.preprocessing,
                            batch_size=self.batch_size, progress=progress)

    def describe(self) -> dict[str, Any]:
        random_init = self.weights is None
        return {
            "name": self.name,
            "weights": self.weights,
            "weights_desc": f"random init, seed {self.seed}" if random_init else str(self.weights),
            "random_init": random_init,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "fine_tuned_layers": self.trained_layers,
            "preprocessing": self.preprocessing,
            "pooling": self.pooling,
            "image_size": self.image_size,
            "dim": 2048,
            "normalisation": "L2",
        }
