"""SENet50 (VGGFace2), the thesis's network, as a backbone: the architecture is
:func:`mfr.backbones.vggface.senet50.build_senet50`, its released weights keras-vggface's legacy
HDF5 (read by :mod:`mfr.backbones.formats.legacy_h5`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfr.backbones.base import Backbone
from mfr.backbones.facts import BackboneFacts, Preprocessing
from mfr.backbones.vggface_release import VGGFACE2_MEAN_BGR, VGGFACE2_RELEASE

if TYPE_CHECKING:
    import keras

__all__ = ["BACKBONE", "SENet50", "VGGFACE2_MEAN_BGR"]



class SENet50(Backbone):
    facts = BackboneFacts(
        name="senet50",
        label="SENet50",
        short_label="SENet50",
        input_size=224,
        embedding_size=2048,
        n_layers=287,  # len(model.layers), Input included
        gradcam_layer="conv5_3_relu",  # the last block's output before pooling (7x7x2048)
        preprocessing=(
            Preprocessing("thesis", "RGB", VGGFACE2_MEAN_BGR, None,
                          "RGB minus keras-vggface's BGR channel means, in R, G, B order (the "
                          "thesis's pipeline)"),
            Preprocessing("vggface2", "BGR", VGGFACE2_MEAN_BGR, None,
                          "flipped to BGR, channel means subtracted, as the weights were "
                          "trained (keras-vggface preprocess_input version 2)"),
        ),
        weights=VGGFACE2_RELEASE,
        settings=("pooling",),
        saved_as="final_trainable.h5: the trained layers, keras-vggface legacy HDF5 layout",
    )

    def build(self, config: Any) -> keras.Model:
        """SENet50 with the config's weights, pooling and input size."""
        from mfr.backbones.vggface import senet50

        return senet50(weights=config.weights, pooling=config.pooling,
                       input_shape=(config.image_size, config.image_size, 3))

    def pretrained_file(self) -> Path:
        """The local VGGFace2 weights file (where it is, or will be, cached)."""
        from mfr.backbones.download import weights_cache_dir

        return weights_cache_dir() / self.facts.weights.files[0].name

    def check_weights(self, weights: str | None, progress: bool = True) -> None:
        """A .h5 file of SENet50's layers, or the VGGFace2 file found or downloaded; else a
        one-line error saying what is missing."""
        from mfr.backbones.download import WeightsDownloadError
        from mfr.backbones.vggface.pretrained import check_senet50_file, vggface2_weights_file
        from mfr.core.errors import MissingError

        if weights is None:
            return
        if weights == self.facts.weights.name:
            try:
                vggface2_weights_file(progress=progress)
            except WeightsDownloadError as e:
                raise MissingError(f"VGGFace2 SENet50 weights unavailable: {e}") from e
            return
        if not Path(weights).is_file():
            raise MissingError(f"{weights}: weights file not found (expected vggface2, none, or "
                               f"a legacy keras-vggface .h5 file)")
        check_senet50_file(weights)

    def trained_layer_file_name(self, layer_name: str) -> str:
        from mfr.backbones.vggface.senet50 import vggface_name

        return vggface_name(layer_name)


BACKBONE = SENet50()
