"""What a backbone does: the methods of one object (:class:`Backbone`), computed from its facts
(:class:`mfr.backbones.facts.BackboneFacts`, one typed record, in the manner of timm's
``default_cfgs``).

A backbone module (``mfr/backbones/<name>.py``) defines a subclass with its ``facts`` and the
few methods only it can know (``build``: the network with the config's weights; ``check_weights``
and ``pretrained_file``: its released weights; ``align`` where it takes aligned faces), and
exposes one instance as ``BACKBONE``; :func:`mfr.backbones.get_backbone` resolves a name to it
once, at a step's boundary, and the step passes the object on. Everything else is computed here
from the facts: the preprocessing (channel order, mean, scale, or "inside the graph"), the
config defaults and checks a backbone implies, N's range, the weights' fingerprint and
description, the labels of tables and figures, saving and loading a run's trained layers, the
network of a run folder, and the embedder (:class:`mfr.backbones.embedders.keras_embedder.
BackboneEmbedder`, one for every backbone).

Nothing here imports Keras at module level; the config checks and ``mfr --help`` read only the
facts (:mod:`mfr.backbones.facts`), through the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mfr.backbones.facts import (
    RANDOM_WEIGHTS_WARNING,
    RELEASED,
    BackboneFacts,
    Preprocessing,
    validate_trainable_layers,
)
from mfr.core.errors import InputError, MfrError, MissingError

if TYPE_CHECKING:
    import keras

__all__ = ["Backbone", "aligned_cache", "load_run_model"]

class Backbone:
    """A face network: its :class:`BackboneFacts` and what can be done with it (see the module
    docstring). Subclasses set ``facts`` and implement :meth:`build`, :meth:`check_weights`
    and :meth:`pretrained_file` (and :meth:`align` where ``facts.alignment`` is set)."""

    facts: ClassVar[BackboneFacts]

    @property
    def name(self) -> str:
        return self.facts.name

    def __repr__(self) -> str:
        return f"<backbone {self.name}>"

    # ------------------------------------------------------------------ config

    def config_defaults(self, weights: str | None, preprocessing: str,
                        face_box: str | None) -> dict[str, Any]:
        """The config values this backbone implies where the config kept the fields' defaults:
        ``weights: vggface2`` (the field's default, the thesis's) names this backbone's
        released weights, the default preprocessing is its first, the default face box its
        first. A preprocessing or face box it does not take is an InputError naming it."""
        out: dict[str, Any] = {}
        if weights == RELEASED:
            out["weights"] = self.facts.weights.name
        modes = self.facts.preprocessing_names
        if preprocessing == "thesis" and "thesis" not in modes:
            out["preprocessing"] = preprocessing = modes[0]
        if preprocessing not in modes:
            raise InputError(f"preprocessing: {self.name} takes {', '.join(modes)}, got "
                             f"{preprocessing!r}")
        boxes = self.facts.face_boxes
        if face_box is None:
            out["face_box"] = boxes[0] if boxes else "crop"
        elif boxes and face_box not in boxes:
            raise InputError(f"face_box: {self.name} finds its landmarks with "
                             f"{', '.join(boxes)}, got {face_box!r}")
        return out

    def check_trainable_layers(self, ns: int | Sequence[int]) -> list[int]:
        """Every N of `ns` as an int in 1..the network's layers, else one InputError naming
        the backbone: the one check, made at a step's boundary before any slow work."""
        values = [ns] if isinstance(ns, int | np.integer) else list(ns)
        return [validate_trainable_layers(n, self.facts.n_layers, self.name) for n in values]

    # ------------------------------------------------------------------ weights

    def check_weights(self, weights: str | None, progress: bool = True) -> None:
        """The weights can be had (the released files found or downloaded, or a file of this
        network), else a one-line error saying what is missing; None (random init) passes."""
        raise NotImplementedError

    def pretrained_file(self) -> Path:
        """The local file of the released weights (where it is, or will be, cached); for a
        release of several files, the one whose digest stands for them all."""
        raise NotImplementedError

    def release_files(self, progress: bool = True) -> dict[str, Path]:
        """The released files (name -> local path), found in their cache folder or the one
        ``facts.weights.env_dir`` names, checked against their sha256, downloaded where missing
        (:func:`mfr.backbones.download.release_files`)."""
        from mfr.backbones.download import release_files

        w = self.facts.weights
        return release_files(w.files, w.cache_name or self.name, w.env_dir, progress=progress)

    def weights_fingerprint(self, weights: str | None, seed: int) -> str:
        """The initial weights as a run's fingerprint records them: the released file's
        sha256, a given file's, or the random init's seed."""
        from mfr.core.provenance import file_digest

        if weights is None:
            return f"random init, seed {seed}"
        released = self.facts.weights.name
        if weights == released:
            return f"{released} sha256:{file_digest(self.pretrained_file())}"
        return f"file sha256:{file_digest(weights)}"

    def describe_weights(self, weights: str | None, seed: int) -> tuple[str, str | None]:
        """A run's weights in words, and the warning random weights carry into every output."""
        if weights is None:
            return (f"random init, seed {seed}",
                    RANDOM_WEIGHTS_WARNING.format(seed=seed, label=self.facts.label))
        return str(weights), None

    def weights_label(self, weights: str | None, seed: int) -> str:
        """The weights as an embedder's description names them."""
        if weights is None:
            return f"random init, seed {seed}"
        return self.facts.weights.label if weights == self.facts.weights.name else str(weights)

    # ------------------------------------------------------------------ the network

    def build(self, config: Any) -> keras.Model:
        """The network with ``config.weights`` (the released ones, a file, or None: random
        init), at ``config.image_size`` where the network takes other sizes."""
        raise NotImplementedError

    def core(self, config: Any) -> keras.Model:
        """:meth:`build`, its random init seeded with ``config.seed`` (the same core every time)."""
        import keras

        keras.utils.set_random_seed(config.seed)
        return self.build(config)

    def trained_layer_file_name(self, layer_name: str) -> str:
        """The name a trained layer is saved under in ``final_trainable.h5`` (the Keras name;
        SENet50's are keras-vggface's)."""
        return layer_name

    def save_trained(self, layers: Sequence[Any], path: str | Path, name: str) -> Path:
        """A run's trained `layers` into `path` (legacy HDF5, by layer name; atomic)."""
        from types import SimpleNamespace

        from mfr.backbones.formats.legacy_h5 import save_legacy_h5

        return save_legacy_h5(SimpleNamespace(layers=list(layers), name=name), path,
                              file_name=self.trained_layer_file_name)

    def load_trained(self, core: keras.Model, path: str | Path, strict: bool = False) -> list[str]:
        """The layers a run saved (:meth:`save_trained`) put on `core`; their names."""
        from mfr.backbones.formats.legacy_h5 import load_legacy_h5

        return load_legacy_h5(core, path, strict=strict, file_name=self.trained_layer_file_name)

    def load_run(self, run_dir: str | Path) -> keras.Model:
        """The network of an `mfr embed` or `mfr train` run folder of this backbone, as the run
        left it: its run.json's config builds it (:meth:`core`) and a fine-tuning run's
        trained layers come from ``final_trainable.h5`` (they must be the run's
        ``trainable_layer_names`` when it lists them). One-line errors name the file."""
        from mfr.core.config import StudyConfig
        from mfr.core.runs import read_run

        run_dir = Path(run_dir)
        record = read_run(run_dir, "a run folder of `mfr embed` or `mfr train`")
        meta, meta_path = record.data, record.path
        config = meta.get("config")
        if not isinstance(config, dict) or not {"weights", "image_size"} <= set(config):
            raise InputError(f"{meta_path}: expected a 'config' with weights and image_size")
        if record.backbone != self.name:
            raise InputError(f"{meta_path}: a {record.backbone} run, not {self.name}'s")
        trained = run_dir / "final_trainable.h5"
        fine_tuned = "trainable_layers" in meta
        if fine_tuned and not trained.is_file():
            raise MissingError(f"{trained}: a fine-tuning run folder must hold its trained "
                               f"layers (final_trainable.h5, written when `mfr train` ends)")
        known = set(StudyConfig.__dataclass_fields__)
        cfg = StudyConfig().replace(**{k: v for k, v in config.items() if k in known})
        self.check_run_files(run_dir, meta)
        core = self.core(cfg)
        if fine_tuned:
            loaded = self.load_trained(core, trained, strict=False)
            expected = meta.get("trainable_layer_names")
            if not loaded:
                raise InputError(f"{trained}: holds none of {self.name}'s layers (expected the "
                                 f"trained layers of an `mfr train` run)")
            if expected is not None and sorted(loaded) != sorted(expected):
                raise InputError(f"{trained}: holds layers {sorted(loaded)}, but {meta_path} "
                                 f"lists trainable_layer_names {sorted(expected)}")
        return core

    def check_run_files(self, run_dir: str | Path, meta: Any) -> None:
        """The files a run's network is built from are the ones the run used: its
        ``final_trainable.h5`` as its run.json's outputs record it, and the weights file it
        started from (the released ones or a path: its fingerprint's sha256). A file that
        changed since is a one-line InputError naming it. Released weights not downloaded yet
        are left to the download's own sha256 check."""
        from collections.abc import Mapping

        from mfr.core.integrity import check_recorded
        from mfr.core.provenance import file_digest

        run_dir = Path(run_dir)
        if (run_dir / "final_trainable.h5").is_file():
            check_recorded(run_dir / "final_trainable.h5")
        fp = meta.get("fingerprint")
        recorded = fp.get("weights") if isinstance(fp, Mapping) else None
        config = meta.get("config") or {}
        weights = config.get("weights") if isinstance(config, Mapping) else None
        if not isinstance(recorded, str) or "sha256:" not in recorded or weights is None:
            return  # a random init, or a record without the weights' digest
        try:
            path = (self.pretrained_file() if weights == self.facts.weights.name
                    else Path(weights))
        except MfrError:
            return  # released, not there yet: fetched later and checked by its own sha256
        if not Path(path).is_file():
            return  # a path: building the network says it is missing
        digest = recorded.rsplit("sha256:", 1)[1]
        now = file_digest(path)
        if now != digest:
            raise InputError(f"{path}: not the weights file the run {run_dir} started from "
                             f"(sha256 {now[:12]}...; {run_dir / 'run.json'} records "
                             f"{digest[:12]}...); the run's network cannot be rebuilt from it")

    # ------------------------------------------------------------------ inputs

    def preprocessing(self, mode: str | Preprocessing | None = None) -> Preprocessing:
        """The record of preprocessing `mode` (default: this backbone's first)."""
        if isinstance(mode, Preprocessing):
            return mode
        if mode is None:
            return self.facts.preprocessing[0]
        for p in self.facts.preprocessing:
            if p.name == mode:
                return p
        raise InputError(f"preprocessing: {self.name} takes "
                         f"{', '.join(self.facts.preprocessing_names)}, got {mode!r}")

    def preprocess(self, batch: Any, mode: str | Preprocessing | None = None) -> Any:
        """uint8 (or float) RGB images (..., 3) -> the network's float32 input
        (:meth:`mfr.backbones.facts.Preprocessing.apply`)."""
        return self.preprocessing(mode).apply(batch)

    @property
    def aligns(self) -> bool:
        return self.facts.alignment is not None

    def align_faces(self, images: np.ndarray, progress: bool = False,
                    face_box: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(the uint8 images the network takes, per-image flags): its own face alignment of
        the image cache's images (landmarks found with `face_box`; flags such as
        ``no_face_detected``, ``failed`` and, where finding has stages, the stage that found
        each face), or the images as they are and no flags."""
        return images, {}

    def align(self, images: np.ndarray, progress: bool = False,
              face_box: str | None = None) -> np.ndarray:
        """The uint8 images the network takes (:meth:`align_faces` without its flags)."""
        return self.align_faces(images, progress, face_box)[0]

    def network_inputs(self, images: np.ndarray, rows: Any = None, progress: bool = False,
                       face_box: str | None = None, cache: Any = None) -> tuple[np.ndarray, Any]:
        """(images, rows) as the network takes them: unchanged for a backbone without
        alignment; else, given the image `cache` that `images` are, its aligned images
        (:func:`mfr.backbones.aligned_cache`) and the same `rows`; else the aligned `rows` of
        `images` (all, when None), with rows ``0..n-1`` into them."""
        if not self.aligns:
            return images, rows
        if cache is not None:
            return aligned_cache(self, cache, face_box, progress), rows
        picked = images if rows is None else np.asarray(images)[np.asarray(rows, dtype=np.int64)]
        aligned = self.align(picked, progress=progress, face_box=face_box)
        return aligned, None if rows is None else np.arange(len(picked))

    # ------------------------------------------------------------------ words

    def setting_label(self, setting: str | int, random_init: bool = False,
                      weights: str | None = None) -> str:
        """A setting's name in tables and figures: "<short label> pre-trained" / "last N
        layers", or "<short label> random init" / "last N layers (random init)" for a run from
        random weights. `weights`: the run's weights when they are a file other than the
        released ones, named in the label ("weights x.h5", "last N layers (weights x.h5)")."""
        if (not random_init and weights is not None
                and weights not in (RELEASED, self.facts.weights.name)):
            base = f"weights {Path(weights).name}"
            return base if setting == "pre-trained" else f"last {setting} layers ({base})"
        if setting == "pre-trained":
            name = self.facts.short_label
            return f"{name} random init" if random_init else f"{name} pre-trained"
        return f"last {setting} layers" + (" (random init)" if random_init else "")

    def licence_note(self) -> str:
        """The released weights' source and licence, as every report that uses them says it."""
        w = self.facts.weights
        return f"{w.label}: {w.source}. Licence: {w.licence}"

    # ------------------------------------------------------------------ embedding

    def embedder(self, **options: Any) -> Any:
        """This network as an :class:`mfr.backbones.embedders.Embedder` (the released
        weights, a weights file, random init, or a run folder's network: see
        :class:`~mfr.backbones.embedders.keras_embedder.BackboneEmbedder`)."""
        from mfr.backbones.embedders.keras_embedder import BackboneEmbedder

        return BackboneEmbedder(self, **options)


