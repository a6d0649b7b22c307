"""What a step's results depend on, as its run fingerprint records it: the weights (checked,
described, fingerprinted), the settings an embedding or a training run uses, its devices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mfr.core.config import StudyConfig
from mfr.core.provenance import (
    file_digest,
)
from mfr.training.losses import loss_settings

RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS (weights=None, seed {seed}): this is NOT the pre-trained SENet50; the "
    "distances only exercise the pipeline (offline demo) and mean nothing about faces."
)


def check_weights(config: StudyConfig, progress: bool = True) -> None:
    """Make sure the config's weights can be had before any slow work: a file that exists and
    is the backbone's kind, or its released file found (downloaded, for SENet50's VGGFace2).
    One-line errors say what is missing."""
    from mfr.backbones import backbone_module

    backbone_module(config.backbone).check_weights(config.weights, progress)


def describe_weights(config: StudyConfig) -> tuple[str, str | None]:
    """A run's weights in words, and the warning random weights carry into every output."""
    if config.weights is None:
        return f"random init, seed {config.seed}", RANDOM_WEIGHTS_WARNING.format(seed=config.seed)
    return str(config.weights), None


def weights_fingerprint(config: StudyConfig) -> str:
    """The initial weights as a fingerprint: the file's sha256, or the random init's seed."""
    if config.weights is None:
        return f"random init, seed {config.seed}"
    from mfr.backbones import backbone_cfg, backbone_module

    pretrained = backbone_cfg(config.backbone)["pretrained"]
    if config.weights == pretrained:
        path = backbone_module(config.backbone).pretrained_file()
        return f"{pretrained} sha256:{file_digest(path)}"
    return f"file sha256:{file_digest(config.weights)}"


def config_settings(config: StudyConfig, names: Sequence[str]) -> dict[str, Any]:
    return {k: config.to_dict()[k] for k in names}


#: The config fields each step's results depend on (the rest: speed, storage, names), beside
#: the backbone's own (its CFG's ``settings``: SENet50's preprocessing and pooling) and, for
#: training, the loss's (:func:`mfr.training.losses.loss_settings`: contrastive's margin).
#: embed_batch_size is among them: images per forward pass change the order of the float sums,
#: so embeddings (and distances, in their last printed digit) differ with it; so is precision
#: (:mod:`mfr.core.precision`)
EMBED_SETTINGS = ("backbone", "image_size", "decoder", "embed_batch_size", "precision")


TRAIN_SETTINGS = ("optimizer", "learning_rate", "momentum", "batch_size", "seed")


def embed_settings(config: StudyConfig) -> dict[str, Any]:
    """The settings a network's embeddings depend on: the backbone, the image cache's, the
    backbone's own."""
    from mfr.backbones import backbone_cfg

    return config_settings(config, EMBED_SETTINGS + tuple(backbone_cfg(config.backbone)["settings"]))


def train_settings(config: StudyConfig) -> dict[str, Any]:
    """What a fine-tuning run's results depend on: :func:`embed_settings`, the loss's and the
    SGD's."""
    return {**embed_settings(config), **loss_settings(config), **config_settings(config, TRAIN_SETTINGS)}


def devices_for(config: StudyConfig) -> int:
    """The devices a step's forward and SGD steps run on: every device with
    ``data_parallel`` (JAX only: InputError otherwise, before any work), else 1. Recorded in
    run.json; not in the fingerprint (data parallelism does not change results)."""
    if not config.data_parallel:
        return 1
    from mfr.training.data_parallel import device_count, distribution

    return device_count(distribution())
