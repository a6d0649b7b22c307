"""SENet50 (VGGFace2), the thesis's network, as a backbone: the architecture is
:func:`mfr.backbones.vggface.senet50.build_senet50`, its released weights :data:`mfr.backbones.vggface.senet50.PRETRAINED`
(keras-vggface's legacy HDF5, read by :mod:`mfr.backbones.formats.legacy_h5`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mfr.backbones.vggface.senet50 import PRETRAINED

if TYPE_CHECKING:
    import keras

    from mfr.core.config import StudyConfig

__all__ = ["CFG", "build"]

CFG: dict[str, Any] = {
    "label": "SENet50",
    "short_label": "SENet50",  # in table rows and figure ticks: "SENet50 pre-trained"
    "pretrained": "vggface2",  # the `weights` value naming the released weights
    "pretrained_label": "SENet50 pre-trained (VGGFace2)",
    "file": PRETRAINED["vggface2"]["file"],
    "url": PRETRAINED["vggface2"]["url"],
    "sha256": PRETRAINED["vggface2"]["sha256"],
    "source": "keras-vggface 0.6's release v2.0 (rcmalli)",
    "weights_format": "keras-vggface legacy HDF5 (.h5)",
    "input_size": PRETRAINED["vggface2"]["input_size"],
    "channel_order": "RGB (preprocessing thesis) or BGR (vggface2, as the weights were trained)",
    "mean": PRETRAINED["vggface2"]["mean"],
    "scale": 1.0,
    "preprocessing": ("thesis", "vggface2"),  # the first is the default
    "embedding_size": 2048,
    "n_layers": 287,  # len(model.layers), Input included: what "the last N layers" counts
    "gradcam_layer": "conv5_3_relu",
    # the config fields the network's outputs depend on (beyond weights and image_size)
    "settings": ("preprocessing", "pooling"),
    "saved_as": "final_trainable.h5: the trained layers, keras-vggface legacy HDF5 layout",
}


def build(config: StudyConfig) -> keras.Model:
    """SENet50 with the config's weights, pooling and input size."""
    from mfr.backbones.vggface import senet50

    return senet50(weights=config.weights, pooling=config.pooling,
                   input_shape=(config.image_size, config.image_size, 3))


def pretrained_file():
    """The local VGGFace2 weights file (where it is, or will be, cached)."""
    from mfr.backbones.vggface.pretrained import VGGFACE2, weights_cache_dir

    return weights_cache_dir() / VGGFACE2["file"]


def check_weights(weights: str | None, progress: bool = True) -> None:
    """A .h5 file of SENet50's layers, or the VGGFace2 file found or downloaded; else a
    one-line error saying what is missing."""
    from pathlib import Path

    from mfr.backbones.vggface.pretrained import (
        WeightsDownloadError,
        check_senet50_file,
        vggface2_weights_file,
    )
    from mfr.core.errors import MissingError

    if weights is None:
        return
    if weights == CFG["pretrained"]:
        try:
            vggface2_weights_file(progress=progress)
        except WeightsDownloadError as e:
            raise MissingError(f"VGGFace2 SENet50 weights unavailable: {e}") from e
        return
    if not Path(weights).is_file():
        raise MissingError(f"{weights}: weights file not found (expected vggface2, none, or a "
                           f"legacy keras-vggface .h5 file)")
    check_senet50_file(weights)