def load_run_model(run_dir: Any) -> keras.Model:
    """The network of an `mfr embed` or `mfr train` run folder, whatever its backbone, as the
    run left it (:meth:`Backbone.load_run`)."""
    from mfr.backbones import get_backbone
    from mfr.core.runs import read_run

    record = read_run(run_dir, "a run folder of `mfr embed` or `mfr train`")
    return get_backbone(record.backbone).load_run(run_dir)


def aligned_cache(backbone: Backbone, cache: Any, face_box: str | None = None,
                  progress: bool = False) -> np.ndarray:
    """Every image of an image cache (:class:`mfr.data.image_cache.ImageCache`) aligned for
    `backbone`, made once and kept beside the cache (``aligned_<backbone>_<face_box>.npy``,
    its ``.json`` naming the cache it was made from; its per-image flags in
    ``aligned_<backbone>_<face_box>_flags.csv``): a study's steps share one face detection and
    landmark pass per image. Rebuilt when the cache was rebuilt."""
    import json

    import pandas as pd

    from mfr.core.outputs import atomic_path, write_csv, write_json
    from mfr.core.provenance import file_digest

    face_box = face_box or (backbone.facts.face_boxes or ("crop",))[0]
    path = cache.cache_dir / f"aligned_{backbone.name}_{face_box}.npy"
    record = path.with_suffix(".json")
    key = {"image_cache": file_digest(cache.cache_dir / "cache.json"), "backbone": backbone.name,
           "face_box": face_box, "shape": list(cache.images.shape)}
    try:
        if json.loads(record.read_text(encoding="utf-8")) == key and path.is_file():
            return np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        pass  # none yet, or damaged: made again
    aligned, flags = backbone.align_faces(cache.images, progress=progress, face_box=face_box)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, aligned)
    if flags:
        write_csv(path.with_name(path.stem + "_flags.csv"),
                  pd.DataFrame({"path": list(cache.paths), **{k: np.asarray(v) for k, v in
                                                              flags.items()}}))
    write_json(record, key)
    return aligned
