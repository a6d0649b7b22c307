"""What a step's results depend on, as its run fingerprint records it: the settings an
embedding or a training run uses, its devices. The weights' check, description and fingerprint
are the backbone's (:class:`mfr.backbones.base.Backbone`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mfr.core.config import StudyConfig
from mfr.training.losses import loss_settings

if TYPE_CHECKING:
    from mfr.backbones.base import Backbone
    from mfr.training.losses import LossSpec


def config_settings(config: StudyConfig, names: Sequence[str]) -> dict[str, Any]:
    return {k: config.to_dict()[k] for k in names}


#: The config fields each step's results depend on (the rest: speed, storage, names), beside
#: the backbone's own (its facts' ``settings``: SENet50's pooling, dlib's face box) and, for
#: training, the loss's (:func:`mfr.training.losses.loss_settings`: contrastive's margin).
#: embed_batch_size is among them: images per forward pass change the order of the float sums,
#: so embeddings (and distances, in their last printed digit) differ with it; so is precision
#: (:mod:`mfr.core.precision`)
EMBED_SETTINGS = ("backbone", "image_size", "decoder", "embed_batch_size", "precision",
                  "preprocessing")


TRAIN_SETTINGS = ("optimizer", "learning_rate", "momentum", "batch_size", "seed")


def embed_settings(config: StudyConfig, backbone: Backbone | None = None) -> dict[str, Any]:
    """The settings a network's embeddings depend on: the backbone, the image cache's, the
    backbone's own (`backbone`: the config's as the step resolved it; looked up when None)."""
    if backbone is None:
        from mfr.backbones import get_backbone

        backbone = get_backbone(config.backbone)
    return config_settings(config, EMBED_SETTINGS + backbone.facts.settings)


def train_settings(config: StudyConfig, backbone: Backbone | None = None,
                   loss: LossSpec | None = None) -> dict[str, Any]:
    """What a fine-tuning run's results depend on: :func:`embed_settings`, the loss's and the
    SGD's (`backbone`, `loss`: the config's as the step resolved them; looked up when None)."""
    return {**embed_settings(config, backbone), **loss_settings(config, loss),
            **config_settings(config, TRAIN_SETTINGS)}


def devices_for(config: StudyConfig) -> int:
    """The devices a step's forward and SGD steps run on: every device with
    ``data_parallel`` (JAX only: InputError otherwise, before any work), else 1. Recorded in
    run.json; not in the fingerprint (data parallelism does not change results)."""
    if not config.data_parallel:
        return 1
    from mfr.training.data_parallel import device_count, distribution

    return device_count(distribution())
