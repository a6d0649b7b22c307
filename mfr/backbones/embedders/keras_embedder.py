"""Any backbone as an :class:`mfr.backbones.embedders.Embedder`: one Keras embedder for every
network of :data:`mfr.backbones.BACKBONES`, pre-trained, random-init or a run folder's.

Per batch of cached images: the backbone's own face alignment where it has one
(:meth:`~mfr.backbones.base.Backbone.align_faces`: dlib's face chips, ArcFace's five-point
warp; its flags kept), its preprocessing (:meth:`~mfr.backbones.base.Backbone.preprocess`), the
network, L2-normalised rows. A backbone whose own distance is on the raw output (dlib's
``euclidean_raw``) keeps the rows' raw lengths in ``norms``; a fine-tuned run was trained on the
thesis's distance of unit embeddings, so that is its own distance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfr.backbones.embedders.embedder import Embedder, check_images
from mfr.backbones.facts import RELEASED
from mfr.core.errors import InputError, MissingError

__all__ = ["BackboneEmbedder"]


class BackboneEmbedder(Embedder):
    """A backbone's network as an embedder.

    Args:
        backbone: the :class:`~mfr.backbones.base.Backbone` (its :meth:`embedder` makes this).
        weights: its released weights (their name, or ``"vggface2"``: "the released ones" of
            any backbone, the config's convention), a weights file, or None (random init
            seeded with `seed`: pipeline checks only).
        run_dir: an `mfr train` run folder of this backbone (its network as the run left it:
            base weights from its run.json's config, trained layers from
            ``final_trainable.h5``), or an `mfr embed` one (its config's network); its config
            gives the settings below unless they are passed.
        image_size: side of the square uint8 images it takes (the image cache's); default the
            run's, else the backbone's input size (for an aligning backbone: 160, the crops of
            RMFRD and MFR2, unresized).
        batch_size: images per forward pass.
        seed: the random init's seed.
        settings: the backbone's own config fields (``preprocessing``, and its ``settings``:
            SENet50's ``pooling``, the aligners' ``face_box``); another key is an InputError.
        trunk_store: a folder where the aligned faces and the frozen trunk's features of the
            images it is given are kept (keyed by their bytes, the face box, the base weights
            and N's boundary: :mod:`mfr.training.trunk_store`), so that many runs of one
            backbone and N embed the same images with one alignment and one trunk pass; each
            run then computes only its head (the same network: the trunk is frozen).
        trunk_layers: N, whose boundary splits trunk and head with `trunk_store` (default: the
            run's ``trainable_layers``; required for a network that was not fine-tuned).
    """

    def __init__(self, backbone: Any, weights: str | None = RELEASED,
                 run_dir: str | Path | None = None, image_size: int | None = None,
                 batch_size: int = 64, seed: int = 2021, trunk_store: str | Path | None = None,
                 trunk_layers: int | None = None, **settings: Any) -> None:
        super().__init__()
        from mfr.core.config import StudyConfig

        self.backbone = backbone
        self.name = backbone.name
        self.default_distance = backbone.facts.default_distance
        allowed = {"preprocessing", *backbone.facts.settings}
        unknown = sorted(k for k, v in settings.items() if k not in allowed and v is not None)
        if unknown:
            raise InputError(f"{unknown[0]} is not an option of the {backbone.name} embedder "
                             f"(it takes {', '.join(sorted(allowed))})")
        given = {k: v for k, v in settings.items() if v is not None}
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.trained_layers: list[str] = []
        self.fine_tuned = False
        base: dict[str, Any] = {}
        self.trunk_layers = trunk_layers
        if self.run_dir is not None:
            base = self._read_run(self.run_dir)
            weights, seed = base.get("weights", weights), int(base.get("seed", seed))
            if self.trunk_layers is None and self.fine_tuned:
                self.trunk_layers = self._run_n
            image_size = image_size or base.get("image_size")
            if self.fine_tuned:
                self.default_distance = "sum_squared"
        if image_size is None:
            image_size = 160 if backbone.aligns else backbone.facts.input_size
        fields = {k: base[k] for k in allowed if k in base}
        fields.update(given)
        try:
            self.config = StudyConfig(backbone=backbone.name, weights=weights, seed=int(seed),
                                      image_size=int(image_size), **fields)
        except ValueError as e:
            raise InputError(f"{backbone.name} embedder: {e}") from None
        self.weights, self.seed = self.config.weights, self.config.seed
        self.image_size, self.batch_size = self.config.image_size, int(batch_size)
        self.preprocessing = self.config.preprocessing
        self.face_box = self.config.face_box if backbone.aligns else None
        if (self.run_dir is None and self.weights is not None
                and self.weights != backbone.facts.weights.name and not Path(self.weights).is_file()):
            raise MissingError(f"{self.weights}: weights file not found (expected "
                               f"{backbone.facts.weights.name}, none, or a "
                               f"{backbone.facts.weights.format.split(',')[0]} file)")
        self.trunk_store = Path(trunk_store) if trunk_store is not None else None
        if self.trunk_store is not None:
            if self.trunk_layers is None:
                raise InputError(f"{backbone.name} embedder: a trunk store needs N "
                                 f"(trunk_layers), the boundary of the trunk it keeps")
            self.trunk_layers = backbone.check_trainable_layers(self.trunk_layers)[0]
        self._model = None

    def _read_run(self, run_dir: Path) -> dict[str, Any]:
        """The run's config (its network's settings); one-line errors for a folder that is not
        a finished run of this backbone."""
        from mfr.core.runs import RUN_FILE, read_run

        run = run_dir / RUN_FILE
        record = read_run(run_dir, "an `mfr train` or `mfr embed` run") if run.is_file() else None
        meta = record.data if record is not None else {}
        self.fine_tuned = meta.get("command") != "embed"
        if record is None or (self.fine_tuned and not (run_dir / "final_trainable.h5").is_file()):
            raise MissingError(f"{run_dir}: not a finished `mfr train` run folder (expected "
                               f"run.json and final_trainable.h5) nor an `mfr embed` one "
                               f"(run.json)")
        if record.backbone != self.backbone.name:
            raise InputError(f"{record.path}: a {record.backbone} run; --embedder "
                             f"{self.backbone.name} needs a {self.backbone.name} run")
        self.backbone.check_run_files(run_dir, meta)  # the files it recorded, or one line
        self.trained_layers = list(meta.get("trainable_layer_names", []))
        self._run_n = record.trainable_layers
        return dict(record.config)

    @property
    def model(self):
        """The Keras model, built on first use."""
        if self._model is None:
            from mfr.backbones.download import WeightsDownloadError

            try:
                if self.run_dir is not None and self.fine_tuned:
                    self._model = self.backbone.load_run(self.run_dir)
                else:
                    self._model = self.backbone.core(self.config)
            except WeightsDownloadError as e:
                raise MissingError(f"{self.backbone.facts.weights.label} unavailable: {e}") from e
        return self._model

    def embed(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from mfr.evaluation.embeddings import embed_images

        check_images(images, self.image_size, f"{self.name} embedder")
        n = len(images)
        flags: dict[str, np.ndarray] = {}
        if self.trunk_store is not None:
            raw, flags = self._embed_stored(images, progress)
        else:
            if self.backbone.aligns:
                images, flags = self.backbone.align_faces(np.asarray(images), progress,
                                                          self.face_box)
            raw = embed_images(self.model, images, preprocessing=self.backbone.preprocessing(
                self.preprocessing), batch_size=self.batch_size, progress=progress,
                normalize=False)
        failed = np.asarray(flags.get("failed", np.zeros(n, bool)), bool)
        no_face = np.asarray(flags.get("no_face_detected", np.zeros(n, bool)), bool)
        raw[failed] = 0.0  # an image the alignment could not use: a zero row, flagged
        out = self._finish(raw, no_face & ~failed, failed)
        self.flags.update({k: np.asarray(v) for k, v in flags.items()
                           if k not in ("failed", "no_face_detected")})
        if self.default_distance != "euclidean_raw":
            self.norms = None  # its own distance is of unit vectors: no raw lengths to keep
        return out

    def _embed_stored(self, images: np.ndarray, progress: bool
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Raw outputs of the network's head on the stored trunk features of `images` (aligned
        and passed through the trunk once per store), and the alignment's flags."""
        import keras

        from mfr.training.siamese import split_trunk
        from mfr.training.trunk_store import array_digest, head_embeddings, trunk_features

        images_key = array_digest(np.asarray(images))
        aligned, flags = _stored_alignment(self.backbone, images, images_key, self.face_box,
                                           self.trunk_store, progress)
        split = split_trunk(self.model, self.trunk_layers)
        spec = self.backbone.preprocessing(self.preprocessing)
        base = self.backbone.weights_fingerprint(self.weights, self.seed)
        key = {"backbone": self.name, "weights": base, "boundary": split.boundary,
               "images": images_key, "face_box": self.face_box, "preprocessing": spec.name,
               "embed_batch_size": self.batch_size, "backend": keras.backend.backend(),
               "precision": keras.config.dtype_policy().name}
        features = trunk_features(split.trunk, aligned, lambda x: self.backbone.preprocess(x, spec),
                                  self.batch_size, self.trunk_store, key, progress)
        return head_embeddings(split.head, features, self.batch_size), flags

    def describe(self) -> dict[str, Any]:
        facts = self.backbone.facts
        prep = self.backbone.preprocessing(self.preprocessing)
        out = {
            "name": self.name,
            "backbone": self.name,
            "label": facts.label,
            "weights": self.weights,
            "weights_desc": self.backbone.weights_label(self.weights, self.seed),
            "random_init": self.weights is None,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "fine_tuned_layers": self.trained_layers,
            "preprocessing": self.preprocessing,
            "preprocessing_words": prep.words(),
            "image_size": self.image_size,
            "dim": facts.embedding_size,
            "normalisation": "L2" + ("" if self.default_distance != "euclidean_raw" else
                                     " (raw lengths kept: its own distance is on raw vectors)"),
            "n_images": self.n_images,
            "n_no_face_detected": self.n_no_face,
            "n_failed": self.n_failed,
        }
        out.update({k: getattr(self.config, k) for k in facts.settings})
        if self.backbone.aligns:
            out["alignment"] = facts.alignment
        if self.weights is not None and self.weights == facts.weights.name:
            out["licence"] = facts.weights.licence
        if self.trunk_store is not None:
            out["trunk_store"] = {"folder": str(self.trunk_store), "n": self.trunk_layers}
        return out


def _stored_alignment(backbone: Any, images: np.ndarray, images_key: str, face_box: str | None,
                      store: Path, progress: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The backbone's aligned faces of `images` and their flags, made once per store (by the
    images' bytes and the face box) and read back after: ``store/aligned_<digest>.npz``."""
    import hashlib

    from mfr.core.outputs import atomic_path

    if not backbone.aligns:
        return np.asarray(images), {}
    tag = hashlib.sha256(f"{backbone.name}|{face_box}|{images_key}".encode()).hexdigest()[:16]
    path = store / f"aligned_{tag}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            flags = {k[5:]: f[k] for k in f.files if k.startswith("flag_")}
            return f["aligned"], flags
    except (OSError, ValueError, KeyError):
        pass  # none yet, or damaged: made again
    aligned, flags = backbone.align_faces(np.asarray(images), progress, face_box)
    store.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, aligned=aligned, **{f"flag_{k}": np.asarray(v) for k, v in flags.items()})
    return aligned, flags
